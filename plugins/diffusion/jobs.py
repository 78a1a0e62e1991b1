"""The diffusion plugin's jobs: thin glue from a job context to the engine.

Each job takes its params dataclass (``plugins.diffusion.params``), which is also its command
line (``studio run diffusion sample --model DIR --n 16 ...``; see ``--help``) and what the panel
submits.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.errors import UserError
from studio.jobs import JobContext

from .params import (
    Generation,
    Img2ImgParams,
    InfoParams,
    InpaintParams,
    OutpaintParams,
    SampleParams,
    TrainParams,
)

if TYPE_CHECKING:  # pragma: no cover
    from .engine.train import TrainConfig

_CHANNELS = {"auto": 0, "gray": 1, "rgb": 3}


def train(ctx: JobContext, p: TrainParams) -> str:
    """Train a DDPM on a folder of images; saves a diffusers pipeline in RUN/model."""
    from plugins.common.training import TrainLoop

    from .engine.train import (
        CHECKPOINT,
        MODEL_DIR,
        DDPMTask,
        check_out_folder,
        load_data,
        save_config,
        settle_config,
    )

    assert ctx.run_dir is not None  # makes_run=True
    run_dir = ctx.run_dir
    check_out_folder(run_dir, p.resume)
    resuming = p.resume and (run_dir / CHECKPOINT).exists()
    if p.resume and not resuming:
        ctx.warn(f"nothing to resume in {run_dir}: starting a new run there")
    cfg = settle_config(train_config(p), run_dir, resuming, ctx)
    data = load_data(cfg, ctx.workspace, ctx, ctx.cache)
    ctx.record_data(data.name, data.root, data.examples, held_out=data.held_out, unit="image",
                    size=cfg.size, channels=cfg.channels, skipped=data.skipped,
                    classes=data.classes)
    save_config(cfg, run_dir)
    task = DDPMTask(cfg, data, run_dir, ctx.device, ctx)
    loop = TrainLoop(task, cfg.schedule(evaluates=bool(data.held_out)), ctx,
                     run_dir / CHECKPOINT)
    if resuming:
        ctx.log(f"resumed from step {loop.resume()}")
    if task.dp is not None:
        task.log_privacy(cfg.steps)
    model_dir = run_dir / MODEL_DIR
    try:
        loop.run()
    finally:  # a stopped run's model is usable too: the library lists it
        if (model_dir / "model_index.json").exists():
            extra = {"privacy": task.dp.summary()} if task.dp is not None else {}
            ctx.add_artifact(model_dir, "model", model_kind="diffusers-pipeline",
                             format="DDPMPipeline/safetensors", **extra)
    return str(model_dir)


def train_config(p: TrainParams) -> TrainConfig:
    """The engine's ``TrainConfig`` for ``p`` (tests and benches build their runs with it)."""
    from plugins.common.images import absolute_data

    from .engine.train import TrainConfig

    return TrainConfig(data=absolute_data(p.data) if p.data else "",
                       size=int(p.size), channels=_CHANNELS[p.channels],
                       preset=p.preset, steps=p.steps, batch_size=p.batch_size, lr=p.lr,
                       ema_decay=p.ema_decay, prediction=p.prediction, flip=p.flip, seed=p.seed,
                       sample_every=p.sample_every, checkpoint_every=p.checkpoint_every,
                       minutes=p.minutes, holdout=p.holdout, private=_privacy(p))


def _privacy(p: TrainParams) -> dict[str, Any]:
    """The run's privacy settings (empty: trained normally)."""
    from plugins.common.privacy import spec_of

    spec = spec_of(p)
    return spec.to_json() if spec is not None else {}


def info(ctx: JobContext, p: InfoParams) -> dict[str, Any]:
    """Describe a model (kind, native size, inpainting or not) from its configuration files."""
    from .engine.loading import inspect_model

    return inspect_model(p.model).to_json()


def sample(ctx: JobContext, p: SampleParams) -> str:
    """Generate images (text-to-image, or unconditional samples); writes a PNG grid."""
    hires = None
    if p.hires_scale > 0:
        from .engine.hires import HiresSpec

        hires = HiresSpec(scale=p.hires_scale, steps=p.hires_steps, denoise=p.denoise,
                          upscaler=p.hires_upscaler)
    req = _request(p, "txt2img", width=p.width, height=p.height, hires=hires)
    return _run(ctx, p, req, p.save_each)


def img2img(ctx: JobContext, p: Img2ImgParams) -> str:
    """Redraw an image: noise it to the strength and denoise it again."""
    req = _request(p, "img2img", strength=p.strength, image=p.image)
    return _run(ctx, p, req, p.save_each)


