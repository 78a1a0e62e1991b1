"""An exponential moving average of a model's weights.

Samples from the averaged weights are much cleaner than from the raw ones after a short run, so
previews, checkpoints' exports and the saved pipeline all use it. It is our own twenty lines
rather than ``diffusers.training_utils.EMAModel`` because the average here *is* a full
``UNet2DModel`` (sampling and ``save_pretrained`` work on it directly) and its state is a plain
state dict that :func:`studio.storage.save_state` can store without pickle.
"""

from __future__ import annotations

import copy
from typing import Any


class EMA:
    """``decay`` is reached gradually: ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so
    the average is not dominated by the random initial weights in short runs."""

    def __init__(self, model: Any, decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    def update(self, model: Any) -> None:
        import torch

        self.updates += 1
        d = self.current_decay()
        with torch.no_grad():
            ema_params = [p for p in self.model.parameters()]
            params = [p.detach() for p in model.parameters()]
            torch._foreach_lerp_(ema_params, params, 1.0 - d)
            for eb, b in zip(self.model.buffers(), model.buffers(), strict=True):
                eb.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])
