"""A1111's "Hires. fix": make the picture at the model's size, enlarge it, and redraw the
enlarged one by img2img so it gains detail instead of blur.

The enlargement is either in latent space (A1111's "Latent": the first pass's latents resized
bilinearly, no decode/encode round trip) or of the decoded picture with Lanczos. The second pass
runs A1111's way: ``steps`` denoising steps actually done at the given strength (the scheduler
is set to ``steps / strength`` so that its last ``steps`` run), the sampler and seed of the
first pass. Recorded as A1111 does (``Denoising strength``, ``Hires upscale``, ``Hires steps``,
``Hires upscaler``), with ``Size`` the first pass's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.errors import UserError

#: our names -> A1111's
UPSCALERS = {"latent": "Latent", "lanczos": "Lanczos"}
MAX_SIDE = 4096


@dataclass
class HiresSpec:
    scale: float = 2.0
    steps: int = 0  # 0: as many as the first pass
    denoise: float = 0.5
    upscaler: str = "latent"


def check(spec: HiresSpec) -> None:
    if spec.upscaler not in UPSCALERS:
        raise UserError(f"unknown upscaler {spec.upscaler!r}: choose "
                        f"{' or '.join(UPSCALERS)}")
    if not 1.0 < spec.scale <= 4.0:
        raise UserError(f"the hires scale must be above 1 and at most 4, not {spec.scale:g}")
    if not 0.0 < spec.denoise <= 1.0:
        raise UserError(f"the hires denoising strength must be above 0 and at most 1, not "
                        f"{spec.denoise:g}")
    if not 0 <= spec.steps <= 1000:
        raise UserError(f"hires steps must be between 0 and 1000, not {spec.steps}")


def target_size(spec: HiresSpec, width: int, height: int, factor: int) -> tuple[int, int]:
    """The second pass's size: the first one's times the scale, to the VAE's multiple."""
    w = max(factor, int(width * spec.scale) // factor * factor)
    h = max(factor, int(height * spec.scale) // factor * factor)
    if max(w, h) > MAX_SIDE:
        raise UserError(f"hires fix would make {w}x{h} pictures: at most {MAX_SIDE} px a side "
                        "(choose a smaller scale or size)")
    return w, h


def scheduler_steps(spec: HiresSpec, steps: int) -> tuple[int, int]:
    """(steps to give the scheduler, steps that run): A1111 runs ``hires steps`` denoising
    steps whatever the strength."""
    run = spec.steps or steps
    total = max(run, int(run / min(spec.denoise, 0.999)))
    return total, min(int(total * spec.denoise), total) or 1


def enlarge(spec: HiresSpec, first: Any, width: int, height: int, factor: int = 8) -> Any:
    """The first pass's output enlarged for the second: latents (a tensor) resized bilinearly,
    or pictures (float ``(N, H, W, 3)`` in 0..1) resized with Lanczos (PIL images back)."""
    if spec.upscaler == "latent":
        import torch.nn.functional as F

        return F.interpolate(first, size=(height // factor, width // factor), mode="bilinear",
                             align_corners=False)
    from PIL import Image

    arr = np.clip(np.asarray(first) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return [Image.fromarray(a).resize((width, height), Image.Resampling.LANCZOS) for a in arr]


def infotext(spec: HiresSpec) -> dict[str, str]:
    """A1111's fields (``Denoising strength`` is the generation's strength)."""
    out = {"Hires upscale": _num(spec.scale)}
    if spec.steps:
        out["Hires steps"] = str(spec.steps)
    out["Hires upscaler"] = UPSCALERS[spec.upscaler]
    return out


def read_hires(extra: dict[str, str], strength: float | None) -> HiresSpec | None:
    """The hires settings an A1111 text records (None: no hires fix)."""
    if "Hires upscale" not in extra:
        return None
    try:
        scale = float(extra["Hires upscale"])
        steps = int(float(extra.get("Hires steps", "0")))
    except ValueError:
        return None
    name = extra.get("Hires upscaler", "Latent").lower()
    upscaler = "lanczos" if "lanczos" in name else "latent"
    return HiresSpec(scale=scale, steps=steps, denoise=strength if strength else 0.7,
                     upscaler=upscaler)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
