"""The music plugin's jobs: thin glue from a job context and its params to the engine.

The same functions run from the panel (``host.submit``), the command line
(``studio run music train --data DIR --bars 2 --steps N --out RUN_DIR``) and the tests; each
takes its params dataclass (``plugins.music.params``). Engine modules (and torch) are imported
inside the functions so listing jobs or building the panel's forms stays light.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugins.music.params import (
    ContinueParams,
    InterpolateParams,
    LoadParams,
    RenderParams,
    SampleParams,
    TrainParams,
    VariationsParams,
)
from studio.errors import UserError
from studio.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover
    from plugins.music.engine.config import ModelConfig, TrainConfig
    from plugins.music.engine.data import PhraseSet


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


def instruments_of(p: Any) -> Any:
    """The params' instrument fields as an :class:`~plugins.music.engine.arrange.Instruments`."""
    from plugins.music.engine.arrange import Instruments

    return Instruments(melody=p.melody_program, accompaniment=p.accompaniment_program,
                       drums=p.drums, split=p.split)


def _write(ctx: JobContext, phrases: list[Any], out: Path | None, job: str, prefix: str,
           tempo: float, p: Any = None) -> tuple[Path, list[Path]]:
    """Where generated phrases go: ``--out x.mid`` (``x.wav`` for audio models) is one file with
    the phrases one after another, ready for a DAW or ``render``; a folder (or none: a new one
    in the workspace) gets one file per phrase and the whole strip, each with the params'
    instruments (melody, accompaniment, drums) as tracks."""
    from plugins.music.engine import generate as gen

    inst = instruments_of(p) if p is not None else None

    if out is not None and Path(out).suffix.lower() in (".mid", ".midi", ".wav"):
        path = Path(out).expanduser()
        audio = all(ph.kind == "audio" for ph in phrases)
        if audio != (path.suffix.lower() == ".wav"):
            kind = "an audio model's phrases are sound: --out x.wav" if audio else \
                "these phrases are notes: --out x.mid"
            raise UserError(f"--out {path.name}: {kind} (or a folder)")
        return path, [gen.write_strip(phrases, path, tempo, inst)]
    target = _out_dir(ctx, out, job)
    return target, gen.write_phrases(phrases, target, prefix, tempo, inst)


def _stamp(files: list[Path], job: str, lm: Any, seed: int | None, p: Any) -> None:
    """Every exported file carries its provenance: model (named, never its path), seed,
    settings and a hash of its notes or samples."""
    from plugins.common import provenance

    provenance.stamp_all(files, provenance.make("music", job, model=lm.path, seed=seed,
                                                params=p))


def _emit(ctx: JobContext, phrases: list[Any], title: str, out: Path, files: list[Path],
          **extra: Any) -> None:
    ctx.preview("phrases", {"phrases": [p.to_payload() for p in phrases], "title": title,
                            "out": str(out), "files": [str(f) for f in files], **extra})
    ctx.log(f"{title}: wrote {len(files)} file(s) to {out}")


