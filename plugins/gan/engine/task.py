"""A GAN run as a task of the shared training loop (``plugins.common.training.TrainLoop``).

The loop owns the budgets, the cadences, the checkpoints on Stop and the exact resume; this
module adds what only a GAN does around :class:`~plugins.gan.engine.trainer.GanTrainer`:

- **previews** sample the EMA generator (batch-norm statistics re-estimated for its weights) on
  fixed noise, log the samples' **diversity** relative to the real images and watch for **mode
  collapse** (a warning when diversity falls below a threshold, and when it recovers);
- **exports** write ``generator.safetensors`` + ``config.json`` at every checkpoint, on Stop and
  at the end (the preview's generator when there is one for this step, so the exported model
  is exactly what the grid showed), and the grid as ``samples/step_XXXXXXX.png``;
- **evaluation**, when images were held out, asks the discriminator how real it finds held-out
  images and an equal number of trained ones: a gap that opens up is the discriminator
  memorising its training set (cheap: one forward pass over a few hundred images).

No Qt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from plugins.common.training import LoopState, Reporter
from plugins.gan.engine import modelfile
from plugins.gan.engine.trainer import GanTrainer

#: most images of each side the held-out evaluation looks at
EVAL_IMAGES = 256


class GanTask:
    """The loop's view of a GAN run.

    Args:
        trainer: the models and their step.
        run_dir: where exports and sample PNGs go.
        reporter: the job context (metrics, previews, warnings).
        info: what ``config.json`` and the generator file record besides the config (data).
        collapse_threshold: diversity (share of the real images') below which a warning is
            given.
        collapse_after: steps before the collapse watch starts (early samples are all alike).
        held_out: uint8 ``(N, C, H, W)`` images kept out of training, and their labels (for
            the discriminator's held-out score; None: nothing held out).
    """

    def __init__(self, trainer: GanTrainer, run_dir: Path, reporter: Reporter,
                 info: dict[str, Any], *, collapse_threshold: float = 0.3,
                 collapse_after: int = 500,
                 held_out: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> None:
        self.trainer = trainer
        self.run_dir = Path(run_dir)
        self.rep = reporter
        self.info = info
        self.collapse_threshold = collapse_threshold
        self.collapse_after = collapse_after
        self.collapsed = False
        self._preview: tuple[int, Any, np.ndarray] | None = None  # step, generator, grid
        self._eval_sets = self._evaluation_sets(held_out) if held_out is not None else None

    # -- the loop's protocol ----------------------------------------------------------------------
    def train_step(self, state: LoopState) -> dict[str, torch.Tensor]:
        return self.trainer.train_step(state)

    def state_dict(self) -> dict[str, Any]:
        return {**self.trainer.state_dict(), "collapsed": self.collapsed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)
        self.collapsed = bool(state.get("collapsed", False))
        self._preview = None

    def log_values(self, state: LoopState) -> dict[str, float]:
        """A private run's spent ε beside the averaged losses (nothing for other runs)."""
        dp = self.trainer.dp
        if dp is None:
            return {}
        from plugins.common.privacy import METRIC

        return {METRIC: dp.epsilon()}

    def preview(self, state: LoopState) -> None:
        """Sample the fixed noise, log the diversity, watch for collapse, show the grid."""
        model = self.trainer.sampling_generator()
        _, grid, ratio = self.trainer.preview(model)
        step = state.step
        self._preview = (step, model, grid)
        self.rep.metric("diversity", step, ratio)
        was = self.collapsed
        self.collapsed = step >= self.collapse_after and ratio < self.collapse_threshold
        if self.collapsed and not was:
            self.rep.warn(f"Possible mode collapse at step {step}: the samples are much less "
                          f"varied than the real images (diversity {ratio:.2f} of real's). "
                          "Try DiffAugment, a lower learning rate, or resume from an earlier "
                          "checkpoint.")
        elif was and not self.collapsed:
            self.rep.log(f"Sample diversity recovered at step {step} ({ratio:.2f} of real's).")
        self.rep.preview("image", grid, step=step, diversity=ratio, collapse=self.collapsed,
                         collapse_threshold=self.collapse_threshold)

    def export(self, state: LoopState, reason: str) -> None:
        """The usable model (and, with a grid of this very step, its sample PNG)."""
        step = state.step
        shown = self._preview if self._preview is not None and self._preview[0] == step else None
        model = shown[1] if shown is not None else self.trainer.sampling_generator()
        info = {**self.info, "step": step}
        dp = self.trainer.dp
        if dp is not None:  # the model carries what its training spent
            info["privacy"] = dp.summary()
            if reason in ("stopped", "end"):
                self.rep.log(dp.words())
        modelfile.export_generator(self.run_dir, model, self.trainer.cfg, info)
        if shown is not None and reason != "stopped":
            from plugins.common.pngmeta import save_png

            save_png(shown[2], self.run_dir / "samples" / f"step_{step:07d}.png",
                     {"gan:step": str(step)})
        self._preview = None  # the copy of the generator is not kept between previews

    def evaluate(self, state: LoopState) -> dict[str, float]:
        """The discriminator's mean output for held-out and trained images (empty when
        nothing was held out)."""
        if self._eval_sets is None:
            return {}
        (held, held_y), (seen, seen_y) = self._eval_sets
        return {"D/held_out": self.trainer.real_score(held, held_y),
                "D/trained": self.trainer.real_score(seen, seen_y)}

    # -- pieces -----------------------------------------------------------------------------------
    def _evaluation_sets(self, held_out: tuple[torch.Tensor, torch.Tensor | None]
                         ) -> tuple[tuple[torch.Tensor, torch.Tensor | None],
                                    tuple[torch.Tensor, torch.Tensor | None]]:
        """Up to :data:`EVAL_IMAGES` held-out images and as many trained ones, chosen once
        with a generator of their own (the run's random state is not touched)."""
        images, labels = held_out
        t = self.trainer
        g = torch.Generator().manual_seed(t.cfg.seed + 65537)
        n = min(EVAL_IMAGES, images.shape[0], t.images.shape[0])
        pick_held = torch.randperm(images.shape[0], generator=g)[:n]
        pick_seen = torch.randperm(t.images.shape[0], generator=g)[:n].to(t.images.device)
        held = (images[pick_held], None if labels is None else labels[pick_held])
        seen = (t.images[pick_seen],
                None if t.labels is None else t.labels[pick_seen])
        return held, seen
