"""The diffusion plugin's jobs: thin glue from a job context to the engine.

The signatures are the command line (``studio run diffusion sample --model DIR --n 16 ...``) and
what the panel submits; see ``studio run diffusion JOB --help``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError
from studio.jobs import JobContext

from .engine.schedulers import SchedulerName

Precision = Literal["auto", "fp32", "fp16", "bf16"]


def train(
    ctx: JobContext,
    data: str = "digits",
    size: Literal[32, 64] = 32,
    steps: int = 3000,
    preset: Literal["tiny", "small", "base"] = "small",
    batch_size: int = 32,
    lr: float = 2e-3,
    ema_decay: float = 0.995,
    channels: Literal["auto", "gray", "rgb"] = "auto",
    prediction: Literal["v_prediction", "epsilon"] = "v_prediction",
    flip: bool = False,
    minutes: float = 0.0,
    sample_every: int = 500,
    checkpoint_every: int = 500,
    seed: int = 0,
    resume: bool = False,
) -> str:
    """Train a DDPM on a folder of images; saves a diffusers pipeline in RUN/model.

    Args:
        data: folder of images (sub-folders are classes), or "digits" for the built-in set
        size: image size in pixels
        steps: training steps (batches) in total, including steps done before a resume
        preset: model size: tiny (tests), small (CPU default), base (GPU)
        batch_size: images per step
        lr: peak learning rate (warm-up, then cosine decay)
        ema_decay: decay of the weight average used for samples and the saved model
        channels: auto picks grayscale when every image is gray
        prediction: what the UNet predicts: v (default: well-behaved with every sampler) or the
            noise (epsilon)
        flip: augment with horizontal flips (off for digits and text)
        minutes: wall-clock budget for training (0: no limit); the schedule adapts to it
        sample_every: steps between preview grids
        checkpoint_every: steps between checkpoints (also saved on cancel)
        seed: seed for initialisation and batch order
        resume: continue the run in --out from its last checkpoint
    """
    from .engine.train import TrainConfig
    from .engine.train import train as run_training

    if steps < 1:
        raise UserError("--steps must be at least 1")
    if batch_size < 1 or batch_size > 4096:
        raise UserError("--batch-size must be between 1 and 4096")
    if sample_every < 1 or checkpoint_every < 1:
        raise UserError("--sample-every and --checkpoint-every must be at least 1")
    n_channels = {"auto": 0, "gray": 1, "rgb": 3}[channels]
    cfg = TrainConfig(data=data, size=int(size), channels=n_channels,
                      preset=preset, steps=steps, batch_size=batch_size, lr=lr,
                      ema_decay=ema_decay, prediction=prediction, flip=flip, seed=seed,
                      sample_every=sample_every, checkpoint_every=checkpoint_every,
                      minutes=minutes)
    assert ctx.run_dir is not None  # makes_run=True
    model_dir = run_training(ctx, cfg, ctx.run_dir, workspace=ctx.workspace, device=ctx.device,
                             resume=resume, truncate_metrics=ctx.truncate_metrics)
    ctx.add_artifact(model_dir, "diffusers-pipeline", format="DDPMPipeline/safetensors")
    return str(model_dir)


def info(ctx: JobContext, model: str) -> dict[str, Any]:
    """Describe a model (kind, native size, inpainting or not) from its configuration files.

    Args:
        model: diffusers pipeline folder, training run folder or .safetensors checkpoint
    """
    from .engine.loading import inspect_model

    return inspect_model(model).to_json()


def sample(
    ctx: JobContext,
    model: str,
    n: int = 16,
    steps: int = 25,
    scheduler: SchedulerName = "dpm++",
    seed: int = 1,
    out: str | None = None,
    prompt: str = "",
    negative_prompt: str = "",
    guidance: float = 7.5,
    width: int = 0,
    height: int = 0,
    batch_size: int = 0,
    precision: Precision = "auto",
    previews: bool = True,
    save_each: bool = False,
) -> str:
    """Generate images (text-to-image, or unconditional samples); writes a PNG grid.

    Args:
        model: diffusers pipeline folder, training run folder or .safetensors checkpoint
        n: number of images (image i uses seed + i)
        steps: denoising steps
        scheduler: sampler
        seed: seed of the first image
        out: PNG to write (default: a new file under the workspace's outputs folder)
        prompt: what to draw (text models)
        negative_prompt: what to avoid (text models)
        guidance: classifier-free guidance scale (text models; 0 or 1 turns it off)
        width: output width in pixels (0: the model's native size)
        height: output height in pixels (0: the model's native size)
        batch_size: images per model call (0: automatic)
        precision: auto = fp32 on CPU, bf16/fp16 on GPU
        previews: send a predicted-image preview at every step
        save_each: also save every image as its own PNG beside the grid
    """
    from .engine.generate import Request

    req = Request(mode="txt2img", prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                  scheduler=scheduler, guidance=guidance, seed=seed, n=n, batch_size=batch_size,
                  width=width, height=height, previews=previews)
    return _run(ctx, model, req, out, precision, save_each)


def img2img(
    ctx: JobContext,
    model: str,
    image: str,
    strength: float = 0.6,
    steps: int = 25,
    seed: int = 1,
    out: str | None = None,
    scheduler: SchedulerName = "dpm++",
    prompt: str = "",
    negative_prompt: str = "",
    guidance: float = 7.5,
    n: int = 1,
    batch_size: int = 0,
    precision: Precision = "auto",
    previews: bool = True,
    save_each: bool = False,
) -> str:
    """Redraw an image: noise it to `strength` and denoise it again.

    Args:
        model: diffusers pipeline folder, training run folder or .safetensors checkpoint
        image: the image to start from (never modified)
        strength: 0 keeps the image, 1 ignores it
        steps: denoising steps for strength 1 (fewer run at lower strength)
        seed: seed of the first image
        out: PNG to write (default: a new file under the workspace's outputs folder)
        scheduler: sampler
        prompt: what to draw (text models)
        negative_prompt: what to avoid (text models)
        guidance: classifier-free guidance scale (text models)
        n: number of variations
        batch_size: images per model call (0: automatic)
        precision: auto = fp32 on CPU, bf16/fp16 on GPU
        previews: send a predicted-image preview at every step
        save_each: also save every image as its own PNG beside the grid
    """
    from .engine.generate import Request
    from .engine.imageio import read_image

    req = Request(mode="img2img", prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                  scheduler=scheduler, guidance=guidance, seed=seed, n=n, batch_size=batch_size,
                  strength=strength, image=read_image(image), previews=previews)
    return _run(ctx, model, req, out, precision, save_each)


def inpaint(
    ctx: JobContext,
    model: str,
    image: str,
    mask: str,
    steps: int = 25,
    seed: int = 1,
    out: str | None = None,
    scheduler: SchedulerName = "dpm++",
    strength: float = 1.0,
    mask_blur: int = -1,
    prompt: str = "",
    negative_prompt: str = "",
    guidance: float = 7.5,
    n: int = 1,
    batch_size: int = 0,
    precision: Precision = "auto",
    previews: bool = True,
    save_each: bool = False,
) -> str:
    """Repaint the white part of a mask; everything outside it stays as it was.

    Args:
        model: diffusers pipeline folder, training run folder or .safetensors checkpoint
        image: the image to edit (never modified)
        mask: same size as the image; white (or opaque) = repaint, black = keep
        steps: denoising steps
        seed: seed of the first image
        out: PNG to write (default: a new file under the workspace's outputs folder)
        scheduler: sampler
        strength: 1 repaints from scratch; lower keeps more of what is under the mask
        mask_blur: pixels of soft edge inside the mask (-1: about 1/128 of the image side)
        prompt: what to draw (text models)
        negative_prompt: what to avoid (text models)
        guidance: classifier-free guidance scale (text models)
        n: number of variations
        batch_size: images per model call (0: automatic)
        precision: auto = fp32 on CPU, bf16/fp16 on GPU
        previews: send a predicted-image preview at every step
        save_each: also save every image as its own PNG beside the grid
    """
    from .engine.generate import Request
    from .engine.imageio import read_image, read_mask

    img = read_image(image)
    m = read_mask(mask, (img.shape[1], img.shape[0]))
    req = Request(mode="inpaint", prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                  scheduler=scheduler, guidance=guidance, seed=seed, n=n, batch_size=batch_size,
                  strength=strength, image=img, mask=m, mask_blur=_blur(mask_blur, img),
                  previews=previews)
    return _run(ctx, model, req, out, precision, save_each)


def outpaint(
    ctx: JobContext,
    model: str,
    image: str,
    left: int = 0,
    top: int = 0,
    right: int = 0,
    bottom: int = 0,
    overlap: int = 8,
    steps: int = 25,
    seed: int = 1,
    out: str | None = None,
    scheduler: SchedulerName = "dpm++",
    mask_blur: int = -1,
    prompt: str = "",
    negative_prompt: str = "",
    guidance: float = 7.5,
    n: int = 1,
    precision: Precision = "auto",
    previews: bool = True,
) -> str:
    """Grow the canvas by the given margins and paint the new area to match the image.

    Args:
        model: diffusers pipeline folder, training run folder or .safetensors checkpoint
        image: the image to extend (never modified)
        left: pixels to add on the left
        top: pixels to add at the top
        right: pixels to add on the right
        bottom: pixels to add at the bottom
        overlap: pixels of the old image repainted along the seam
        steps: denoising steps
        seed: seed of the first image
        out: PNG to write (default: a new file under the workspace's outputs folder)
        scheduler: sampler
        mask_blur: pixels of soft edge inside the new area (-1: automatic)
        prompt: what to draw (text models)
        negative_prompt: what to avoid (text models)
        guidance: classifier-free guidance scale (text models)
        n: number of variations
        precision: auto = fp32 on CPU, bf16/fp16 on GPU
        previews: send a predicted-image preview at every step
    """
    from .engine.generate import Request
    from .engine.imageio import grow_canvas, read_image

    grown, m = grow_canvas(read_image(image), left, top, right, bottom, overlap)
    req = Request(mode="outpaint", prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                  scheduler=scheduler, guidance=guidance, seed=seed, n=n, image=grown, mask=m,
                  mask_blur=_blur(mask_blur, grown), previews=previews)
    return _run(ctx, model, req, out, precision, False)


def _blur(mask_blur: int, image: Any) -> int:
    if mask_blur >= 0:
        return int(mask_blur)
    return int(round(min(image.shape[:2]) / 128))


def _run(ctx: JobContext, model: str, req: Any, out: str | None, precision: str,
         save_each: bool) -> str:
    from .engine.generate import generate
    from .engine.loading import load_model

    ctx.progress(0, None, "loading model")
    lm = load_model(model, ctx.device, precision, log=ctx.log)
    ctx.check()
    result = generate(ctx, lm, req)
    return str(save_result(result, out, ctx.workspace, req.mode, save_each))


def default_output(workspace: Path, mode: str, seed: int) -> Path:
    folder = workspace / "outputs" / "diffusion"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stamp}-{mode}-{seed}.png"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{mode}-{seed}-{n}.png"
    return path


def save_result(result: Any, out: str | None, workspace: Path, mode: str, save_each: bool
                ) -> Path:
    """One image: that image. Several: a grid (with the first image's parameters, as A1111
    does), plus each image beside it when ``save_each``."""
    from plugins.common.images import make_grid
    from plugins.common.pngmeta import save_png

    from .engine.infotext import PNG_KEY, format_parameters

    first = result.params[0]
    target = Path(out).expanduser() if out else default_output(workspace, mode, first.seed)
    if target.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, not {target.name}")
    if len(result.images) == 1:
        save_png(result.images[0], target, {PNG_KEY: format_parameters(first)})
        return target
    import numpy as np

    n = len(result.images)
    grid = make_grid(np.stack(result.images), nrow=int(np.ceil(np.sqrt(n))))
    save_png(grid, target, {PNG_KEY: format_parameters(first)})
    if save_each:
        for i, (img, p) in enumerate(zip(result.images, result.params, strict=True)):
            save_png(img, target.with_name(f"{target.stem}-{i:03d}.png"),
                     {PNG_KEY: format_parameters(p)})
    return target