def train(ctx: JobContext, p: TrainParams) -> str:
    """Train a music VAE on a folder of MIDI or audio files (or the built-in Bach chorales).

    A resumed run takes its model, data and training settings from the run's config.json (only
    the steps and the time limit come from ``p``) and continues exactly where it stopped.
    """
    from plugins.common.privacy import PrivacySpec, spec_of
    from plugins.common.training import TrainLoop, refuse_to_overwrite
    from plugins.music.engine import bach, config
    from plugins.music.engine.train import CHECKPOINT, MusicTask, schedule

    run_dir = ctx.run_dir
    if run_dir is None:
        raise UserError("train needs a run folder (--out RUN_DIR)")
    ckpt = run_dir / CHECKPOINT
    if p.resume:
        if not ckpt.exists():
            raise UserError(f"nothing to resume in {run_dir}: it has no checkpoint. Start a new "
                            "run, or pass the --out of a run that saved one")
        mc, tc, recorded, melody, exact = _resumed_settings(run_dir, p)
        privacy = PrivacySpec.from_json(config.read_config(run_dir).get("privacy_settings"))
        data = p.data or recorded or ctx.recorded_data()  # --data given on resume wins
        if not data:
            raise UserError(f"{run_dir.name} does not say where its music is: choose it (--data)")
        settings: tuple[ModelConfig, TrainConfig] | None = (mc, tc)
        mode, bars, metre, audio = mc.mode, mc.bars, mc.metre, mc.audio
        ctx.log(f"resuming {run_dir.name}: model and data settings come from its config.json")
    else:
        refuse_to_overwrite(run_dir, ckpt, p.resume, "music")
        if (run_dir / config.MODEL_FILE).exists():
            raise UserError(f"{run_dir} already holds a trained model: pass --resume to continue "
                            "it, or choose another --out")
        settings = None  # made once the data has told which metre "auto" is
        data, melody, exact = p.data or "bach", p.melody, False
        mode, bars, metre, audio = p.mode, int(p.bars), p.metre, None
        privacy = spec_of(p)

    builtin = bach.is_builtin(data)  # (TrainParams.check refuses it with audio mode)
    if builtin:
        ctx.progress(0, None, "writing the Bach chorales as MIDI (first use only)")
        root = bach.resolve_data(data, ctx.workspace, progress=lambda i, n: ctx.progress(
            i, n, "writing Bach chorales"), check=ctx.check)
    else:
        root = Path(data).expanduser().resolve()
    phrases = _load_phrases(ctx, root, mode, bars, melody, metre, exact, audio)
    mc, tc = settings or _new_settings(p, phrases.metre)
    ctx.log(phrases.report())
    held = phrases.held_out_mask(tc.holdout, tc.seed)
    train_set, val_set = phrases.subset(~held), phrases.subset(held)
    if len(train_set) == 0:
        raise UserError("every phrase landed in the held-out set: use --holdout 0 or add files")
    _record_data(ctx, "bach" if builtin else root.name, root, phrases, held,
                 builtin=builtin)
    ctx.log(f"training on {len(train_set)} phrases, validating on {len(val_set)}")
    extra = {"data": {"source": "bach" if builtin else str(root), "root": str(root),
                      "melody": melody, "phrases": len(train_set), "held_out": len(val_set),
                      "files": len(phrases.files), **({"exact_bars": True} if exact else {})},
             "tempo": bach.TEMPO if builtin else 120.0}
    task = MusicTask(mc, tc, train_set, val_set if len(val_set) else None, run_dir, ctx,
                     ctx.device, extra, privacy=privacy)
    loop = TrainLoop(task, schedule(tc, p.minutes * 60 if p.minutes else None), ctx, ckpt)
    if p.resume:
        step = loop.resume()
        ctx.log(f"resumed at step {step} of {tc.steps}")
    if task.dp is not None:
        task.log_privacy()
    try:
        with _torch_threads(ctx, mode):
            loop.run()
    finally:  # a stopped run's model is usable too: list it in the model library
        model = run_dir / config.MODEL_FILE
        if model.exists():
            from studio.manifest import sha256_file

            extra_info = {"privacy": task.dp.summary()} if task.dp is not None else {}
            ctx.add_artifact(run_dir, "model", model_kind="music-vae", steps=loop.state.step,
                             mode=mode, weights_sha256=sha256_file(model), **task.last_eval,
                             **extra_info)
    return str(run_dir)


def _new_settings(p: TrainParams, metre: str) -> tuple[ModelConfig, TrainConfig]:
    """The preset's configuration with the fields the user set, for phrases in ``metre`` (the
    data's, when the user left it to the data)."""
    from plugins.music.engine import config

    mc, tc = config.preset(p.preset, p.mode, int(p.bars), metre)
    tc.steps = p.steps
    if p.batch_size:
        tc.batch_size = p.batch_size
    if p.lr:
        tc.lr = p.lr
    if p.latent:
        mc.latent = p.latent
    if p.beta is not None:
        tc.beta = p.beta
    if p.free_bits is not None:
        tc.free_bits = p.free_bits
    if p.kl_warmup is not None:
        tc.kl_warmup = p.kl_warmup
    if p.transpose is not None:
        tc.transpose = p.transpose
    tc.holdout, tc.seed = p.holdout, p.seed
    return mc, tc


def _resumed_settings(run_dir: Path, p: TrainParams
                      ) -> tuple[ModelConfig, TrainConfig, str | None, str, bool]:
    """What a run was started with (its config.json, any format), to the new number of steps:
    model and training settings, where its data was (None if it does not say), its melody
    choice, and whether its data is cut from bars of exactly its metre (format-1 runs: see
    ``config.strict_bars``)."""
    from plugins.music.engine import config

    conf = config.read_config(run_dir)
    mc = config.model_config(conf)
    train = conf.get("train") or {}
    try:
        tc = config.TrainConfig(**{k: v for k, v in train.items()
                                   if k in config.TrainConfig.__dataclass_fields__})
        tc.check()
    except (TypeError, ValueError) as exc:
        raise UserError(f"{run_dir / config.CONFIG_FILE} has damaged training settings "
                        f"({exc})") from None
    tc.steps = p.steps
    dconf = conf.get("data") or {}
    source = dconf.get("source")
    return (mc, tc, str(source) if source else None, str(dconf.get("melody", p.melody)),
            config.strict_bars(conf))


