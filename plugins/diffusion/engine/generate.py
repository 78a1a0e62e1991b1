"""Generation for every model kind: text-to-image / unconditional sampling, img2img, inpainting
and (through a grown canvas) outpainting.

Pixel models (a ``UNet2DModel``, e.g. one trained here) run the loop in :mod:`.sampling`;
inpainting with them is RePaint-style: the known pixels are re-noised to every timestep and
pasted back, so even an unconditional model fills a hole consistently. Text-to-image models run
their own diffusers pipelines (``AutoPipelineForImage2Image`` / ``AutoPipelineForInpainting`` made
from the loaded one with ``from_pipe``, sharing its weights); a dedicated inpainting UNet
(9 input channels) is used as such. A step callback checks Cancel and sends a cheap predicted-x0
preview captured by a forward hook on the UNet.

Every result is composited with the original outside the mask, so pixels the user did not mask
come back exactly as they were (the VAE round trip of latent models would otherwise shift them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plugins.common.training import Reporter
from studio.errors import UserError

from .imageio import check_mask, composite, feather, resize
from .infotext import GenerationParams
from .loading import LoadedModel
from .preview import Throttle, latent_to_rgb, predict_x0, to_preview
from .sampling import denoise, make_generators
from .schedulers import make_scheduler, normalise

MODES = ("txt2img", "img2img", "inpaint", "outpaint")


@dataclass
class Request:
    """One generation: ``n`` images with seeds ``seed .. seed + n - 1``."""

    mode: str = "txt2img"
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 25
    scheduler: str = "dpm++"
    guidance: float = 7.5
    seed: int = 1
    n: int = 1
    batch_size: int = 0  # 0: automatic (all at once for pixel models, 1 for text models on CPU)
    width: int = 0  # 0: the model's native size (txt2img) or the image's size
    height: int = 0
    strength: float = 1.0
    image: np.ndarray | None = None  # uint8 RGB (H, W, 3)
    mask: np.ndarray | None = None  # float (H, W) in [0, 1], 1 = repaint
    mask_blur: int = 4
    previews: bool = True
    loras: list[Any] = field(default_factory=list)  # adapters.LoraSpec, besides prompt tags
    embeddings: list[Path] = field(default_factory=list)
    vae: Path | None = None
    clip_skip: int = 0  # layers skipped from the end of the text encoder (A1111's Clip skip - 1)
    #: ``find_lora(name)``: the file a ``<lora:name:w>`` tag names (None: not found)
    find_lora: Callable[[str], Path | None] | None = None
    #: ``find_embeddings(text)``: embedding files whose trigger words ``text`` uses
    find_embeddings: Callable[[str], list[Path]] | None = None
    control: Any = None  # control.ControlSpec: a ControlNet guides the picture
    hires: Any = None  # hires.HiresSpec: txt2img enlarged and redrawn (A1111's Hires. fix)


@dataclass
class Result:
    images: list[np.ndarray]  # uint8 RGB
    params: list[GenerationParams]


def validate(req: Request) -> None:
    if req.mode not in MODES:
        raise UserError(f"unknown mode {req.mode!r}")
    req.scheduler = normalise(req.scheduler)
    if req.n < 1 or req.n > 1000:
        raise UserError(f"the number of images must be between 1 and 1000, not {req.n}")
    if req.steps < 1 or req.steps > 1000:
        raise UserError(f"steps must be between 1 and 1000, not {req.steps}")
    if req.mode != "txt2img" and req.image is None:
        raise UserError(f"{req.mode} needs an image")
    if req.mode in ("inpaint", "outpaint"):
        if req.mask is None:
            raise UserError(f"{req.mode} needs a mask")
        if req.mask.shape != req.image.shape[:2]:  # type: ignore[union-attr]
            h, w = req.image.shape[:2]  # type: ignore[union-attr]
            raise UserError(f"the mask is {req.mask.shape[1]}x{req.mask.shape[0]} but the image "
                            f"is {w}x{h}: they must be the same size")
        check_mask(req.mask)
    if not 0.0 < req.strength <= 1.0:
        raise UserError(f"strength must be above 0 and at most 1, not {req.strength}")
    if req.control is not None:
        from .control import check

        check(req.control)
    if req.hires is not None:
        from .hires import check as check_hires

        if req.mode != "txt2img":
            raise UserError("hires fix enlarges a picture made from noise (txt2img): for "
                            "img2img, give a larger size instead")
        check_hires(req.hires)


def generate(ctx: Reporter, lm: LoadedModel, req: Request) -> Result:
    """Run ``req`` on the loaded model; results also stream to ``ctx`` as ``result`` previews."""
    validate(req)
    if lm.kind == "pixel":
        if req.control is not None or req.hires is not None:
            raise UserError(f"{lm.info.name} is an unconditional pixel model: ControlNet and "
                            "hires fix are for Stable Diffusion models")
        return _generate_pixels(ctx, lm, req)
    return _generate_text(ctx, lm, req)


def _params(lm: LoadedModel, req: Request, seed: int, width: int, height: int,
            prompt: str | None = None, extra: dict[str, str] | None = None
            ) -> GenerationParams:
    return GenerationParams(
        prompt=(req.prompt if prompt is None else prompt) if lm.kind == "text" else "",
        negative_prompt=req.negative_prompt if lm.kind == "text" else "",
        steps=req.steps, scheduler=req.scheduler,
        guidance=req.guidance if lm.kind == "text" else 1.0, seed=seed, width=width,
        height=height, mode=req.mode,
        strength=None if req.mode == "txt2img" else req.strength,
        mask_blur=req.mask_blur if req.mode in ("inpaint", "outpaint") else None,
        model=lm.info.name, model_hash=lm.model_hash, extra=dict(extra or {}))


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(size, n - i)) for i in range(0, n, size)]


def _emit_results(ctx: Reporter, images: list[np.ndarray], params: list[GenerationParams]
                  ) -> None:
    ctx.preview("result", images, replace=False, params=[p.to_json() for p in params])


# ----------------------------------------------------------------------------------------------
# Pixel-space models
# ----------------------------------------------------------------------------------------------
def _generate_pixels(ctx: Reporter, lm: LoadedModel, req: Request) -> Result:
    import torch

    from plugins.common.images import to_uint8

    if req.loras or req.embeddings or req.vae is not None:
        raise UserError(f"{lm.info.name} is an unconditional pixel model: LoRAs, embeddings and "
                        "VAEs are for Stable Diffusion models")
    if req.prompt.strip():
        ctx.warn(f"{lm.info.name} is an unconditional model: the prompt is ignored")
    unet = lm.pipe.unet
    sched = make_scheduler(req.scheduler, lm.base_scheduler_config)
    size, channels = lm.info.size, lm.info.channels
    device, dtype = lm.device, lm.dtype
    init = mask_t = None
    if req.image is not None:
        init = _to_model_tensor(resize(req.image, size, size), channels).to(device, dtype)
    if req.mask is not None and req.mode in ("inpaint", "outpaint"):
        mask_t = _mask_tensor(req.mask, size).to(device, dtype)
    bs = req.batch_size or min(req.n, 64)
    batches = _batches(req.n, bs)
    throttle = Throttle()
    images: list[np.ndarray] = []
    params: list[GenerationParams] = []
    steps_done = 0
    use_init = init is not None
    per_batch = _effective_steps(sched, req.steps, req.strength if use_init else 1.0)
    total = per_batch * len(batches)
    out_w, out_h = (req.image.shape[1], req.image.shape[0]) if req.image is not None else (
        size, size)
    edit = req.image is not None
    for bi, (start, k) in enumerate(batches):

        def on_step(i: int, n_steps: int, x0: Any, bi: int = bi, k: int = k) -> None:
            nonlocal steps_done
            steps_done += 1
            ctx.progress(steps_done, total, f"batch {bi + 1}/{len(batches)}, step {i + 1}/"
                                            f"{n_steps}")
            if req.previews and throttle.ready(force=i + 1 == n_steps):
                t0 = time.perf_counter()
                x = x0().clamp(-1, 1)
                # editing: the first image, to lay over the canvas; sampling: the whole batch
                ctx.preview("image", to_preview(x[:1] if edit else x), step=i + 1,
                            total=n_steps, grid=not edit and k > 1)
                throttle.spent(time.perf_counter() - t0)

        with torch.inference_mode():
            x = denoise(lambda xx, t: unet(xx, t).sample, sched,
                        shape=(k, channels, size, size),
                        generators=make_generators(req.seed + start, k), steps=req.steps,
                        device=device, dtype=dtype,
                        init=None if init is None else init.expand(k, -1, -1, -1),
                        strength=req.strength,
                        mask=None if mask_t is None else mask_t.expand(k, -1, -1, -1),
                        check=ctx.check, on_step=on_step)
        batch = to_uint8(x.float().clamp(-1, 1))
        if batch.shape[-1] == 1:
            batch = np.repeat(batch, 3, axis=-1)
        out_batch, out_params = [], []
        for j in range(k):
            img = batch[j]
            if req.image is not None:
                img = resize(img, out_w, out_h)
                if req.mask is not None and req.mode in ("inpaint", "outpaint"):
                    img = composite(req.image, img, feather(req.mask, req.mask_blur))
            out_batch.append(img)
            out_params.append(_params(lm, req, req.seed + start + j, out_w, out_h))
        images += out_batch
        params += out_params
        _emit_results(ctx, out_batch, out_params)
    return Result(images, params)


def _effective_steps(sched: Any, steps: int, strength: float) -> int:
    init_steps = min(int(steps * strength), steps)
    return max(1, init_steps) if strength < 1.0 else steps


def _to_model_tensor(image: np.ndarray, channels: int) -> Any:
    import torch

    arr = image.astype(np.float32)
    if channels == 1:
        arr = (arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    return t / 127.5 - 1.0


def _mask_tensor(mask: np.ndarray, size: int) -> Any:
    """The mask at model resolution: any model pixel the mask touches is regenerated, so the
    hole is fully covered; the final composite uses the full-resolution mask."""
    import torch
    from PIL import Image

    img = Image.fromarray(np.clip(mask * 255, 0, 255).astype(np.uint8), mode="L")
    small = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    return torch.from_numpy((small > 0.01).astype(np.float32))[None, None]


# ----------------------------------------------------------------------------------------------
# Text-conditioned (latent) models
# ----------------------------------------------------------------------------------------------
def _pipeline_for(lm: LoadedModel, mode: str) -> Any:
    if mode == "txt2img":
        return lm.pipe
    key = "img2img" if mode == "img2img" else "inpaint"
    if key not in lm.derived:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        auto = AutoPipelineForImage2Image if key == "img2img" else AutoPipelineForInpainting
        try:
            pipe = auto.from_pipe(lm.pipe)
        except (ValueError, KeyError) as exc:
            raise UserError(f"{lm.info.pipeline_class} has no {key} variant in diffusers "
                            f"({exc})") from None
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        lm.derived[key] = pipe
    return lm.derived[key]


def _round8(v: int, factor: int) -> int:
    return max(factor, (int(v) // factor) * factor)


class _UNetTap:
    """Keeps the last UNet call's input, timestep and output (references only: free)."""

    def __init__(self, unet: Any) -> None:
        self.last: tuple[Any, Any, Any] | None = None
        self._handle = unet.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
              ) -> None:
        sample = args[0] if args else kwargs.get("sample")
        t = args[1] if len(args) > 1 else kwargs.get("timestep")
        out = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
        self.last = (sample, t, out)

    def close(self) -> None:
        self._handle.remove()


