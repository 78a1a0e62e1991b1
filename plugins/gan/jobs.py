"""The GAN plugin's jobs: thin glue from a :class:`~studio.jobs.JobContext` to the engine.

Each job takes its params dataclass (``plugins.gan.params``), which is also its command line
(``studio run gan train --data DIR ...``) and the form the panel fills in. ``train`` makes a
run folder; ``sample`` and ``eval`` are the other two command-line jobs; ``generate``,
``interpolate``, ``directions``, ``export`` and ``regenerate`` serve the Explore tab on the
interactive lane and work on the command line too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.gan.engine.results import Generated
from plugins.gan.params import (
    DirectionsParams,
    EvalParams,
    ExportParams,
    GenerateParams,
    InterpolateParams,
    RegenerateParams,
    SampleParams,
    TrainParams,
)
from studio.errors import UserError
from studio.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover
    from plugins.gan.engine.modelfile import LoadedModel


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
def train(ctx: JobContext, p: TrainParams) -> str:
    """Train a GAN on a folder of images (sub-folders are classes)."""
    import torch

    from plugins.common import splits
    from plugins.common.distributed import is_main
    from plugins.common.privacy import spec_of
    from plugins.common.training import Schedule, TrainLoop, refuse_to_overwrite
    from plugins.gan.engine import data as data_mod
    from plugins.gan.engine import modelfile
    from plugins.gan.engine.config import GanConfig, make_config, private_adjustments
    from plugins.gan.engine.task import GanTask
    from plugins.gan.engine.trainer import GanTrainer
    from studio import manifest, storage

    run_dir = ctx.run_dir
    assert run_dir is not None, "train is a makes_run job"
    ckpt_path = run_dir / modelfile.CHECKPOINT
    refuse_to_overwrite(run_dir, ckpt_path, p.resume, "GAN")
    data = p.data
    cfg: GanConfig | None = None
    private_notes: list[str] = []
    if p.resume:
        if not ckpt_path.exists():
            raise UserError(f"nothing to resume in {run_dir}: it has no checkpoint. Start a new "
                            "training run instead (without --resume).")
        done = modelfile.checkpoint_step(run_dir)
        if done is not None and done >= p.steps:
            ctx.log(f"{run_dir.name} is already at step {done}; raise --steps above it to train "
                    "further.")
            return str(run_dir)
        cfg = modelfile.run_config(run_dir)
        data = data or _recorded_data(run_dir)
        if not data:
            raise UserError("this run does not record its data folder: pass --data")
    if not data:
        raise UserError("choose the training images: --data FOLDER (or --data digits for the "
                        "built-in handwritten digits)")

    def load_progress(done: int, total: int) -> None:  # the bar's unit is steps: say it in words
        ctx.progress(0, p.steps, f"reading images {done}/{total}")

    ds = data_mod.load_dataset(data, ctx.workspace, cfg.size if cfg else p.size,
                               ("gray" if cfg.channels == 1 else "rgb") if cfg else p.color,
                               p.max_images, load_progress, ctx.check, ctx.cache)
    ctx.log(ds.report())
    if cfg is None:
        if p.conditional == "yes" and not ds.conditional:
            raise UserError(f"a conditional model needs at least two class sub-folders in "
                            f"{ds.root}; it has {len(ds.classes)}")
        use_classes = ds.conditional and p.conditional != "no"
        native = p.train_size or data_mod.native_size(ds.images, p.size)
        cfg = make_config(p.arch, p.preset, size=p.size, channels=ds.channels,
                          num_classes=len(ds.classes) if use_classes else 0,
                          class_names=list(ds.classes) if use_classes else [],
                          train_size=native if native != p.size else 0,
                          batch_size=p.batch_size, lr_g=p.lr, lr_d=p.lr, diffaug=p.diffaug,
                          ema_decay=p.ema_decay, amp=p.amp, seed=p.seed, holdout=p.holdout)
        spec = spec_of(p)
        if spec is not None:
            cfg.private = spec.to_json()
            private_notes = private_adjustments(cfg)
            cfg.validate()
    elif cfg.conditional and list(ds.classes) != cfg.class_names:
        raise UserError(f"the data's classes ({', '.join(ds.classes) or 'none'}) differ from "
                        f"the run's ({', '.join(cfg.class_names)}): resume with the same data")

    # -- what the run learns from: every image hashed, the held-out ones chosen from their ids
    examples = manifest.file_examples(
        ds.root, ds.files, check=ctx.check,
        progress=lambda d, t: ctx.progress(0, p.steps, f"checking images {d}/{t}"),
        hashes=ds.hashes)
    held = splits.held_out([e.id for e in examples], cfg.holdout, cfg.seed)
    train_mask = np.array([e.id not in held for e in examples], dtype=bool)
    if int(train_mask.sum()) < 8:
        raise UserError(f"holding out {len(held)} of {len(examples)} images leaves "
                        f"{int(train_mask.sum())} to train on; a GAN needs at least 8: lower "
                        "--holdout")
    summary = {**data_mod.summary(ds), "held_out": len(held)}
    ctx.record_data(data_mod.dataset_name(data, ds.root), ds.root.resolve(), examples,
                    held_out=held, unit="image", classes=list(ds.classes),
                    class_counts=summary["class_counts"], skipped=len(ds.skipped),
                    holdout=cfg.holdout)

    info = {"data": summary, "plugin": "gan"}
    if is_main():  # under torchrun, rank 0 alone writes the run folder
        storage.atomic_write_json(run_dir / modelfile.CONFIG_FILE,
                                  {"config": cfg.to_json(), **info,
                                   "step": modelfile.checkpoint_step(run_dir) or 0})
    device = ctx.device
    images = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(ds.labels) if cfg.conditional else None
    keep = torch.from_numpy(train_mask)
    trainer = GanTrainer(cfg, images[keep], None if labels is None else labels[keep], device,
                         planned_steps=p.steps)
    held_out = None
    if held:
        held_out = (images[~keep], None if labels is None else labels[~keep])
    task = GanTask(trainer, run_dir, ctx, info, collapse_threshold=p.collapse_threshold,
                   collapse_after=p.collapse_after, held_out=held_out)
    # On a CPU the statistics are already computed when a step returns, so logging every
    # log_every steps costs nothing and keeps the curves exactly reproducible on resume; an
    # accelerator pays a synchronisation per log and a grid per preview, so a fast GPU logs at
    # most 5 times and previews at most once a second.
    on_cpu = torch.device(device).type == "cpu"
    schedule = Schedule(
        steps=p.steps, max_seconds=None if p.max_minutes is None else p.max_minutes * 60,
        log_every=p.log_every, min_log_interval=0.0 if on_cpu else 0.2,
        eval_every=p.preview_every if held else 0,
        preview_every=p.preview_every, min_preview_interval=0.0 if on_cpu else 1.0,
        checkpoint_every=p.checkpoint_every, preview_on_checkpoint=True)
    loop = TrainLoop(task, schedule, ctx, ckpt_path)
    if p.resume:
        step = loop.resume()
        ctx.log(f"Resuming {run_dir.name} at step {step} of {p.steps}.")
    res = (f"{cfg.size} px" if cfg.net_size == cfg.size else
           f"{cfg.net_size} px (the images' native resolution), shown at {cfg.size} px")
    kind = (f"conditional on {cfg.num_classes} classes" if cfg.conditional else
            "unconditional")
    ctx.log(f"{cfg.arch} · preset {cfg.preset} · {kind}"
            f" · {'colour' if cfg.channels == 3 else 'grayscale'} · learning at {res} · "
            f"batch {cfg.batch_size} · DiffAugment {cfg.diffaug or 'off'} · "
            f"{len(held)} of {len(examples)} images held out · device {device}"
            + (f" · {str(trainer.amp).replace('torch.', '')}" if trainer.amp else ""))
    if trainer.dp is not None:
        _log_privacy(ctx, trainer, private_notes, p.steps)
    try:
        loop.run()
    finally:  # a stopped run's generator is a usable model too
        _record_model(ctx, run_dir, loop.state.step, trainer)
    return str(run_dir)


def _log_privacy(ctx: JobContext, trainer: Any, notes: list[str], steps: int) -> None:
    """What training privately means for this run, in words: the settings, what had to
    change, what the guarantee covers and what it does not."""
    dp = trainer.dp
    ctx.log(dp.describe())
    for note in [*notes, *trainer.D.private_notes]:
        ctx.log(note)
    ctx.log("The guarantee covers both networks: only the discriminator sees your images, and "
            "the generator learns from nothing but its noisy, clipped updates. It does not "
            "cover the live curves, the sample-variety figure or the held-out check, which "
            "read the images directly (they stay on this computer).")
    projected = dp.projected_epsilon(steps * trainer.cfg.n_critic)
    target = dp.spec.epsilon if dp.spec.noise_multiplier <= 0 else None
    if target is not None and projected > target * 1.02:
        ctx.warn(f"Training to step {steps:,} will spend ε = {projected:.2f}, more than the "
                 f"target {target:g} this run's noise was chosen for (it started with fewer "
                 "steps).")


def _recorded_data(run_dir: Path) -> str | None:
    """The data a run trained on: its manifest's absolute location (runs made before the
    manifest recorded data: config.json's path)."""
    from plugins.gan.engine import modelfile
    from studio import manifest

    m = manifest.read(run_dir)
    ds = m.dataset() if m is not None else None
    if ds is not None and ds.location:
        return ds.location
    path = ((modelfile.read_config(run_dir) or {}).get("data") or {}).get("path")
    return str(path) if path else None


