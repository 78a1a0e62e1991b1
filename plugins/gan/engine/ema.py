"""Exponential moving average of the generator's weights, used for every sample we show or save.

Averaging the last few thousand generator updates removes most of the step-to-step jitter of GAN
training (Yazıcı et al. 2019); it costs one fused multiply-add per weight per step. Batch-norm
statistics are copied from the live generator and re-estimated for the averaged weights
(:func:`recalibrated`) before sampling, so the averaged model is not fed statistics that belong
to different weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._src_params: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Warm-up: early on, average over fewer steps so the EMA is not stuck at the random init.
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        ema_p = [p for p in self.model.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


@torch.no_grad()
def recalibrated(model: nn.Module, sample_inputs: list[tuple[torch.Tensor, torch.Tensor | None]]
                 ) -> nn.Module:
    """A copy of ``model`` whose batch-norm statistics are re-estimated on ``sample_inputs``
    (``(z, y)`` batches): a cumulative average, as "standing statistics" in BigGAN. The given
    model is left untouched, so training is not affected by previews."""
    out = copy.deepcopy(model)
    bns = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return out.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    out.train()
    for z, y in sample_inputs:
        out(z, y)
    for m in bns:
        m.momentum = 0.1
    return out.eval()
