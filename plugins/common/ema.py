"""An exponential moving average of a model's weights, and batch-norm statistics for it.

Averaging the last few thousand updates removes most of the step-to-step jitter of GAN and
diffusion training (Yazıcı et al. 2019; every DDPM recipe), for one fused multiply-add per weight
per step. The average is a full copy of the model, so sampling and ``save_pretrained`` work on
it directly, and its state is a plain state dict that ``studio.storage.save_state`` stores
without pickle. One class for every plugin (the GAN, diffusion and level trainers).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class EMA:
    """``decay`` is reached gradually: ``min(decay, (1 + n) / (10 + n))`` at the ``n``-th update,
    so in a short run the average is not dominated by the random initial weights. Buffers
    (batch-norm statistics) are copied from the live model at each update."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        ema_p: list[torch.Tensor] = list(self.model.parameters())
        src_p: list[torch.Tensor] = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any], updates: int | None = None) -> None:
        """Restore; also takes the bare weights older checkpoints stored (with ``updates``,
        the number of steps they had taken)."""
        if "model" in state and "updates" in state:
            self.model.load_state_dict(state["model"])
            self.updates = int(state["updates"])
            self.decay = float(state.get("decay", self.decay))
        else:
            self.model.load_state_dict(state)
            self.updates = int(updates or 0)


@torch.no_grad()
def recalibrated(model: nn.Module, forward: Callable[[nn.Module], None], passes: int = 4
                 ) -> nn.Module:
    """A copy of ``model`` whose batch-norm statistics are re-estimated for its own weights
    ("standing statistics", BigGAN): ``forward(copy)`` is called ``passes`` times in training
    mode with a cumulative average. The given model is untouched, so previews never disturb
    training. Models without batch norm are returned as an evaluation-mode copy."""
    out = copy.deepcopy(model)
    bns = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return out.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    out.train()
    for _ in range(passes):
        forward(out)
    for m in bns:
        m.momentum = 0.1
    return out.eval()