def _record_model(ctx: JobContext, run_dir: Path, step: int, trainer: Any = None) -> None:
    from plugins.gan.engine import modelfile
    from studio import manifest

    generator = run_dir / modelfile.GENERATOR_FILE
    if not generator.exists():
        return
    extra = {}
    if trainer is not None and trainer.dp is not None:  # what the model's training spent
        extra["privacy"] = trainer.dp.summary()
    try:
        ctx.add_artifact(run_dir, "model", model_kind="gan", step=step,
                         weights={modelfile.GENERATOR_FILE: manifest.sha256_file(generator)},
                         **extra)
    except OSError as exc:  # the model is on disk all the same; the library just won't list it
        ctx.warn(f"could not record the model in the run's manifest: {exc}")


def _model_named(ctx: JobContext, png: Path) -> Path:
    """The run a GAN PNG names: by its folder name among the workspace's GAN runs and the
    model library's GAN models (PNGs from older studios named an absolute path: used when it
    still exists)."""
    from plugins.gan.engine import explore
    from studio import models

    named = explore.read_sample(png).get(f"{explore.META_PREFIX}model", "")
    if named and Path(named).is_absolute() and Path(named).is_dir():
        return Path(named)
    name = Path(named).name
    if name:
        here = ctx.workspace / "runs" / "gan" / name
        if here.is_dir():
            return here
        for entry in models.ModelLibrary(ctx.workspace, hf_cache=False).scan(["gan"]):
            if entry.path.name == name:
                return entry.path
    raise UserError(f"{png.name} was drawn by the GAN model “{name or '?'}”, which is not in "
                    "your workspace or model folders: choose the model (--model)")


