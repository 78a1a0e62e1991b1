"""Using a trained model: sample, encode, reconstruct, interpolate (slerp), variations.

Every function returns :class:`~plugins.music.engine.phrase.Phrase` objects, whatever the mode,
and :func:`write_phrases` saves them as the files a user expects: one ``.mid`` per phrase plus the
whole strip for note modes, ``.wav`` files for audio mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plugins.music.engine import config as cfg_mod
from plugins.music.engine import keys as keys_mod
from plugins.music.engine import midi as midi_mod
from plugins.music.engine.arrange import Instruments
from plugins.music.engine.config import ModelConfig
from plugins.music.engine.data import usable_melody
from plugins.music.engine.metre import Metre, MetreError, describe
from plugins.music.engine.models import build_model, reparameterise, slerp
from plugins.music.engine.phrase import (
    Phrase,
    notes_to_roll,
    notes_to_tokens,
    roll_to_notes,
    tokens_to_notes,
)
from plugins.music.engine.synth import write_wav
from studio import storage
from studio.errors import UserError


@dataclass
class LoadedModel:
    model: Any
    cfg: ModelConfig
    config: dict[str, Any]
    path: Path
    device: str = "cpu"

    @property
    def mode(self) -> str:
        return self.cfg.mode

    @property
    def tempo(self) -> float:
        return float(self.config.get("tempo", 120.0))


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> LoadedModel:
    """A model folder (``config.json`` + ``model.safetensors``, any config format), ready for
    generation. The weights are checked against the configuration before the model is built
    (on torch's meta device first), so a damaged config.json can neither crash nor make the
    studio allocate a model the weights file does not hold."""
    conf = cfg_mod.read_config(path)
    folder = cfg_mod.model_dir(path)
    weights = folder / cfg_mod.MODEL_FILE
    mc = cfg_mod.model_config(conf)
    try:
        state = storage.load_tensors(weights)
    except storage.CorruptFileError as exc:
        raise UserError(str(exc)) from None
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in build_model(mc).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != got:
        missing = len(shapes.keys() - got.keys())
        unexpected = len(got.keys() - shapes.keys())
        wrong = sum(1 for k in shapes.keys() & got.keys() if shapes[k] != got[k])
        raise UserError(f"{weights} does not match its config.json (missing {missing}, "
                        f"unexpected {unexpected}, misshapen {wrong} weights)")
    model = build_model(mc)
    model.load_state_dict(state)
    model.to(device).eval()
    return LoadedModel(model, mc, conf, folder, device)


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def decode(model: Any, z: torch.Tensor, temperature: float = 0.0,
           generator: torch.Generator | None = None, labels: Sequence[str] | None = None,
           keys: torch.Tensor | None = None) -> list[Phrase]:
    """Phrases from latent codes (and keys, for key-conditioned melody models). Melodies
    sample each step at ``temperature`` (0: argmax); piano-rolls are thresholded at 0.5; mels
    are turned into sound with Griffin-Lim."""
    cfg: ModelConfig = model.cfg
    labels = list(labels) if labels is not None else [""] * z.shape[0]
    out_t = model.generate(z, temperature, generator)
    if cfg.mode == "melody" and keys is not None:
        out_t = keys_mod.denormalise(out_t, keys.to(out_t.device))
    out = out_t.cpu().numpy()
    if cfg.mode == "melody":
        names = [keys_mod.KEY_NAMES[int(k)] for k in keys] if keys is not None \
            else [""] * len(out)
        return [Phrase(tokens_to_notes(t), cfg.steps, "melody", lab,
                       meta={"key": kn} if kn else {}, metre=cfg.metre)
                for t, lab, kn in zip(out, labels, names, strict=True)]
    if cfg.mode == "pianoroll":
        return [Phrase(roll_to_notes(r), cfg.steps, "pianoroll", lab, metre=cfg.metre)
                for r, lab in zip(out, labels, strict=True)]
    from plugins.music.engine.audio import mel_to_audio

    a = cfg.audio or cfg_mod.AudioConfig()
    waves = mel_to_audio(out[:, 0], a)
    return [Phrase(np.zeros((0, 4), np.int32), cfg.steps, "audio", lab, mel=m[0], audio=w,
                   sample_rate=a.sample_rate)
            for m, w, lab in zip(out, waves, labels, strict=True)]


def model_input(lm: LoadedModel, phrases: Sequence[Phrase]) -> torch.Tensor:
    """Phrases as the tensor the model's encoder reads."""
    cfg = lm.cfg
    if cfg.mode == "audio":
        if any(p.mel is None for p in phrases):
            raise UserError("an audio model can only encode audio phrases")
        x = torch.from_numpy(np.stack([np.asarray(p.mel, np.float32)[None] for p in phrases]))
    elif cfg.mode == "melody":
        rows = [fit_steps(p, cfg.steps) for p in phrases]
        x = torch.from_numpy(np.stack([notes_to_tokens(n, cfg.steps) for n in rows]))
    else:
        rows = [fit_steps(p, cfg.steps) for p in phrases]
        x = torch.from_numpy(np.stack([notes_to_roll(n, cfg.steps) for n in rows]))
    return x.to(lm.device)


def fit_steps(phrase: Phrase, steps: int) -> np.ndarray:
    """A phrase's notes cut (or padded with silence) to ``steps``."""
    if phrase.kind == "audio":
        raise UserError("audio phrases have no notes: use an audio model for them")
    return midi_mod.window(np.asarray(phrase.notes).reshape(-1, 4), 0, steps)


@torch.no_grad()
def encode(lm: LoadedModel, phrases: Sequence[Phrase]
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Posterior mean, log-variance and (key-conditioned models) the phrases' keys."""
    x = model_input(lm, phrases)
    keys = None
    if lm.mode == "melody" and lm.cfg.key_normalise:
        x, keys = keys_mod.normalise(x)
    mu, logvar = lm.model.encode(x)
    return mu, logvar, keys


def choose_keys(lm: LoadedModel, n: int, key: str, generator: torch.Generator
                ) -> torch.Tensor | None:
    """Keys for ``n`` new phrases: "random" draws from the training data's key mix."""
    if lm.mode != "melody" or not lm.cfg.key_normalise:
        return None
    if key.strip().lower() in ("", "random", "any"):
        return keys_mod.sample_keys(n, lm.config.get("key_prior"), generator).to(lm.device)
    try:
        k = keys_mod.key_index(key)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return torch.full((n,), k, dtype=torch.long, device=lm.device)


# ----------------------------------------------------------------------------------------------
# What the jobs do
# ----------------------------------------------------------------------------------------------
def sample(lm: LoadedModel, n: int, seed: int = 1, temperature: float = 1.0,
           key: str = "random") -> list[Phrase]:
    """``n`` new phrases from the prior. For melodies ``temperature`` scales the decoder's
    softmax and ``key`` picks the key (key-conditioned models); for piano-roll and audio models
    temperature scales the spread of z."""
    if n < 1:
        raise UserError("--n must be at least 1")
    if n > 1000:
        raise UserError("--n is limited to 1000 phrases per call")
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, lm.cfg.latent, generator=g)
    if lm.mode != "melody":
        z = z * max(0.0, float(temperature))
    keys = choose_keys(lm, n, key, g)
    return decode(lm.model, z.to(lm.device), temperature, g,
                  [f"sample {i + 1}" for i in range(n)], keys)


def reconstruct(lm: LoadedModel, phrases: Sequence[Phrase]) -> list[Phrase]:
    """Decode each phrase's posterior mean (argmax): what the model "heard"."""
    mu, _, keys = encode(lm, phrases)
    return decode(lm.model, mu, 0.0, None, [f"{p.label} (model)" if p.label else "model"
                                             for p in phrases], keys)


def interpolate(lm: LoadedModel, a: Phrase, b: Phrase, steps: int = 5,
                temperature: float = 0.0, seed: int = 1) -> list[Phrase]:
    """``steps`` phrases from A to B (both included), slerping between their posterior means;
    the first and last are the reconstructions of A and B."""
    if steps < 2:
        raise UserError("--steps must be at least 2 (the two end points)")
    mu, _, keys = encode(lm, [a, b])
    ts = np.linspace(0.0, 1.0, steps)
    z = torch.stack([slerp(mu[0], mu[1], float(t)) for t in ts])
    g = torch.Generator().manual_seed(int(seed))
    labels = [f"{i + 1}/{steps}" for i in range(steps)]
    # the key is not interpolated (a blend of two keys is no key): A's for the first half
    k = None if keys is None else torch.stack([keys[0] if t < 0.5 else keys[1] for t in ts])
    return decode(lm.model, z, temperature, g, labels, k)


def variations(lm: LoadedModel, source: Phrase, n: int = 6, amount: float = 0.5, seed: int = 1,
               temperature: float = 0.0) -> list[Phrase]:
    """``n`` phrases from latents near the source's: ``mu + amount * N(0, I)``."""
    if n < 1:
        raise UserError("--n must be at least 1")
    mu, _, keys = encode(lm, [source])
    g = torch.Generator().manual_seed(int(seed))
    z = mu + float(amount) * torch.randn(n, mu.shape[1], generator=g).to(mu.device)
    k = None if keys is None else keys.expand(n)
    return decode(lm.model, z, temperature, g, [f"variation {i + 1}" for i in range(n)], k)


def posterior_sample(lm: LoadedModel, phrases: Sequence[Phrase], seed: int = 0) -> torch.Tensor:
    mu, logvar, _ = encode(lm, phrases)
    return reparameterise(mu, logvar, torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def phrases_from_file(path: str | os.PathLike[str], cfg: ModelConfig, melody: str = "auto",
                      limit: int = 16) -> list[Phrase]:
    """The phrases a model of this configuration would see in a file (MIDI, or audio for audio
    models), labelled by bar. Raises UserError with the reason when there are none."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{p} does not exist")
    if cfg.mode == "audio":
        from plugins.music.engine.audio import first_clip, mel_to_audio

        a = cfg.audio or cfg_mod.AudioConfig()
        mel = first_clip(p, a)[0]
        return [Phrase(np.zeros((0, 4), np.int32), cfg.steps, "audio", p.stem, mel=mel,
                       audio=mel_to_audio(mel, a), sample_rate=a.sample_rate)]
    return phrases_from_midi(p, cfg.bars, cfg.mode, melody, limit, cfg.metre)


def read_phrase(path: Path, params: Any, warn: Callable[[str], None]) -> Phrase:
    """The first phrase of a file as the params' ``model`` sees it: how a phrase field (the
    interpolation's ends, the phrase to vary) arrives from the command line. The window passes
    the phrase itself."""
    conf = cfg_mod.read_config(params.model)
    cfg = cfg_mod.model_config(conf)
    return phrases_from_file(path, cfg, str(getattr(params, "melody", "auto")), limit=1)[0]


def phrases_from_midi(path: Path, bars: int, mode: str = "melody", melody: str = "auto",
                      limit: int = 16, metre: str | Metre = "auto") -> list[Phrase]:
    """Up to ``limit`` phrases of ``bars`` bars of ``metre`` from a MIDI file, one per
    bar-aligned window (non-overlapping), skipping empty ones. ``metre`` "auto" takes the
    file's own (the one most of it is in; 4/4 for 2/4 and 2/2 bars). Raises UserError naming
    the file when it has none."""
    try:
        piece = midi_mod.read_midi(path)
        if str(metre).strip().lower() in ("auto", ""):
            chosen = piece.model_metre(bars)
            if chosen is None:
                raise midi_mod.MidiError(f"is in {describe(piece.metres)} and has no {bars}-bar "
                                         "stretch in a metre phrases can be cut from")
        else:
            try:
                chosen = Metre.parse(metre)
            except MetreError as exc:
                raise UserError(f"metre: {exc}") from None
        steps = bars * chosen.steps_per_bar
        starts = piece.bar_starts(bars, hop_bars=bars, metre=chosen)
        if not starts:
            raise midi_mod.MidiError(f"has no {bars}-bar stretch in {chosen} (it is in "
                                     f"{describe(piece.metres)})")
        out: list[Phrase] = []
        if mode == "melody":
            notes = piece.melody_notes(melody)
            for s in starts:
                tokens = notes_to_tokens(midi_mod.window(notes, s, steps), steps)
                if usable_melody(tokens, min_notes=1, max_silence=1.0):
                    continue
                out.append(Phrase(tokens_to_notes(tokens), steps, "melody",
                                  f"{path.stem} bar {piece.bar_number(s)}",
                                  metre=str(chosen)))
        else:
            notes = piece.all_notes()
            for s in starts:
                w = midi_mod.window(notes, s, steps)
                if len(w):
                    out.append(Phrase(w, steps, "pianoroll",
                                      f"{path.stem} bar {piece.bar_number(s)}",
                                      metre=str(chosen)))
        if not out:
            raise midi_mod.MidiError("has no notes in any phrase")
    except midi_mod.MidiError as exc:
        raise UserError(f"{path.name} {exc}") from None
    return out[:limit]


def write_phrases(phrases: Sequence[Phrase], out_dir: str | os.PathLike[str], prefix: str,
                  tempo: float = 120.0, instruments: Instruments | None = None) -> list[Path]:
    """One file per phrase (``prefix_01.mid`` / ``.wav``) and the whole strip
    (``prefix_all.mid`` / ``.wav``); returns the per-phrase paths then the strip."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    audio = all(p.kind == "audio" for p in phrases)
    for i, ph in enumerate(phrases, 1):
        if audio:
            paths.append(write_wav(ph.audio, out / f"{prefix}_{i:02d}.wav", ph.sample_rate))
        else:
            paths.append(midi_mod.write_midi(ph, out / f"{prefix}_{i:02d}.mid", tempo,
                                             instruments=instruments))
    paths.append(write_strip(phrases, out / f"{prefix}_all.{'wav' if audio else 'mid'}", tempo,
                             instruments))
    return paths


def write_strip(phrases: Sequence[Phrase], path: str | os.PathLike[str], tempo: float = 120.0,
                instruments: Instruments | None = None) -> Path:
    """The phrases one after another in one file: MIDI for notes, WAV for audio phrases."""
    path = Path(path).expanduser()
    if all(p.kind == "audio" for p in phrases):
        strip = np.concatenate([np.asarray(p.audio, np.float32) for p in phrases])
        return write_wav(strip, path, phrases[0].sample_rate)
    return midi_mod.write_midi(list(phrases), path, tempo, instruments=instruments)


def tokens_of(phrase: Phrase, steps: int) -> np.ndarray:
    return notes_to_tokens(fit_steps(phrase, steps), steps)


def roll_of(phrase: Phrase, steps: int) -> np.ndarray:
    return notes_to_roll(fit_steps(phrase, steps), steps)