def _load_phrases(ctx: JobContext, root: Path, mode: str, bars: int, melody: str, metre: str,
                  exact: bool, audio: Any) -> PhraseSet:
    """The run's phrases (``metre`` may be "auto": the set says which it chose), through the
    workspace's prepared-data cache: a folder read before with these settings is not parsed
    or decoded again."""
    from dataclasses import asdict

    from plugins.music.engine import config
    from plugins.music.engine.data import cached_phrases

    def loading(i: int, n: int) -> None:
        ctx.progress(i, n, "reading data")

    def hashing(i: int, n: int) -> None:
        ctx.progress(i, n, "checking files")

    if mode == "audio":
        from plugins.music.engine.audio import AUDIO_EXTS, load_audio_folder

        acfg = audio or config.AudioConfig()
        return cached_phrases(ctx.cache, root, AUDIO_EXTS, {"mode": mode, **asdict(acfg)},
                              lambda: load_audio_folder(root, acfg, loading, ctx.check),
                              hashing, ctx.check)
    from plugins.music.engine import midi as midi_mod
    from plugins.music.engine.data import load_midi_folder

    settings = {"mode": mode, "bars": bars, "melody": melody, "metre": str(metre),
                "strict": exact}
    return cached_phrases(ctx.cache, root, midi_mod.MIDI_EXTS, settings,
                          lambda: load_midi_folder(root, bars, mode, melody, progress=loading,
                                                   check=ctx.check, metre=metre, strict=exact),
                          hashing, ctx.check)


def _record_data(ctx: JobContext, name: str, root: Path, phrases: PhraseSet, held: Any,
                 builtin: bool) -> None:
    """Every phrase as an example (its file's content hash and which bars or seconds of it),
    the held-out ones being every phrase of the held-out files."""
    from studio import manifest

    used = sorted(set(phrases.file_index.tolist()))
    files = [phrases.files[i] for i in used]
    known = phrases.hashes or {}
    hashed = manifest.file_examples(root, files, check=ctx.check,
                                    hashes=[known[f] for f in files]
                                    if all(f in known for f in files) else None)
    by_file = dict(zip(used, hashed, strict=True))
    examples = [by_file[i].with_part(part)
                for i, part in zip(phrases.file_index.tolist(), phrases.parts, strict=True)]
    held_ids = [ex.id for ex, h in zip(examples, held.tolist(), strict=True) if h]
    ctx.record_data(name, root, examples, held_out=held_ids,
                    unit="clip" if phrases.mode == "audio" else "phrase",
                    files=len(phrases.files), files_used=len(used),
                    skipped=len(phrases.skipped), mode=phrases.mode, bars=phrases.bars,
                    builtin="bach" if builtin else None)


def sample(ctx: JobContext, p: SampleParams) -> str:
    """Generate new phrases from a trained model and write them as .mid (or .wav) files."""
    from plugins.music.engine import generate as gen

    lm = gen.load_model(p.model, ctx.device)
    ctx.progress(0, p.n, "sampling")
    with _torch_threads(ctx, lm.mode):
        phrases = gen.sample(lm, p.n, p.seed, p.temperature, p.key)
    tempo = p.tempo or lm.tempo
    target, files = _write(ctx, phrases, p.out, "samples", "sample", tempo, p)
    _stamp(files, "sample", lm, p.seed, p)
    ctx.progress(p.n, p.n, "done")
    _emit(ctx, phrases, f"{p.n} samples (seed {p.seed}, temperature {p.temperature:g})",
          target, files, model=str(lm.path), tempo=tempo)
    return str(target)


def interpolate(ctx: JobContext, p: InterpolateParams) -> str:
    """Interpolate between two phrases (slerp between their latent codes)."""
    from plugins.music.engine import generate as gen

    lm = gen.load_model(p.model, ctx.device)
    pa, pb = p.a.with_label("A"), p.b.with_label("B")
    ctx.check()
    with _torch_threads(ctx, lm.mode):
        phrases = gen.interpolate(lm, pa, pb, p.steps, p.temperature)
    tempo = p.tempo or lm.tempo
    target, files = _write(ctx, phrases, p.out, "interpolations", "interp", tempo, p)
    _stamp(files, "interpolate", lm, None, p)
    _emit(ctx, [pa, *phrases, pb], f"A → B in {p.steps} steps", target, files,
          model=str(lm.path), tempo=tempo)
    return str(target)


def variations(ctx: JobContext, p: VariationsParams) -> str:
    """Variations of a phrase: decode latent codes near its own."""
    from plugins.music.engine import generate as gen

    lm = gen.load_model(p.model, ctx.device)
    src = p.source.with_label("original")
    with _torch_threads(ctx, lm.mode):
        phrases = gen.variations(lm, src, p.n, p.amount, p.seed)
    tempo = p.tempo or lm.tempo
    target, files = _write(ctx, phrases, p.out, "variations", "variation", tempo, p)
    _stamp(files, "variations", lm, p.seed, p)
    _emit(ctx, [src, *phrases], f"{p.n} variations (amount {p.amount:g})", target, files,
          model=str(lm.path), tempo=tempo)
    return str(target)


