"""Cheap previews of the predicted clean image (x0) at every sampling step.

A full VAE decode per step would double the cost of sampling on a CPU, so latent models are shown
through a fixed linear map from latent channels to RGB (the factors ComfyUI and A1111 use for their
"cheap" previews), and everything is shrunk to at most :data:`MAX_SIDE` pixels before leaving the
worker. Pixel models are shown as they are. A preview costs well under a millisecond of tensor
work next to a UNet call.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

MAX_SIDE = 256

# latent (4 channels) -> RGB, rows = latent channels; from ComfyUI's latent_formats.py
_SD15 = ([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
          [-0.2120, -0.2616, -0.7177]], [0.0, 0.0, 0.0])
_SDXL = ([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362],
          [-0.3165, -0.2492, -0.2188]], [0.1084, -0.0175, -0.0011])


def alpha_bar(scheduler: Any, t: Any) -> float:
    """``alphas_cumprod`` at timestep ``t`` (float timesteps are rounded)."""
    import torch

    ac = scheduler.alphas_cumprod
    idx = int(round(float(t.flatten()[0] if isinstance(t, torch.Tensor) else t)))
    idx = min(max(idx, 0), ac.shape[0] - 1)
    return float(ac[idx])


def predict_x0(scheduler: Any, model_input: Any, model_output: Any, t: Any) -> Any:
    """x0 from the UNet's input (already ``scale_model_input``-ed, so variance-preserving for
    every scheduler) and its output, for epsilon, v and sample prediction."""
    a = alpha_bar(scheduler, t)
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    sa, sb = a ** 0.5, (1.0 - a) ** 0.5
    x = model_input.float()
    out = model_output.float()
    if kind == "v_prediction":
        return sa * x - sb * out
    if kind == "sample":
        return out
    return (x - sb * out) / max(sa, 1e-4)


def latent_to_rgb(latents: Any, family: str = "sd15") -> Any:
    """``(N, 4, h, w)`` latents to an approximate ``(N, 3, h, w)`` image in [-1, 1]."""
    import torch

    c = latents.shape[1]
    lat = latents.float()
    if c == 4:
        factors, bias = _SDXL if family == "sdxl" else _SD15
        m = torch.tensor(factors, dtype=lat.dtype, device=lat.device)
        b = torch.tensor(bias, dtype=lat.dtype, device=lat.device)
        return torch.einsum("nchw,cr->nrhw", lat, m) + b[None, :, None, None]
    # unknown latent space: show the first channels, normalised per image
    x = lat[:, :3] if c >= 3 else lat[:, :1].expand(-1, 3, -1, -1)
    scale = x.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return x / scale


def to_preview(x: Any, max_side: int = MAX_SIDE) -> np.ndarray:
    """``(N, C, H, W)`` in [-1, 1] to one uint8 ``(H', W', 3)`` picture (a grid when N > 1)."""
    import torch
    import torch.nn.functional as F

    from plugins.common.images import make_grid, to_uint8

    x = x.detach().float()
    n = x.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    side = max(x.shape[-2], x.shape[-1])
    limit = max(8, max_side // cols)
    if side > limit:
        scale = limit / side
        x = F.interpolate(x, scale_factor=scale, mode="area")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    with torch.no_grad():
        imgs = to_uint8(x.clamp(-1, 1))
    return imgs[0] if n == 1 else make_grid(imgs, nrow=cols)


class Throttle:
    """True at most every ``interval`` seconds (and always when ``force``), and rarer still when
    building a preview is dear: after :meth:`spent` reports what the last one cost, the next
    waits until that cost is at most ``budget`` of the time in between.

    The window shows previews at up to 20 Hz; more would be work nobody sees. The budget keeps
    sampling speed within a few percent of a bare pipeline (bench/diffusion_speed.py): on a
    small pixel model a 16-image preview grid costs about a tenth of a denoising step.
    """

    def __init__(self, interval: float = 0.05, budget: float = 0.02) -> None:
        self.interval = interval
        self.budget = budget
        self._last = -1e9
        self._wait = interval

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self._wait:
            self._last = now
            return True
        return False

    def spent(self, seconds: float) -> None:
        """The preview just built took ``seconds``; space the next one accordingly."""
        self._wait = max(self.interval, seconds / self.budget)
