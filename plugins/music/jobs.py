"""The music plugin's jobs: thin glue from a job context to the engine.

The same functions run from the panel (``host.submit``), the command line
(``studio run music train --data DIR --bars 2 --steps N --out RUN_DIR``) and the tests. Engine
modules (and torch) are imported inside the functions so listing jobs or building the panel's
forms stays light.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError
from studio.jobs import JobContext

Mode = Literal["melody", "pianoroll", "audio"]
Preset = Literal["tiny", "small", "default", "large"]


@contextlib.contextmanager
def _torch_threads(ctx: JobContext, mode: str) -> Iterator[None]:
    """One torch thread for melody models on the CPU, unless the user chose a thread count.

    Their LSTM steps are far too small to split: each op then waits on a barrier for the second
    thread, and when any other program holds a core it crawls (measured here: 200 training
    steps of the small preset took 172 s with two threads on a busy 2-core machine, 8.9 s with
    one; on a quiet machine two threads gain little). Convolutional models keep the setting.
    """
    if mode != "melody" or ctx.cpu_threads > 0 or not ctx.device.startswith("cpu"):
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _out_dir(ctx: JobContext, out: Path | None, job: str) -> Path:
    if out is not None:
        path = Path(out).expanduser()
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = ctx.workspace / "music" / job / stamp
        n = 1
        while path.exists():
            n += 1
            path = ctx.workspace / "music" / job / f"{stamp}-{n}"
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file: give a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _emit(ctx: JobContext, phrases: list[Any], title: str, out: Path, files: list[Path],
          **extra: Any) -> None:
    ctx.preview("phrases", {"phrases": [p.to_payload() for p in phrases], "title": title,
                            "out": str(out), "files": [str(f) for f in files], **extra})
    ctx.log(f"{title}: wrote {len(files)} file(s) to {out}")


def train(
    ctx: JobContext,
    data: str = "bach",
    bars: Literal[2, 4] = 2,
    steps: int = 6000,
    mode: Mode = "melody",
    preset: Preset = "default",
    melody: str = "auto",
    minutes: float | None = None,
    batch_size: int = 0,
    lr: float = 0.0,
    latent: int = 0,
    beta: float | None = None,
    free_bits: float | None = None,
    kl_warmup: int | None = None,
    transpose: int | None = None,
    holdout: float = 0.1,
    seed: int = 0,
    resume: bool = False,
) -> str:
    """Train a music VAE on a folder of MIDI or audio files (or the built-in Bach chorales).

    Args:
        data: a folder of MIDI files (melody / pianoroll) or WAV/FLAC/OGG files (audio), or
            "bach" for the 371 built-in Bach chorales
        bars: phrase length in 4/4 bars (4 bars use the hierarchical decoder)
        steps: training steps (with --resume: the total to reach)
        mode: melody (monophonic, MusicVAE), pianoroll (polyphonic) or audio (log-mel)
        preset: model size: tiny (tests), small, default (a 2-core CPU), large (a GPU)
        melody: which line is the melody: auto, highest, a track number or a track name
        minutes: stop after this much training time (the learning rate follows it)
        batch_size: phrases per step (0: the preset's)
        lr: peak learning rate (0: the preset's)
        latent: latent size (0: the preset's)
        beta: KL weight after warm-up (default: the preset's)
        free_bits: nats of KL per phrase left unpenalised (default: the preset's)
        kl_warmup: steps over which beta ramps up from 0 (default: the preset's)
        transpose: random transposition of +-N semitones while training (default: the preset's)
        holdout: fraction of files held out for the validation curves
        seed: random seed (data split, initialisation, batch order)
        resume: continue the run in --out from its last checkpoint
    """
    from plugins.music.engine import bach, config
    from plugins.music.engine.train import Trainer

    run_dir = ctx.run_dir
    if run_dir is None:
        raise UserError("train needs a run folder (--out RUN_DIR)")
    ckpt = run_dir / "checkpoints" / "last.safetensors"
    if resume:
        if not ckpt.exists():
            raise UserError(f"nothing to resume in {run_dir}: it has no checkpoint. Start a new "
                            "run, or pass the --out of a run that saved one")
        conf = config.read_config(run_dir)
        mc = config.ModelConfig.from_json(conf["model"])
        tc = config.TrainConfig(**{k: v for k, v in conf["train"].items()
                                   if k in config.TrainConfig.__dataclass_fields__})
        tc.steps = steps
        dconf = conf.get("data", {})
        data, mode, bars, melody = (dconf.get("source", data), mc.mode, mc.bars,
                                    dconf.get("melody", melody))
        holdout, seed = tc.holdout, tc.seed
        ctx.log(f"resuming {run_dir.name}: model and data settings come from its config.json")
    else:
        if ckpt.exists() or (run_dir / config.MODEL_FILE).exists():
            raise UserError(f"{run_dir} already holds a trained model: pass --resume to continue "
                            "it, or choose another --out")
        if steps < 1:
            raise UserError("--steps must be at least 1")
        mc, tc = config.preset(preset, mode, int(bars))
        tc.steps = steps
        for name, value, unset in (("batch_size", batch_size, 0), ("lr", lr, 0.0),
                                   ("beta", beta, None), ("free_bits", free_bits, None),
                                   ("kl_warmup", kl_warmup, None), ("transpose", transpose, None)):
            if value != unset:
                setattr(tc, name, value)
        if latent:
            mc.latent = latent
        tc.holdout, tc.seed = holdout, seed
    if not 0.0 <= holdout < 1.0:
        raise UserError("--holdout must be between 0 and 0.9")

    # data
    source = data
    builtin = bach.is_builtin(data)
    if builtin and mode == "audio":
        raise UserError("the built-in Bach chorales are MIDI: audio mode needs a folder of "
                        "WAV/FLAC/OGG files")
    if builtin:
        ctx.progress(0, None, "writing the Bach chorales as MIDI (first use only)")
    root = bach.resolve_data(data, ctx.workspace, progress=lambda i, n: ctx.progress(
        i, n, "writing Bach chorales"), check=ctx.check) if builtin else Path(data).expanduser()

    def loading(i: int, n: int) -> None:
        ctx.progress(i, n, "reading data")

    if mode == "audio":
        from plugins.music.engine.audio import load_audio_folder

        phrases = load_audio_folder(root, mc.audio or config.AudioConfig(), loading, ctx.check)
    else:
        from plugins.music.engine.data import load_midi_folder

        phrases = load_midi_folder(root, mc.bars, mode, melody, progress=loading,
                                   check=ctx.check)
    ctx.log(phrases.report())
    train_set, val_set = phrases.split(holdout, seed)
    if len(train_set) == 0:
        raise UserError("every phrase landed in the held-out set: use --holdout 0 or add files")
    ctx.add_dataset(root, files=len(phrases.files), phrases=len(phrases), mode=mode,
                    skipped=len(phrases.skipped), builtin="bach" if builtin else None)
    ctx.log(f"training on {len(train_set)} phrases, validating on {len(val_set)}")
    extra = {"data": {"source": source, "root": str(root), "melody": melody,
                      "phrases": len(train_set), "held_out": len(val_set),
                      "files": len(phrases.files)},
             "tempo": bach.TEMPO if builtin else 120.0}
    trainer = Trainer(mc, tc, train_set, val_set if len(val_set) else None, run_dir, ctx,
                      ctx.device, minutes * 60 if minutes else None, extra)
    if resume:
        trainer.resume()
        from studio.runs import truncate_metrics

        truncate_metrics(run_dir, after_step=trainer.step)
        ctx.log(f"resumed at step {trainer.step} of {tc.steps}")
    with _torch_threads(ctx, mode):
        evaluation = trainer.run()
    ctx.add_artifact(run_dir / config.MODEL_FILE, "model", steps=trainer.step, mode=mode,
                     **evaluation)
    return str(run_dir)


def sample(ctx: JobContext, model: Path, n: int = 8, seed: int = 1, temperature: float = 1.0,
           out: Path | None = None, tempo: float | None = None, key: str = "random") -> str:
    """Generate new phrases from a trained model and write them as .mid (or .wav) files.

    Args:
        model: the trained model's run folder
        n: how many phrases
        seed: random seed (the same seed gives the same phrases)
        temperature: randomness: melodies sample each step at this softmax temperature
            (0 = most likely); piano-roll and audio models scale the latent spread
        out: folder for the files (default: a new folder under the workspace)
        tempo: tempo written into the MIDI files (default: the training data's)
        key: key of new melodies: random (the training data's major/minor mix), or C, F#m, Bb…
    """
    from plugins.music.engine import generate as gen

    lm = gen.load_model(model, ctx.device)
    ctx.progress(0, n, "sampling")
    with _torch_threads(ctx, lm.mode):
        phrases = gen.sample(lm, n, seed, temperature, key)
    target = _out_dir(ctx, out, "samples")
    files = gen.write_phrases(phrases, target, "sample", tempo or lm.tempo)
    ctx.progress(n, n, "done")
    _emit(ctx, phrases, f"{n} samples (seed {seed}, temperature {temperature:g})", target,
          files, model=str(lm.path), tempo=tempo or lm.tempo)
    return str(target)


def interpolate(ctx: JobContext, model: Path, a: Path, b: Path, steps: int = 5,
                out: Path | None = None, temperature: float = 0.0, melody: str = "auto",
                tempo: float | None = None) -> str:
    """Interpolate between the first phrases of two files (slerp between their latent codes).

    Args:
        model: the trained model's run folder
        a: the start phrase (a MIDI file; an audio file for audio models)
        b: the end phrase
        steps: phrases from A to B, both ends included (they reconstruct A and B)
        out: folder for the files (default: a new folder under the workspace)
        temperature: 0 decodes the most likely phrase; above 0 samples
        melody: which line of a MIDI file is the melody (auto, highest, track number or name)
        tempo: tempo written into the MIDI files (default: the training data's)
    """
    from plugins.music.engine import generate as gen

    lm = gen.load_model(model, ctx.device)
    pa = gen.phrases_from_file(a, lm, melody, limit=1)[0].with_label("A")
    pb = gen.phrases_from_file(b, lm, melody, limit=1)[0].with_label("B")
    ctx.check()
    with _torch_threads(ctx, lm.mode):
        phrases = gen.interpolate(lm, pa, pb, steps, temperature)
    target = _out_dir(ctx, out, "interpolations")
    files = gen.write_phrases(phrases, target, "interp", tempo or lm.tempo)
    _emit(ctx, [pa, *phrases, pb], f"A → B in {steps} steps", target, files,
          model=str(lm.path), tempo=tempo or lm.tempo)
    return str(target)


def variations(ctx: JobContext, model: Path, source: Path, n: int = 6, amount: float = 0.5,
               seed: int = 1, out: Path | None = None, melody: str = "auto",
               tempo: float | None = None) -> str:
    """Variations of a phrase: decode latent codes near its own.

    Args:
        model: the trained model's run folder
        source: a file whose first phrase is varied (MIDI; audio for audio models)
        n: how many variations
        amount: how far from the original (standard deviation added to its latent code)
        seed: random seed
        out: folder for the files (default: a new folder under the workspace)
        melody: which line of a MIDI file is the melody
        tempo: tempo written into the MIDI files (default: the training data's)
    """
    from plugins.music.engine import generate as gen

    lm = gen.load_model(model, ctx.device)
    src = gen.phrases_from_file(source, lm, melody, limit=1)[0].with_label("original")
    with _torch_threads(ctx, lm.mode):
        phrases = gen.variations(lm, src, n, amount, seed)
    target = _out_dir(ctx, out, "variations")
    files = gen.write_phrases(phrases, target, "variation", tempo or lm.tempo)
    _emit(ctx, [src, *phrases], f"{n} variations (amount {amount:g})", target, files,
          model=str(lm.path), tempo=tempo or lm.tempo)
    return str(target)


def load(ctx: JobContext, midi: Path, model: Path | None = None, bars: Literal[2, 4] = 2,
         mode: Literal["melody", "pianoroll"] = "melody", melody: str = "auto", limit: int = 8,
         out: Path | None = None) -> str:
    """Read phrases from a MIDI (or, for audio models, audio) file; with a model, also show
    what the model makes of them (its reconstructions, written as .mid files).

    Args:
        midi: the file to read
        model: a trained model's run folder (its bars and mode win over --bars / --mode)
        bars: phrase length when no model is given
        mode: melody or pianoroll when no model is given
        melody: which line is the melody: auto, highest, a track number or a track name
        limit: at most this many phrases (non-overlapping, from the start)
        out: folder for the reconstructions (default: a new folder under the workspace)
    """
    from plugins.music.engine import generate as gen

    path = Path(midi).expanduser()
    if model is None:
        if not path.exists():
            raise UserError(f"{path} does not exist")
        phrases = gen.phrases_from_midi(path, int(bars), mode, melody, limit)
        ctx.preview("phrases", {"phrases": [p.to_payload() for p in phrases],
                                "title": f"{path.name}: {len(phrases)} phrase(s)",
                                "source": str(path)})
        return str(path)
    lm = gen.load_model(model, ctx.device)
    phrases = gen.phrases_from_file(path, lm, melody, limit)
    with _torch_threads(ctx, lm.mode):
        recon = gen.reconstruct(lm, phrases)
    target = _out_dir(ctx, out, "reconstructions")
    files = gen.write_phrases(recon, target, "reconstruction", lm.tempo)
    strip = [x for pair in zip(phrases, recon, strict=True) for x in pair]
    _emit(ctx, strip, f"{path.name}: {len(phrases)} phrase(s) and the model's reconstructions",
          target, files, model=str(lm.path), tempo=lm.tempo, source=str(path))
    return str(target)


def render(ctx: JobContext, midi: Path, out: Path, tempo: float | None = None,
           voice: Literal["piano", "organ", "pluck"] = "piano", sample_rate: int = 44100) -> str:
    """Render a MIDI file to a WAV file with the built-in synth (no sound card needed).

    Args:
        midi: the MIDI file
        out: the WAV file to write
        tempo: play at this tempo (quarter notes per minute; default: the file's own timing)
        voice: synth voice
        sample_rate: WAV sample rate
    """
    from plugins.music.engine import midi as midi_mod
    from plugins.music.engine import synth

    target = Path(out).expanduser()
    if target.is_dir():
        target = target / (Path(midi).stem + ".wav")
    if target.suffix.lower() != ".wav":
        raise UserError(f"--out {target} should end in .wav")
    if not 8000 <= sample_rate <= 192000:
        raise UserError("--sample-rate must be between 8000 and 192000")
    try:
        notes, used = midi_mod.midi_notes_seconds(midi, tempo)
    except midi_mod.MidiError as exc:
        raise UserError(f"{Path(midi).name} {exc}") from None
    ctx.progress(0, 1, "rendering")
    audio = synth.render_notes(notes, sample_rate, voice)
    synth.write_wav(audio, target, sample_rate)
    ctx.progress(1, 1, "done")
    ctx.log(f"rendered {len(notes)} notes ({len(audio) / sample_rate:.1f} s at {used:g} bpm) "
            f"to {target}")
    return str(target)