def inpaint(ctx: JobContext, p: InpaintParams) -> str:
    """Repaint the white part of a mask; everything outside it stays as it was."""
    req = _request(p, "inpaint", strength=p.strength, image=p.image, mask=p.mask,
                   mask_blur=_blur(p.mask_blur, p.image))
    return _run(ctx, p, req, p.save_each)


def outpaint(ctx: JobContext, p: OutpaintParams) -> str:
    """Grow the canvas by the given margins and paint the new area to match the image."""
    from .engine.imageio import grow_canvas

    grown, mask = grow_canvas(p.image, p.left, p.top, p.right, p.bottom, p.overlap)
    req = _request(p, "outpaint", image=grown, mask=mask, mask_blur=_blur(p.mask_blur, grown))
    return _run(ctx, p, req, False)


def _request(p: Generation, mode: str, **specific: Any) -> Any:
    """The engine's request from the settings every generation shares, plus the mode's own."""
    from studio import models

    from .engine.adapters import library_finders, parse_lora
    from .engine.generate import Request

    loras = [parse_lora(s) for s in p.lora]
    find_lora, find_embeddings = library_finders(models.library(), [s.path for s in loras])
    return Request(mode=mode, prompt=p.prompt, negative_prompt=p.negative_prompt,
                   steps=p.steps, scheduler=p.scheduler, guidance=p.guidance, seed=p.seed,
                   n=p.n, batch_size=p.batch_size, previews=p.previews, loras=loras,
                   embeddings=[Path(e).expanduser() for e in p.embedding], vae=p.vae,
                   clip_skip=p.clip_skip - 1, find_lora=find_lora,
                   find_embeddings=find_embeddings,
                   control=_control(p, specific.get("image")), **specific)


def _control(p: Generation, image: Any) -> Any:
    """The ControlNet unit (None without one); img2img and inpaint follow the image being
    edited when no control image is given."""
    if p.controlnet is None:
        return None
    from .engine.control import ControlSpec

    source = p.control_image if p.control_image is not None else image
    if source is None:
        raise UserError("a ControlNet needs a control image (--control-image)")
    return ControlSpec(model=Path(p.controlnet).expanduser(), image=source, kind=p.control,
                       scale=p.control_scale, low=p.canny_low, high=p.canny_high)


def _blur(mask_blur: int, image: Any) -> int:
    if mask_blur >= 0:
        return int(mask_blur)
    return int(round(min(image.shape[:2]) / 128))


def _run(ctx: JobContext, p: Generation, req: Any, save_each: bool) -> str:
    from .engine.generate import generate
    from .engine.loading import load_model

    ctx.progress(0, None, "loading model")
    lm = load_model(p.model, ctx.device, p.precision, log=ctx.log)
    ctx.check()
    result = generate(ctx, lm, req)
    from plugins.common import provenance

    # a generation from noise is the model's alone; img2img, inpaint and outpaint mix the
    # model's pixels with the user's picture
    prov = provenance.make("diffusion", "sample" if req.mode == "txt2img" else req.mode,
                           model=p.model, model_id=lm.model_hash, seed=p.seed, params=p,
                           source_type=provenance.TRAINED if req.mode == "txt2img" else
                           "compositeWithTrainedAlgorithmicMedia")
    return str(save_result(result, p.out, ctx.workspace, req.mode, save_each, prov))


def default_output(workspace: Path, mode: str, seed: int) -> Path:
    folder = workspace / "outputs" / "diffusion"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stamp}-{mode}-{seed}.png"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{mode}-{seed}-{n}.png"
    return path


def save_result(result: Any, out: Path | None, workspace: Path, mode: str, save_each: bool,
                prov: Any = None) -> Path:
    """One image: that image. Several: a grid (with the first image's parameters, as A1111
    does), plus each image beside it when ``save_each``. With ``prov`` (a
    :class:`~plugins.common.provenance.Provenance`) every file carries it, each image with
    its own seed."""
    from plugins.common.images import make_grid
    from plugins.common.pngmeta import save_png
    from plugins.common.provenance import Provenance, stamp

    def save(image: Any, target: Path, gp: Any) -> None:
        save_png(image, target, {PNG_KEY: format_parameters(gp)})
        if prov is not None:
            stamp(target, Provenance(**{**prov.to_json(), "seed": gp.seed}))

    from .engine.infotext import PNG_KEY, format_parameters

    first = result.params[0]
    target = Path(out).expanduser() if out else default_output(workspace, mode, first.seed)
    if target.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, not {target.name}")
    if len(result.images) == 1:
        save(result.images[0], target, first)
        return target
    import numpy as np

    n = len(result.images)
    grid = make_grid(np.stack(result.images), nrow=int(np.ceil(np.sqrt(n))))
    save(grid, target, first)
    if save_each:
        for i, (img, gp) in enumerate(zip(result.images, result.params, strict=True)):
            save(img, target.with_name(f"{target.stem}-{i:03d}.png"), gp)
    return target