# ----------------------------------------------------------------------------------------------
# sample / eval
# ----------------------------------------------------------------------------------------------
def _stamp(path: Path, job: str, loaded: LoadedModel, seed: int, p: Any) -> Path:
    """The provenance manifest every exported file carries (model named, never its path)."""
    from plugins.common import provenance

    return provenance.stamp(path, provenance.make("gan", job, model=loaded.run_dir,
                                                  model_id=loaded.model_id, seed=seed,
                                                  params=p))


def _grid_png(loaded: LoadedModel, images: np.ndarray, target: Path, seed: int,
              label: int | None, edits: list[float], job: str, p: Any) -> np.ndarray:
    """Save the images as one grid PNG carrying the recipe (tile i uses seed + i)."""
    from plugins.common import pngmeta
    from plugins.common.images import make_grid
    from plugins.gan.engine import explore

    n = len(images)
    text = {"Software": "Generative Studio (GAN)", "gan:model": loaded.run_dir.resolve().name,
            "gan:model_id": loaded.model_id, "gan:seed": str(seed), "gan:n": str(n),
            "gan:label": "any" if label is None else loaded.class_names[label],
            "gan:edits": ",".join(f"{v:g}" for v in edits),
            "Description": f"{n} GAN samples, seeds {seed}..{seed + n - 1} (tile i uses seed+i)"}
    grid = make_grid(images, nrow=explore.grid_columns(n))
    pngmeta.save_png(grid, target, text)
    _stamp(target, job, loaded, seed, p)
    return grid


def sample(ctx: JobContext, p: SampleParams) -> str:
    """Generate a grid of samples as a PNG that records how it was made."""
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(p.model, ctx.device)
    lab = explore.parse_label(loaded, p.label)
    samples = explore.samples_for(loaded, p.n, p.seed, lab, p.edits)
    ctx.progress(0, p.n, "generating")
    images = explore.generate(loaded, samples)
    if p.scale > 1:
        images = np.stack([np.kron(im, np.ones((p.scale, p.scale, 1), dtype=np.uint8))
                           for im in images])
    target = Path(p.out) if p.out else loaded.run_dir / "samples" / f"seed-{p.seed}.png"
    grid = _grid_png(loaded, images, target, p.seed, lab, p.edits, "sample", p)
    if p.individual:
        folder = target.with_suffix("")
        for i, s in enumerate(samples):
            ctx.check()
            _stamp(explore.export_png(loaded, s, folder / f"seed-{s.seed}.png", p.scale),
                   "sample", loaded, s.seed, p)
            ctx.progress(i + 1, p.n, "writing PNGs")
    ctx.progress(p.n, p.n, "done")
    ctx.preview("image", grid)
    return str(target)


