"""The music plugin's audit probe: how the privacy audit reads, scores and samples a music VAE.

The protocol is :mod:`plugins.common.probes`; the audit imports this module only when it audits
a music run (``MusicPlugin.audit_probe``), so nothing here loads at startup.

- **Items** are phrases as notes ``Note(pitch, start, duration)`` in beats (quarter notes; the
  model's grid is four steps a beat, so every value is a multiple of 0.25). An example
  (``song.mid@<sha>#bars 5-6``) is read the way the trainer read it: the file through the
  plugin's own loader (:func:`~plugins.music.engine.data.load_midi_folder` on that one file)
  with the run's bars, metre (the one the model learnt, never "auto" again), melody line and
  bar rule (format-1 runs count exact 4/4 bars), and the phrase whose part matches. A melody is
  the model's token string turned into notes, a piano-roll the notes of the roll the model saw
  (pitches outside its 96 rows dropped, velocities gone); no transposition augmentation. Each
  file is checked against the content hash the run recorded, so an edited file is not taken
  for the one the model learnt from.
- **Loss**: the negative ELBO at the posterior mean, in nats per sixteenth step (the model's
  token, for melodies and piano-rolls alike): ``(NLL(x | z = mu) + KL(q(z|x) || N(0, I))) /
  steps``. The reconstruction is teacher-forced through the decoder from the posterior mean,
  not a draw from q, so it needs no noise and is deterministic; a key-normalised melody model
  scores the phrase in C major / A minor, as it trained. The KL term is kept for two reasons:
  NLL + KL bounds ``-log p(x)``, the likelihood the attacks take ``exp(-loss)`` for (RMIA) and
  fit Gaussians to (LiRA), and a VAE that memorises a phrase spends latent information on it,
  which the KL measures and the reconstruction alone hides. Measured on an overfit 2-bar melody
  VAE (``bench/audit_music.py``): the loss attack's AUC is the same with or without it to
  two decimals (see that bench's output for the numbers).
- **Samples**: phrases decoded from ``z ~ N(0, I)`` at temperature 1, in keys drawn from the
  training data's mix (the sample job's defaults), always on the CPU so the same seed gives the
  same phrases on every machine (the melody decoder draws each step from a CPU generator).
- **Features** (``embed``): the encoder's posterior means (the latent code the model gives a
  phrase: what interpolation and variations move through).
- **Reference models**: the run's own ``train`` job on another random half of the files, with
  the settings the run *started* with (a resumed run's own params say "resume" and leave the
  model to its config.json), the metre the model learnt (a random half of a mixed folder could
  otherwise pick another), as many steps as the model was trained (no time limit: it depends
  on the machine), and the data where the run found it (or the built-in chorales).

Audio models are refused with a message: the audit's music items are notes, and sounds have
none.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from plugins.common.probes import BATCH, Note, ProbeBase, ProbeExample, as_notes
from studio.errors import UserError

#: sixteenth steps in a beat (a quarter note): the music plugin's grid
STEPS_PER_BEAT = 4
#: temperature of the samples (the sample job's default)
TEMPERATURE = 1.0
#: files whose phrases are kept read at once (examples come file by file)
FILES_CACHED = 32


class MusicProbe(ProbeBase):
    """A music train run (``config.json`` + ``model.safetensors``) for the audit."""

    item_kind = "music"

    def open(self) -> None:
        from plugins.music.engine import config as cfg_mod
        from plugins.music.engine import generate as gen

        self.config = cfg_mod.read_config(self.run_dir)  # a clear message when absent
        self.cfg = cfg_mod.model_config(self.config)
        if self.cfg.mode == "audio":
            raise UserError(f"{self.run_dir.name} is a model of sounds: the audit compares "
                            "notes, so models of audio files cannot be audited yet")
        self.lm = gen.load_model(self.run_dir, self.device)
        self.steps = int(self.cfg.steps)
        data = self.config.get("data") or {}
        self.melody = str(data.get("melody") or "auto")
        self.strict = cfg_mod.strict_bars(self.config)
        self._cpu: Any = None
        self._files: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()

    def close(self) -> None:
        for name in ("lm", "_cpu"):
            if hasattr(self, name):
                delattr(self, name)
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # -- items ----------------------------------------------------------------------------------
    def read(self, example: ProbeExample) -> list[Note]:
        """The phrase ``example`` names, as the model saw it (before any transposition)."""
        phrases = self._file_phrases(example)
        if example.part not in phrases:
            raise UserError(f"{example.path or 'the training file'} has no phrase "
                            f"'{example.part}' as the music plugin reads it now: the run "
                            "cannot be audited with this version of the studio")
        return notes_item(phrases[example.part])

    def _file_phrases(self, example: ProbeExample) -> dict[str, np.ndarray]:
        """Every phrase the trainer cut from the example's file, by part, as ``(K, 4)`` notes
        in steps (a few files kept: a run's examples come file by file)."""
        if example.sha256 in self._files:
            self._files.move_to_end(example.sha256)
            return self._files[example.sha256]
        from plugins.music.engine.data import load_midi_folder
        from plugins.music.engine.phrase import roll_to_notes, tokens_to_notes

        path = self.example_path(example, verify=True)
        try:
            ps = load_midi_folder(path, self.cfg.bars, self.cfg.mode, self.melody,
                                  metre=self.cfg.metre, strict=self.strict)
        except UserError as exc:
            raise UserError(f"{example.path or path.name} no longer gives the phrases the run "
                            f"learnt from: {exc}") from None
        out = {part: tokens_to_notes(row) if self.cfg.mode == "melody" else roll_to_notes(row)
               for part, row in zip(ps.parts, ps.data, strict=True)}
        self._files[example.sha256] = out
        while len(self._files) > FILES_CACHED:
            self._files.popitem(last=False)
        return out

    def _input(self, items: Sequence[Sequence[Any]]) -> Any:
        """Items as the tensor the encoder reads: melody tokens or piano-rolls of the model's
        length (notes past its end cut, a shorter phrase padded with silence)."""
        import torch

        from plugins.music.engine import midi as midi_mod
        from plugins.music.engine.phrase import notes_to_roll, notes_to_tokens

        rows = [midi_mod.window(step_notes(it), 0, self.steps) for it in items]
        if self.cfg.mode == "melody":
            x = np.stack([notes_to_tokens(r, self.steps) for r in rows])
        else:
            x = np.stack([notes_to_roll(r, self.steps) for r in rows])
        return torch.from_numpy(x).to(self.device)

    # -- scores ---------------------------------------------------------------------------------
    def terms(self, items: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Per item, the reconstruction NLL from the posterior mean and the posterior's KL,
        both in nats per sixteenth step."""
        import torch

        from plugins.music.engine import keys as keys_mod
        from plugins.music.engine.models import kl_divergence

        nll_out, kl_out = [], []
        model = self.lm.model
        with torch.no_grad():
            for s in range(0, len(items), BATCH):
                x = self._input(items[s:s + BATCH])
                if self.cfg.mode == "melody" and self.cfg.key_normalise:
                    x, _ = keys_mod.normalise(x)
                mu, logvar = model.encode(x)
                nll, _ = model.reconstruction(x, mu)
                nll_out.append(nll.double().cpu().numpy())
                kl_out.append(kl_divergence(mu, logvar).double().cpu().numpy())
        if not nll_out:
            return np.zeros(0), np.zeros(0)
        return (np.concatenate(nll_out) / self.steps, np.concatenate(kl_out) / self.steps)

    def per_example_loss(self, items: Sequence[Sequence[Any]]) -> np.ndarray:
        """The negative ELBO at the posterior mean per sixteenth step (see the module's
        docstring): lower means more familiar to the model."""
        nll, kl = self.terms(items)
        return nll + kl

    # -- samples and features -------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> list[list[Note]]:
        if n <= 0:
            return []
        from plugins.music.engine import generate as gen

        if str(self.device) == "cpu":
            lm = self.lm
        else:  # the melody decoder draws from a CPU generator: decode on the CPU
            if self._cpu is None:
                self._cpu = gen.load_model(self.run_dir, "cpu")
            lm = self._cpu
        out: list[list[Note]] = []
        for s in range(0, n, 1000):  # the sample function's own limit per call
            phrases = gen.sample(lm, min(1000, n - s), int(seed) + s // 1000, TEMPERATURE)
            out += [notes_item(p.notes) for p in phrases]
        return out

    def embed(self, items: Sequence[Sequence[Any]]) -> np.ndarray:
        """The posterior mean of each item (the model's latent code for it)."""
        import torch

        from plugins.music.engine import keys as keys_mod

        parts = []
        with torch.no_grad():
            for s in range(0, len(items), BATCH):
                x = self._input(items[s:s + BATCH])
                if self.cfg.mode == "melody" and self.cfg.key_normalise:
                    x, _ = keys_mod.normalise(x)
                mu, _ = self.lm.model.encode(x)
                parts.append(mu.double().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.cfg.latent))

    # -- reference models -----------------------------------------------------------------------
    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]:
        """The run's train job, as first started, on another random ``1 - holdout`` of its
        files (see the module's docstring for what is pinned and why)."""
        from dataclasses import fields

        from plugins.music.engine import bach
        from plugins.music.params import TrainParams

        started = self.manifest.params
        if started.get("resume"):  # a resumed session's params leave the model to config.json
            started = next((s.params for s in self.manifest.sessions
                            if not s.params.get("resume")), started)
        known = {f.name for f in fields(TrainParams)}  # a setting since removed cannot return
        params: dict[str, Any] = {k: v for k, v in started.items() if k in known}
        params.update(holdout=holdout, seed=seed, resume=False)
        info = self.dataset.info or {}
        builtin = info.get("builtin") == "bach" or bach.is_builtin(started.get("data") or "bach")
        params["data"] = "bach" if builtin else self.dataset.location
        params["metre"] = self.cfg.metre
        params["mode"], params["bars"] = self.cfg.mode, self.cfg.bars
        params["melody"] = self.melody
        trained = self.config.get("trained_steps")
        if isinstance(trained, int) and not isinstance(trained, bool) and trained > 0:
            params["steps"] = trained
        params["minutes"] = None
        return self.manifest.job, params


# ----------------------------------------------------------------------------------------------
# Notes in steps and in beats
# ----------------------------------------------------------------------------------------------
def notes_item(notes: np.ndarray) -> list[Note]:
    """``(K, 4)`` notes in steps (pitch, start, end, velocity) as a music item, in beats."""
    rows = np.asarray(notes).reshape(-1, 4)
    return [Note(int(p), s / STEPS_PER_BEAT, (e - s) / STEPS_PER_BEAT)
            for p, s, e, _v in rows.tolist()]


def step_notes(item: Sequence[Any]) -> np.ndarray:
    """A music item as ``(K, 4)`` int32 notes in steps (velocity: the plugin's default)."""
    from plugins.music.engine.phrase import DEFAULT_VELOCITY

    notes = as_notes(item)
    out = np.zeros((len(notes), 4), dtype=np.int32)
    for i, n in enumerate(notes):
        start = int(round(n.start * STEPS_PER_BEAT))
        end = int(round((n.start + n.duration) * STEPS_PER_BEAT))
        out[i] = (n.pitch, start, max(end, start + 1), DEFAULT_VELOCITY)
    return out


__all__ = ["MusicProbe", "notes_item", "step_notes"]