def continue_(ctx: JobContext, p: ContinueParams) -> str:
    """Continue a clip: several ways it could go on, each file holding only the new bars (to
    drop right after the clip in a DAW). The strip shows the clip, then the continuations.
    How: :mod:`plugins.music.engine.continuation`."""
    from plugins.music.engine import generate as gen
    from plugins.music.engine.continuation import continue_phrase

    lm = gen.load_model(p.model, ctx.device)
    clip = p.clip.with_label(p.clip.label or "clip")
    ctx.progress(0, p.n, "continuing")
    with _torch_threads(ctx, lm.mode):
        phrases = continue_phrase(lm, clip, p.bars, p.n, p.temperature, p.seed, p.candidates,
                                  p.rounds, ctx.check)
    tempo = p.tempo or lm.tempo
    target, files = _write(ctx, phrases, p.out, "continuations", "continuation", tempo, p)
    _stamp(files, "continue", lm, p.seed, p)
    ctx.progress(p.n, p.n, "done")
    _emit(ctx, [clip, *phrases], f"{p.n} continuations of {clip.label} ({p.bars} bars)",
          target, files, model=str(lm.path), tempo=tempo)
    return str(target)


def load(ctx: JobContext, p: LoadParams) -> str:
    """Read phrases from a MIDI (or, for audio models, audio) file; with a model, also show what
    the model makes of them (its reconstructions, written as .mid files)."""
    from plugins.music.engine import generate as gen

    path = Path(p.midi).expanduser()
    if p.model is None:
        if not path.exists():
            raise UserError(f"{path} does not exist")
        phrases = gen.phrases_from_midi(path, int(p.bars), p.mode, p.melody, p.limit, p.metre)
        ctx.preview("phrases", {"phrases": [ph.to_payload() for ph in phrases],
                                "title": f"{path.name}: {len(phrases)} phrase(s)",
                                "source": str(path)})
        return str(path)
    lm = gen.load_model(p.model, ctx.device)
    phrases = gen.phrases_from_file(path, lm.cfg, p.melody, p.limit)
    with _torch_threads(ctx, lm.mode):
        recon = gen.reconstruct(lm, phrases)
    target = _out_dir(ctx, p.out, "reconstructions")
    files = gen.write_phrases(recon, target, "reconstruction", lm.tempo)
    _stamp(files, "load", lm, None, p)
    strip = [x for pair in zip(phrases, recon, strict=True) for x in pair]
    _emit(ctx, strip, f"{path.name}: {len(phrases)} phrase(s) and the model's reconstructions",
          target, files, model=str(lm.path), tempo=lm.tempo, source=str(path))
    return str(target)


def _stamp_render(target: Path, p: RenderParams) -> None:
    """A rendering carries the provenance of the notes it plays: the studio MIDI's model, run
    and seed, or none (a rendering of the user's own notes is not generated)."""
    from plugins.common import provenance

    made = provenance.read(p.midi)
    prov = provenance.make("music", "render", params=p, source_type=made.source_type
                           if made is not None else "")
    if made is not None:
        prov.model, prov.model_id, prov.run, prov.seed = (made.model, made.model_id, made.run,
                                                          made.seed)
    provenance.stamp(target, prov)


def render(ctx: JobContext, p: RenderParams) -> str:
    """Render a MIDI file to a WAV file: with FluidSynth and a General MIDI SoundFont when one
    is installed or chosen (each track its own instrument, the drums on channel 10), else with
    the built-in synth; the log and the preview say which synth played and why."""
    from plugins.music.engine import midi as midi_mod
    from plugins.music.engine import soundfont, synth
    from plugins.music.engine.render import render_midi

    target = Path(p.out).expanduser()
    if target.is_dir():
        target = target / (Path(p.midi).stem + ".wav")
    if target.suffix.lower() != ".wav":
        raise UserError(f"--out {target} should end in .wav")
    choice = soundfont.choose(p.synth, p.soundfont)
    ctx.progress(0, 1, "rendering")
    try:
        done, used, count = render_midi(p.midi, p.tempo, p.sample_rate, p.voice, choice)
    except midi_mod.MidiError as exc:
        raise UserError(f"{Path(p.midi).name} {exc}") from None
    synth.write_wav(done.audio, target, p.sample_rate)
    _stamp_render(target, p)
    ctx.progress(1, 1, "done")
    ctx.preview("sound", {"synth": done.synth.name, "soundfont": choice.soundfont.name
                          if choice.soundfont else "", "note": choice.note,
                          "describe": done.describe(), "out": str(target)})
    ctx.log(f"{done.describe()}: {count} notes ({len(done.audio) / p.sample_rate:.1f} s at "
            f"{used:g} bpm) to {target}")
    return str(target)