def eval(ctx: JobContext, p: EvalParams) -> dict[str, Any]:
    """Fréchet distance and KID between real images and generated ones.

    InceptionV3 features with --inception, else a domain classifier's (see
    :class:`~plugins.gan.params.EvalParams`)."""
    from plugins.common import imagemetrics as im
    from plugins.gan.engine import data as data_mod
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model
    from studio import storage

    n, seed = p.n, p.seed
    loaded = load_model(p.model, ctx.device)
    cfg = loaded.config
    ds = data_mod.load_dataset(p.data, ctx.workspace, cfg.size,
                               "gray" if cfg.channels == 1 else "rgb", p.max_real,
                               lambda d, t: ctx.progress(0, n, f"reading images {d}/{t}"),
                               ctx.check, ctx.cache)
    if cfg.conditional and list(ds.classes) != cfg.class_names:
        ctx.warn(f"the data's classes ({', '.join(ds.classes)}) differ from the model's "
                 f"({', '.join(cfg.class_names)})")
    # Generated classes follow the real class frequencies (so FD compares like with like).
    rng = np.random.default_rng(seed)
    labels: list[int | None] = [None] * n
    if cfg.conditional:
        known = ds.labels[(ds.labels >= 0) & (ds.labels < cfg.num_classes)]
        freq = np.bincount(known, minlength=cfg.num_classes).astype(float)
        freq = freq / freq.sum() if freq.sum() else np.full(cfg.num_classes, 1 / cfg.num_classes)
        labels = [int(v) for v in rng.choice(cfg.num_classes, size=n, p=freq)]
    samples = [explore.Sample(seed + i, labels[i]) for i in range(n)]
    fakes = []
    for i in range(0, n, 250):
        ctx.check()
        fakes.append(explore.generate(loaded, samples[i:i + 250]))
        ctx.progress(min(n, i + 250), n, "generating")
    fake = np.concatenate(fakes)

    extra: dict[str, Any] = {}
    if p.inception is not None:
        ctx.progress(n, n, "loading InceptionV3")
        extractor: Any = im.load_inception(p.inception, ctx.device)
        extractor.check = ctx.check
        extractor.progress = lambda d, t: ctx.progress(d, t, "InceptionV3 features")
    else:
        cache = loaded.run_dir / f"eval-domain-{data_mod.summary(ds)['fingerprint']}.safetensors"
        extractor = None
        if cache.exists():
            try:
                extractor = im.DomainClassifier.load(cache, ctx.device)
            except UserError:
                extractor = None
        if extractor is None:
            ctx.log("Training a domain classifier on the real images (cached for later "
                    "evaluations of this run)...")
            extractor = im.train_domain_classifier(
                ds.images, ds.labels if ds.classes else None, steps=p.classifier_steps,
                seed=seed, device=ctx.device, check=ctx.check, class_names=list(ds.classes),
                progress=lambda d, t: ctx.progress(d, t, "training the domain classifier"))
            try:
                extractor.save(cache)
            except OSError as exc:
                ctx.warn(f"could not cache the domain classifier: {exc}")
        extra["classifier_val_accuracy"] = extractor.val_accuracy
        if cfg.conditional and extractor.mode == "classes" and list(ds.classes) == \
                cfg.class_names:
            probs = extractor.predict_proba(fake)
            extra["class_agreement"] = float((probs.argmax(1) == np.asarray(labels)).mean())
            extra["confident"] = float((probs.max(1) > 0.9).mean())
    ctx.progress(n, n, "computing features")
    result = im.evaluate_images(ds.images, fake, extractor)
    result.update(extra)
    result.update({"model": str(loaded.run_dir), "model_id": loaded.model_id,
                   "step": loaded.info.get("step"), "data": str(ds.root), "seed": seed})
    label = "FID" if result["comparable"] else "domain FD"
    ctx.log(f"{label} {result['fd']:.3f} · KID {result['kid']:.5f} ± {result['kid_std']:.5f} "
            f"({result['extractor']}, {result['n_real']} real vs {result['n_fake']} generated)"
            + ("" if result["comparable"] else
               " — measured with a classifier trained on this data: compare it only with other "
               "runs evaluated the same way, never with published FID"))
    history_path = loaded.run_dir / "evals.json"
    try:
        history = storage.read_json(history_path) if history_path.exists() else []
        if not isinstance(history, list):
            history = []
    except (OSError, ValueError):
        history = []
    storage.atomic_write_json(history_path, [*history, result])
    return result


