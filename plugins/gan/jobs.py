"""The GAN plugin's jobs: thin glue from a :class:`~studio.jobs.JobContext` to the engine.

Each function's signature is its command line (``studio run gan train --data DIR ...``) and the
form the panel fills in. ``train`` makes a run folder; ``sample`` and ``eval`` are the other two
command-line jobs of the issue; ``generate``, ``interpolate``, ``directions``, ``export`` and
``regenerate`` serve the Explore tab on the interactive lane and work on the command line too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from studio.errors import UserError
from studio.jobs import JobContext

Arch = Literal["dcgan", "wgan-gp", "sngan"]


@dataclass
class Generated:
    """Images made by an Explore job (the panel reads the arrays; the CLI prints ``str``)."""

    images: np.ndarray  # uint8 (N, H, W, C)
    samples: list[Any] = field(default_factory=list)  # explore.Sample per image
    model: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        n, h, w, _ = self.images.shape
        text = f"{n} image(s) of {w}x{h}"
        return f"{self.path}" if self.path else text


def _floats(values: list[str] | None, name: str = "--edits") -> list[float]:
    out = []
    for v in values or []:
        try:
            out.append(float(v))
        except ValueError:
            raise UserError(f"{name}: {v!r} is not a number (give comma-separated numbers such "
                            "as 1.5,0,-2)") from None
    return out


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
def train(
    ctx: JobContext,
    data: str | None = None,
    size: Literal[32, 64, 128] = 32,
    steps: int = 5000,
    arch: Arch | None = None,
    preset: Literal["fast", "balanced", "quality"] = "fast",
    conditional: Literal["auto", "yes", "no"] = "auto",
    color: Literal["auto", "rgb", "gray"] = "auto",
    train_size: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    diffaug: str | None = None,
    ema_decay: float | None = None,
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto",
    preview_every: int = 200,
    checkpoint_every: int = 1000,
    log_every: int = 10,
    collapse_threshold: float = 0.3,
    collapse_after: int = 500,
    max_images: int | None = None,
    max_minutes: float | None = None,
    seed: int = 0,
    resume: bool = False,
) -> str:
    """Train a GAN on a folder of images (sub-folders are classes).

    Args:
        data: folder of images, searched recursively; "digits" for the built-in sample set.
        size: output image size in pixels.
        steps: total generator steps (a resumed run continues up to this number).
        arch: dcgan (the book's), wgan-gp or sngan (spectral norm + hinge). Default: the preset's.
        preset: model size: fast (CPU, minutes), balanced, quality (GPU).
        conditional: learn the class sub-folders (auto: when there are at least two).
        color: auto detects grayscale folders; rgb or gray force it.
        train_size: resolution the networks work at; default: the images' native resolution
            (smaller only when enlarging loses nothing, e.g. upscaled scans).
        batch_size: images per step (default: the preset's).
        lr: learning rate for both networks (default: the architecture's).
        diffaug: DiffAugment policy, a comma list of color, translation, cutout ("" for none).
        ema_decay: generator weight averaging used for sampling (default 0.999).
        amp: mixed precision on CUDA (auto: bf16 where supported, else fp16).
        preview_every: steps between preview grids.
        checkpoint_every: steps between checkpoints (one is also written at Stop).
        log_every: steps between metric points.
        collapse_threshold: warn when sample diversity falls below this share of the real
            images' diversity.
        collapse_after: steps before the collapse watch starts (early samples all look alike).
        max_images: use at most this many images.
        max_minutes: stop after this much training time (checkpoint kept; Resume continues).
        seed: random seed (weights, batches, noise).
        resume: continue the run in --out from its last checkpoint.
    """
    import torch

    from plugins.gan.engine import data as data_mod
    from plugins.gan.engine import loop, modelfile
    from plugins.gan.engine.config import GanConfig, make_config
    from plugins.gan.engine.trainer import GanTrainer
    from studio import storage

    run_dir = ctx.run_dir
    assert run_dir is not None, "train is a makes_run job"
    ckpt_path = run_dir / modelfile.CHECKPOINT
    state = None
    old = modelfile.read_config(run_dir) or {}
    if resume:
        if not ckpt_path.exists():
            raise UserError(f"nothing to resume in {run_dir}: it has no checkpoint. Start a new "
                            "training run instead (without --resume).")
        try:
            state = storage.load_state(ckpt_path, device="cpu")
        except storage.CorruptFileError as exc:
            raise UserError(f"the checkpoint in {run_dir} cannot be read ({exc})") from None
        cfg = GanConfig.from_json(state["config"])
        done = int(state["step"])
        if done >= steps:
            ctx.log(f"{run_dir.name} is already at step {done}; raise --steps above it to train "
                    "further.")
            return str(run_dir)
        data = data or (old.get("data") or {}).get("path")
        if not data:
            raise UserError("this run does not record its data folder: pass --data")
    elif ckpt_path.exists():
        raise UserError(f"{run_dir} already holds a GAN run. Use Resume (--resume) to continue "
                        "it, or choose a new output folder.")
    if not data:
        raise UserError("choose the training images: --data FOLDER (or --data digits for the "
                        "built-in handwritten digits)")

    def load_progress(done: int, total: int) -> None:  # the bar's unit is steps: say it in words
        ctx.progress(0, steps, f"reading images {done}/{total}")

    if state is None:
        ds = data_mod.load_dataset(data, ctx.workspace, size, color, max_images, load_progress,
                                   ctx.check)
    else:
        ds = data_mod.load_dataset(data, ctx.workspace, cfg.size,
                                   "gray" if cfg.channels == 1 else "rgb", max_images,
                                   load_progress, ctx.check)
    ctx.log(ds.report())
    summary = data_mod.summary(ds)
    ctx.add_dataset(ds.root, images=len(ds), skipped=len(ds.skipped), classes=ds.classes,
                    fingerprint=summary["fingerprint"])

    if state is None:
        if conditional == "yes" and not ds.conditional:
            raise UserError(f"a conditional model needs at least two class sub-folders in "
                            f"{ds.root}; it has {len(ds.classes)}")
        use_classes = ds.conditional and conditional != "no"
        native = train_size or data_mod.native_size(ds.images, size)
        cfg = make_config(arch, preset, size=size, channels=ds.channels,
                          num_classes=len(ds.classes) if use_classes else 0,
                          class_names=list(ds.classes) if use_classes else [],
                          train_size=native if native != size else 0,
                          batch_size=batch_size, lr_g=lr, lr_d=lr, diffaug=diffaug,
                          ema_decay=ema_decay, amp=amp, seed=seed)
    else:
        if cfg.conditional and list(ds.classes) != cfg.class_names:
            raise UserError(f"the data's classes ({', '.join(ds.classes) or 'none'}) differ from "
                            f"the run's ({', '.join(cfg.class_names)}): resume with the same data")
        if old.get("data", {}).get("fingerprint") not in (None, summary["fingerprint"]):
            ctx.warn("the data folder changed since this run started; continuing with it as it "
                     "is now")

    info = {"data": summary, "plugin": "gan"}
    storage.atomic_write_json(run_dir / modelfile.CONFIG_FILE,
                              {"config": cfg.to_json(), **info,
                               "step": int(state["step"]) if state else 0})
    device = ctx.device
    images = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(ds.labels) if cfg.conditional else None
    trainer = GanTrainer(cfg, images, labels, device)
    if state is not None:
        trainer.load_state_dict(state)
        ctx.truncate_metrics(trainer.step)
        ctx.log(f"Resuming {run_dir.name} at step {trainer.step} of {steps}.")
    res = (f"{cfg.size} px" if cfg.net_size == cfg.size else
           f"{cfg.net_size} px (the images' native resolution), shown at {cfg.size} px")
    kind = (f"conditional on {cfg.num_classes} classes" if cfg.conditional else
            "unconditional")
    ctx.log(f"{cfg.arch} · preset {cfg.preset} · {kind}"
            f" · {'colour' if cfg.channels == 3 else 'grayscale'} · learning at {res} · "
            f"batch {cfg.batch_size} · DiffAugment {cfg.diffaug or 'off'} · device {device}"
            + (f" · {str(trainer.amp).replace('torch.', '')}" if trainer.amp else ""))
    schedule = loop.Schedule(steps=steps, log_every=max(1, log_every),
                             preview_every=max(1, preview_every),
                             checkpoint_every=max(1, checkpoint_every),
                             collapse_threshold=collapse_threshold,
                             collapse_after=max(0, collapse_after),
                             max_seconds=None if max_minutes is None else max_minutes * 60)
    loop.run(trainer, schedule, run_dir, ctx, info)
    ctx.add_artifact(run_dir / modelfile.GENERATOR_FILE, "generator", step=trainer.step)
    return str(run_dir)


# ----------------------------------------------------------------------------------------------
# sample / eval
# ----------------------------------------------------------------------------------------------
def sample(
    ctx: JobContext,
    model: Path,
    n: int = 64,
    seed: int = 1,
    out: Path | None = None,
    label: str | None = None,
    edits: list[str] | None = None,
    scale: int = 1,
    individual: bool = False,
) -> str:
    """Generate a grid of samples as a PNG that records how it was made.

    Args:
        model: a GAN run folder (or its generator.safetensors).
        n: number of images.
        seed: image i uses seed + i (so any single image can be made again).
        out: PNG to write (default: samples/seed-SEED.png in the run folder).
        label: class name or index for conditional models (default: classes in turn).
        edits: GANSpace slider values, comma separated (e.g. 2,0,-1).
        scale: enlarge each image this many times (nearest neighbour).
        individual: also write each image as its own PNG with full metadata.
    """
    from plugins.common import pngmeta
    from plugins.common.images import make_grid
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(model, ctx.device)
    lab = explore.parse_label(loaded, label)
    samples = explore.samples_for(loaded, n, seed, lab, _floats(edits))
    ctx.progress(0, n, "generating")
    images = explore.generate(loaded, samples)
    if scale > 1:
        images = np.stack([np.kron(im, np.ones((scale, scale, 1), dtype=np.uint8))
                           for im in images])
    target = Path(out) if out else loaded.run_dir / "samples" / f"seed-{seed}.png"
    if target.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, not {target.name}")
    names = loaded.class_names
    text = {"Software": "Generative Studio (GAN)", "gan:model": str(loaded.run_dir.resolve()),
            "gan:model_id": loaded.model_id, "gan:seed": str(seed), "gan:n": str(n),
            "gan:label": "any" if lab is None else names[lab],
            "gan:edits": ",".join(_floats_text(edits)),
            "Description": f"{n} GAN samples, seeds {seed}..{seed + n - 1} (tile i uses seed+i)"}
    pngmeta.save_png(make_grid(images, nrow=explore.grid_columns(n)), target, text)
    if individual:
        folder = target.with_suffix("")
        for i, s in enumerate(samples):
            ctx.check()
            explore.export_png(loaded, s, folder / f"seed-{s.seed}.png", scale)
            ctx.progress(i + 1, n, "writing PNGs")
    ctx.progress(n, n, "done")
    ctx.preview("image", make_grid(images, nrow=explore.grid_columns(n)))
    return str(target)


def _floats_text(values: list[str] | None) -> list[str]:
    return [f"{v:g}" for v in _floats(values)]


def eval(
    ctx: JobContext,
    model: Path,
    data: str,
    n: int = 1000,
    inception: Path | None = None,
    classifier_steps: int = 300,
    max_real: int = 5000,
    seed: int = 0,
) -> dict[str, Any]:
    """Fréchet distance and KID between real images and generated ones.

    With --inception (pytorch-fid's pt_inception-2015-12-05 weights, or torchvision's
    inception_v3) the numbers are in InceptionV3 feature space. Without it, a small classifier is
    trained on the real images and its features are used: a "domain FD" that tracks progress on
    this data set but is not comparable with published FID.

    Args:
        model: a GAN run folder.
        data: the real images (a folder, or "digits").
        n: number of generated images.
        inception: InceptionV3 weights file (.pth or .safetensors).
        classifier_steps: training steps of the domain classifier (cached in the run folder).
        max_real: use at most this many real images.
        seed: seeds of the generated images start here.
    """
    from plugins.common import imagemetrics as im
    from plugins.gan.engine import data as data_mod
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model
    from studio import storage

    if n < 10:
        raise UserError("use at least 10 generated images (1000 or more for stable numbers)")
    loaded = load_model(model, ctx.device)
    cfg = loaded.config
    ds = data_mod.load_dataset(data, ctx.workspace, cfg.size,
                               "gray" if cfg.channels == 1 else "rgb", max_real,
                               lambda d, t: ctx.progress(0, n, f"reading images {d}/{t}"),
                               ctx.check)
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
    if inception is not None:
        ctx.progress(n, n, "loading InceptionV3")
        extractor: Any = im.load_inception(inception, ctx.device)
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
                ds.images, ds.labels if ds.classes else None, steps=classifier_steps, seed=seed,
                device=ctx.device, check=ctx.check, class_names=list(ds.classes),
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
def generate(
    ctx: JobContext,
    model: Path,
    n: int = 16,
    seed: int = 1,
    label: str | None = None,
    edits: list[str] | None = None,
) -> Generated:
    """Generate n images (image i from seed + i), optionally of one class and with GANSpace edits.

    Args:
        model: a GAN run folder.
        n: number of images.
        seed: first seed.
        label: class name or index (conditional models; default: classes in turn).
        edits: GANSpace slider values, comma separated.
    """
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(model, ctx.device)
    samples = explore.samples_for(loaded, n, seed, explore.parse_label(loaded, label),
                                  _floats(edits))
    ctx.check()
    images = explore.generate(loaded, samples)
    return Generated(images, samples, explore.describe(loaded))


def interpolate(
    ctx: JobContext,
    model: Path,
    seed_a: int,
    seed_b: int,
    label_a: str | None = None,
    label_b: str | None = None,
    frames: int = 8,
    edits: list[str] | None = None,
    out: Path | None = None,
    ms_per_frame: int = 120,
    scale: int = 4,
) -> Generated:
    """Slerp between two samples (their class embeddings are blended too); --out writes a GIF.

    Args:
        model: a GAN run folder.
        seed_a: seed of the first sample.
        seed_b: seed of the second sample.
        label_a: class of the first sample (default: picked by its seed).
        label_b: class of the second sample.
        frames: images in the strip.
        edits: GANSpace slider values applied to both ends.
        out: GIF file to write (it plays forth and back, looping).
        ms_per_frame: GIF frame time in milliseconds.
        scale: GIF enlargement (nearest neighbour).
    """
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(model, ctx.device)
    e = _floats(edits)
    a = explore.Sample(seed_a, explore.label_for(loaded, seed_a,
                                                 explore.parse_label(loaded, label_a)), e)
    b = explore.Sample(seed_b, explore.label_for(loaded, seed_b,
                                                 explore.parse_label(loaded, label_b)), e)
    ctx.check()
    images = explore.interpolate(loaded, a, b, frames)
    path = None
    if out is not None:
        target = Path(out)
        if target.suffix.lower() != ".gif":
            raise UserError(f"--out must name a .gif file, not {target.name}")
        path = explore.save_gif(images, target, ms_per_frame, scale=max(1, scale))
    return Generated(images, [a, b], explore.describe(loaded), path)


def directions(ctx: JobContext, model: Path, k: int = 8) -> dict[str, Any]:
    """GANSpace: the top k principal directions of the generator (cached in the run folder).

    Args:
        model: a GAN run folder.
        k: number of directions.
    """
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    loaded = load_model(model, ctx.device)
    ctx.progress(0, None, "finding principal directions")
    d = explore.load_directions(loaded, k)
    explained = [round(float(v), 4) for v in d.explained]
    ctx.log("GANSpace directions, variance explained: "
            + ", ".join(f"#{i + 1} {v:.1%}" for i, v in enumerate(explained)))
    return {"k": len(explained), "explained": explained, "model_id": loaded.model_id}


def export(
    ctx: JobContext,
    model: Path,
    seed: int,
    out: Path,
    label: str | None = None,
    edits: list[str] | None = None,
    scale: int = 1,
) -> str:
    """Save one sample as a PNG carrying model, seed, class, edits and latent in its metadata.

    Args:
        model: a GAN run folder.
        seed: the sample's seed.
        out: PNG file to write.
        label: class name or index (default: picked by the seed).
        edits: GANSpace slider values.
        scale: enlarge this many times (nearest neighbour).
    """
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model

    target = Path(out)
    if target.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, not {target.name}")
    loaded = load_model(model, ctx.device)
    s = explore.Sample(seed, explore.label_for(loaded, seed, explore.parse_label(loaded, label)),
                       _floats(edits))
    return str(explore.export_png(loaded, s, target, max(1, scale)))


def regenerate(ctx: JobContext, png: Path, out: Path | None = None,
               model: Path | None = None) -> str:
    """Draw an exported PNG again from the metadata it carries.

    Args:
        png: a PNG exported by the GAN plugin.
        out: where to write the regenerated PNG (default: beside it, "-again" added).
        model: use this run folder instead of the one named in the PNG.
    """
    from plugins.common import pngmeta
    from plugins.gan.engine import explore

    image, text, loaded = explore.regenerate(Path(png), model, ctx.device)
    if text.get("gan:model_id") and text["gan:model_id"] != loaded.model_id:
        ctx.warn("the model's weights changed since this PNG was made (it was trained further): "
                 "the image will differ")
    target = Path(out) if out else Path(png).with_name(Path(png).stem + "-again.png")
    pngmeta.save_png(image, target, text)
    ctx.preview("image", image)
    return str(target)