def _latent_x0(pipe: Any, tap: _UNetTap, guidance: float, family: str) -> Any | None:
    if tap.last is None:
        return None
    sample, t, out = tap.last
    c = out.shape[1]
    x0 = predict_x0(pipe.scheduler, sample[:, :c], out, t)
    if getattr(pipe, "do_classifier_free_guidance", False) and x0.shape[0] % 2 == 0:
        uncond, cond = x0.chunk(2)
        x0 = uncond + guidance * (cond - uncond)
    return latent_to_rgb(x0, family).clamp(-1, 1)


def _generate_text(ctx: Reporter, lm: LoadedModel, req: Request) -> Result:
    from PIL import Image

    info = lm.info
    # the networks first: pipelines made below share the model's (possibly swapped) VAE
    recorded, extra = prepare_networks(ctx, lm, req)
    net = None
    if req.control is not None:
        from . import control

        net = control.load_controlnet(lm, req.control.model, ctx.log)
        pipe = control.pipeline(lm, req.mode, net)
    else:
        pipe = _pipeline_for(lm, req.mode)
    pipe.scheduler = make_scheduler(req.scheduler, lm.base_scheduler_config)
    factor = int(getattr(lm.pipe, "vae_scale_factor", 8))
    if req.image is not None:
        src_h, src_w = req.image.shape[:2]
        w = _round8(req.width or src_w, factor)
        h = _round8(req.height or src_h, factor)
    else:
        w = _round8(req.width or info.size, factor)
        h = _round8(req.height or info.size, factor)
        src_w, src_h = w, h
    on_gpu = not str(lm.device).startswith("cpu")
    bs = req.batch_size or (min(req.n, 4) if on_gpu else 1)
    batches = _batches(req.n, bs)
    throttle = Throttle()
    images: list[np.ndarray] = []
    params: list[GenerationParams] = []
    per_batch = _effective_steps(pipe.scheduler, req.steps,
                                 req.strength if req.mode != "txt2img" else 1.0)
    hires = _Hires(lm, req, net, w, h, factor) if req.hires is not None else None
    total = (per_batch + (hires.run_steps if hires else 0)) * len(batches)
    steps_done = 0
    kwargs: dict[str, Any] = {
        "num_inference_steps": req.steps, "guidance_scale": req.guidance, "output_type": "np",
        **conditioning(ctx, lm, pipe, req)}
    if req.mode == "txt2img":
        kwargs.update(width=w, height=h)
    else:
        kwargs["image"] = Image.fromarray(resize(req.image, w, h))  # type: ignore[arg-type]
        kwargs["strength"] = req.strength
    if req.mode in ("inpaint", "outpaint"):
        m = np.clip(req.mask * 255.0, 0, 255).astype(np.uint8)  # type: ignore[operator]
        kwargs["mask_image"] = Image.fromarray(m, mode="L").resize((w, h),
                                                                   Image.Resampling.BILINEAR)
        kwargs.update(width=w, height=h)
    if req.control is not None:
        kwargs.update(_control_kwargs(req, w, h, extra))
    if hires is not None:
        extra.update(hires.fields)
        if req.hires.upscaler == "latent":
            kwargs["output_type"] = "latent"
        src_w, src_h = hires.w, hires.h
    tap = _UNetTap(pipe.unet) if req.previews else None
    try:
        for bi, (start, k) in enumerate(batches):

            def callback(p: Any, i: int, t: Any, cb_kwargs: dict[str, Any], bi: int = bi,
                         k: int = k) -> dict[str, Any]:
                nonlocal steps_done
                ctx.check()
                steps_done += 1
                n_steps = getattr(p, "_num_timesteps", None) or per_batch
                ctx.progress(steps_done, total,
                             f"batch {bi + 1}/{len(batches)}, step {i + 1}/{n_steps}")
                if tap is not None and throttle.ready(force=i + 1 == n_steps):
                    t0 = time.perf_counter()
                    x0 = _latent_x0(p, tap, req.guidance, info.family)
                    if x0 is not None:
                        edit = req.image is not None
                        ctx.preview("image", to_preview(x0[:1] if edit else x0), step=i + 1,
                                    total=n_steps, grid=not edit and k > 1)
                    throttle.spent(time.perf_counter() - t0)
                return cb_kwargs

            out = pipe(num_images_per_prompt=k, generator=make_generators(req.seed + start, k),
                       callback_on_step_end=callback, **kwargs)
            images_out = out.images
            if hires is not None:
                images_out = hires.second_pass(images_out, kwargs, k, req.seed + start,
                                               callback)
            arr = np.clip(np.asarray(images_out) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out_batch, out_params = [], []
            for j in range(k):
                img = resize(arr[j], src_w, src_h)
                if req.mode in ("inpaint", "outpaint"):
                    img = composite(req.image, img,  # type: ignore[arg-type]
                                    feather(req.mask, req.mask_blur))  # type: ignore[arg-type]
                out_batch.append(img)
                gp = _params(lm, req, req.seed + start + j, w if hires else src_w,
                             h if hires else src_h, recorded, extra)
                if hires is not None:  # A1111: Size is the first pass's, with the strength
                    gp.strength = req.hires.denoise
                out_params.append(gp)
            images += out_batch
            params += out_params
            _emit_results(ctx, out_batch, out_params)
    finally:
        if tap is not None:
            tap.close()
    return Result(images, params)


def _control_kwargs(req: Request, w: int, h: int, extra: dict[str, str]) -> dict[str, Any]:
    """The ControlNet's picture and strength for the pipeline; its A1111 record into
    ``extra``. The control picture is resized to the generation's size (A1111's Just Resize)."""
    from PIL import Image

    from . import control

    spec = req.control
    img, module = control.control_image(spec)
    extra.update(control.infotext(spec, module))
    pil = Image.fromarray(resize(img, w, h))
    return {"image" if req.mode == "txt2img" else "control_image": pil,
            "controlnet_conditioning_scale": float(spec.scale),
            "control_guidance_start": float(spec.start), "control_guidance_end": float(spec.end)}


class _Hires:
    """The second pass of A1111's Hires. fix for one request (see :mod:`.hires`)."""

    def __init__(self, lm: LoadedModel, req: Request, net: Any, w: int, h: int,
                 factor: int) -> None:
        from . import control, hires

        self.spec = req.hires
        self.req = req
        self.factor = factor
        self.w, self.h = hires.target_size(self.spec, w, h, factor)
        self.sched_steps, self.run_steps = hires.scheduler_steps(self.spec, req.steps)
        self.fields = hires.infotext(self.spec)
        self.pipe = control.pipeline(lm, "img2img", net) if net is not None else \
            _pipeline_for(lm, "img2img")
        self.pipe.scheduler = make_scheduler(req.scheduler, lm.base_scheduler_config)

    def second_pass(self, first: Any, kwargs: dict[str, Any], k: int, seed: int,
                    callback: Any) -> Any:
        from PIL import Image

        from . import hires

        big = hires.enlarge(self.spec, first, self.w, self.h, self.factor)
        args = {key: v for key, v in kwargs.items()
                if key not in ("width", "height", "image", "output_type")}
        args.update(image=big, strength=float(self.spec.denoise), output_type="np",
                    num_inference_steps=self.sched_steps)
        if "image" in kwargs and self.req.control is not None:  # the control picture, larger
            args["control_image"] = kwargs["image"].resize((self.w, self.h),
                                                           Image.Resampling.BILINEAR)
        # the prompt is repeated k times for the k enlarged pictures, as in the first pass
        out = self.pipe(num_images_per_prompt=k, generator=make_generators(seed, k),
                        callback_on_step_end=callback, **args)
        return out.images


# ----------------------------------------------------------------------------------------------
# LoRAs, embeddings, VAE and the prompt's conditioning
# ----------------------------------------------------------------------------------------------
def prepare_networks(ctx: Reporter, lm: LoadedModel, req: Request
                     ) -> tuple[str, dict[str, str]]:
    """Apply the request's LoRAs (given, and named by ``<lora:…>`` tags), embeddings and VAE to
    the model. Returns the prompt to record (a given LoRA not tagged in it is appended as a tag,
    so A1111 reading the PNG uses it too) and the A1111 fields saying what was used."""
    from . import adapters
    from .prompts import extract_networks

    try:
        _text, tags = extract_networks(req.prompt)
        _neg, neg_tags = extract_networks(req.negative_prompt)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if neg_tags:
        ctx.warn("LoRA tags in the negative prompt are ignored (as in A1111)")
    specs: list[adapters.LoraSpec] = list(req.loras)
    given = {s.path.stem.lower(): i for i, s in enumerate(specs)}
    missing = []
    for tag in tags:
        if tag.kind != "lora":
            ctx.warn(f"<{tag.kind}:{tag.name}> is not supported: hypernetworks are not loaded")
            continue
        if tag.name.lower() in given:  # the prompt's weight wins, as A1111 would read it
            i = given[tag.name.lower()]
            specs[i] = adapters.LoraSpec(specs[i].path, tag.weight)
            continue
        found = req.find_lora(tag.name) if req.find_lora else None
        if found is None:
            missing.append(tag.name)
            continue
        given[tag.name.lower()] = len(specs)
        specs.append(adapters.LoraSpec(Path(found), tag.weight))
    if missing:
        ctx.warn(f"LoRA not found: {', '.join(missing)} (not in the model library: add its "
                 "folder in Settings, or give the file with --lora); generating without it")
    embeddings = list(req.embeddings)
    if req.find_embeddings is not None:
        for f in req.find_embeddings(f"{req.prompt}\n{req.negative_prompt}"):
            if all(Path(f).resolve() != Path(e).resolve() for e in embeddings):
                embeddings.append(Path(f))
    applied = adapters.Applied(
        loras=adapters.apply_loras(lm, specs, ctx.log),
        embeddings=adapters.apply_embeddings(lm, embeddings, ctx.log),
        vae=adapters.apply_vae(lm, req.vae, ctx.log))
    recorded = req.prompt
    tagged = {t.name.lower() for t in tags}
    for spec in specs:  # after a space: the prompt without its tags tokenizes as before
        if spec.name.lower() not in tagged:
            recorded = f"{recorded} <lora:{spec.name}:{spec.weight:g}>".strip()
    extra = applied.infotext(req.prompt, req.negative_prompt)
    if req.clip_skip > 0:
        extra["Clip skip"] = str(req.clip_skip + 1)
    return recorded, extra


def conditioning(ctx: Reporter, lm: LoadedModel, pipe: Any, req: Request) -> dict[str, Any]:
    """The pipeline's prompt arguments: A1111-weighted embeddings for CLIP models (SD 1.x/2.x,
    SDXL), the plain text for others (saying so when it holds A1111 syntax)."""
    from .prompts import encode, extract_networks, has_syntax, supports

    prompt, _ = extract_networks(req.prompt)
    negative, _ = extract_networks(req.negative_prompt)
    if supports(pipe):
        return encode(pipe, prompt, negative, req.clip_skip).kwargs()
    if has_syntax(prompt) or has_syntax(negative):
        ctx.warn(f"{lm.info.pipeline_class} prompts are read as plain text: (word:1.2) weights "
                 "apply to Stable Diffusion 1.x/2.x and SDXL models")
    if req.clip_skip:
        ctx.warn("Clip skip applies to Stable Diffusion 1.x/2.x and SDXL models: ignored")
    return {"prompt": prompt, "negative_prompt": negative or None}