# ----------------------------------------------------------------------------------------------
# Explore (interactive lane)
# ----------------------------------------------------------------------------------------------
def generate(ctx: JobContext, p: GenerateParams) -> Generated:
    """Generate n images (image i from seed + i), of one class and with edits if asked.

    --out also saves them as one PNG grid that records how it was made."""
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(p.model, ctx.device)
    lab = explore.parse_label(loaded, p.label)
    samples = explore.samples_for(loaded, p.n, p.seed, lab, p.edits)
    ctx.check()
    images = explore.generate(loaded, samples)
    path = None
    if p.out is not None:
        path = Path(p.out)
        _grid_png(loaded, images, path, p.seed, lab, p.edits, "generate", p)
    return Generated(images, samples, explore.describe(loaded), path)


def interpolate(ctx: JobContext, p: InterpolateParams) -> Generated:
    """Slerp between two samples; --out writes a looping GIF.

    The class embeddings are blended too, so a sample of one class morphs into another."""
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(p.model, ctx.device)
    a = explore.Sample(p.seed_a, explore.label_for(loaded, p.seed_a,
                                                   explore.parse_label(loaded, p.label_a)),
                       list(p.edits))
    b = explore.Sample(p.seed_b, explore.label_for(loaded, p.seed_b,
                                                   explore.parse_label(loaded, p.label_b)),
                       list(p.edits))
    ctx.check()
    images = explore.interpolate(loaded, a, b, p.frames)
    path = None
    if p.out is not None:
        path = _stamp(explore.save_gif(images, Path(p.out), p.ms_per_frame, scale=p.scale),
                      "interpolate", loaded, p.seed_a, p)
    return Generated(images, [a, b], explore.describe(loaded), path)


def directions(ctx: JobContext, p: DirectionsParams) -> dict[str, Any]:
    """GANSpace: the top k principal directions of the generator (cached in the run folder)."""
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(p.model, ctx.device)
    ctx.progress(0, None, "finding principal directions")
    d = explore.load_directions(loaded, p.k)
    explained = [round(float(v), 4) for v in d.explained]
    ctx.log("GANSpace directions, variance explained: "
            + ", ".join(f"#{i + 1} {v:.1%}" for i, v in enumerate(explained)))
    return {"k": len(explained), "explained": explained, "model_id": loaded.model_id}


def export(ctx: JobContext, p: ExportParams) -> str:
    """Save one sample as a PNG that records how to draw it again.

    Its metadata carries the model, seed, class, edits and the latent itself."""
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(p.model, ctx.device)
    s = explore.Sample(p.seed, explore.label_for(loaded, p.seed,
                                                 explore.parse_label(loaded, p.label)),
                       list(p.edits))
    return str(_stamp(explore.export_png(loaded, s, Path(p.out), p.scale), "export", loaded,
                      p.seed, p))


def regenerate(ctx: JobContext, p: RegenerateParams) -> str:
    """Draw an exported PNG again from the metadata it carries."""
    from plugins.common import pngmeta
    from plugins.gan.engine import explore

    png = Path(p.png)
    image, text, loaded = explore.regenerate(png, p.model or _model_named(ctx, png), ctx.device)
    if text.get("gan:model_id") and text["gan:model_id"] != loaded.model_id:
        ctx.warn("the model's weights changed since this PNG was made (it was trained further): "
                 "the image will differ")
    target = Path(p.out) if p.out else png.with_name(png.stem + "-again.png")
    # the copy names the model that drew it (PNGs from older studios named its absolute path)
    text = {k: v for k, v in text.items() if k not in ("XML:com.adobe.xmp",) and
            not k.startswith("generative-studio:")} | {"gan:model": loaded.run_dir.name,
                                                       "gan:model_id": loaded.model_id}
    pngmeta.save_png(image, target, text)
    seed = text.get("gan:seed", "")
    _stamp(target, "regenerate", loaded, int(seed) if seed.lstrip("-").isdigit() else 0, p)
    ctx.preview("image", image)
    return str(target)
