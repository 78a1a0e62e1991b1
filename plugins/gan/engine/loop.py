"""The training loop around :class:`GanTrainer`: metrics, previews, checkpoints, collapse
watch, and stopping cleanly.

It reports through any object with the :class:`Reporter` methods; the studio's ``JobContext``
is one, so the same loop runs in the window, on the command line and in tests. Between two
reports it does nothing but train: statistics stay on the device and are fetched every
``log_every`` steps (one synchronisation), previews and checkpoints come every few hundred steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from plugins.gan.engine import modelfile
from plugins.gan.engine.trainer import GanTrainer
from studio import storage
from studio.errors import Cancelled


class Reporter(Protocol):
    def check(self) -> None: ...
    def progress(self, done: float, total: float | None = None, message: str = "") -> None: ...
    def metrics(self, step: float, **values: float) -> None: ...
    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None: ...
    def log(self, text: str, level: str = "info") -> None: ...
    def warn(self, text: str) -> None: ...


@dataclass
class Schedule:
    steps: int  # total generator steps to reach (a resumed run continues up to it)
    log_every: int = 10
    preview_every: int = 200
    checkpoint_every: int = 1000
    collapse_threshold: float = 0.3  # diversity relative to real images
    collapse_after: int = 500  # steps before collapse can be reported (early samples are alike)
    max_seconds: float | None = None  # stop (as if Stop was pressed, but "done") after this long
    min_log_interval: float = 0.2  # seconds; fast GPUs log less often than every log_every steps
    min_preview_interval: float = 1.0  # seconds; nobody watches more than one grid a second


def save_checkpoint(trainer: GanTrainer, run_dir: Path, info: dict[str, Any],
                    preview_model: Any | None = None) -> Path:
    """Resumable state plus the exported generator, each written atomically."""
    path = storage.save_state(run_dir / modelfile.CHECKPOINT, trainer.state_dict())
    model = preview_model if preview_model is not None else trainer.sampling_generator()
    modelfile.export_generator(run_dir, model, trainer.cfg, {**info, "step": trainer.step})
    return path


def run(trainer: GanTrainer, schedule: Schedule, run_dir: Path, reporter: Reporter,
        info: dict[str, Any]) -> int:
    """Train up to ``schedule.steps``; returns the step reached.

    On cancel the state after the last completed step is checkpointed before ``Cancelled``
    propagates, so Stop never loses work. Any other error leaves the previous checkpoint as is
    (a half-done step is not a state worth keeping).
    """
    collapsed = False
    samples_dir = run_dir / "samples"
    start = trainer.step
    t0 = time.monotonic()

    def preview_and_watch() -> Any:
        nonlocal collapsed
        model = trainer.sampling_generator()
        _, grid, ratio = trainer.preview(model)
        step = trainer.step
        reporter.metrics(step, diversity=ratio)
        was = collapsed
        collapsed = (step >= schedule.collapse_after and ratio < schedule.collapse_threshold)
        if collapsed and not was:
            reporter.warn(f"Possible mode collapse at step {step}: the samples are much less "
                          f"varied than the real images (diversity {ratio:.2f} of real's). "
                          "Try DiffAugment, a lower learning rate, or resume from an earlier "
                          "checkpoint.")
        elif was and not collapsed:
            reporter.log(f"Sample diversity recovered at step {step} ({ratio:.2f} of real's).")
        reporter.preview("image", grid, step=step, diversity=ratio, collapse=collapsed,
                         collapse_threshold=schedule.collapse_threshold)
        return model, grid

    last_log = last_preview = 0.0
    try:
        while trainer.step < schedule.steps:
            reporter.check()
            trainer.train_step()
            step = trainer.step
            now = time.monotonic()
            out_of_time = (schedule.max_seconds is not None
                           and now - t0 >= schedule.max_seconds)
            last = step == schedule.steps or out_of_time
            if (step % schedule.log_every == 0 and now - last_log >= schedule.min_log_interval
                    ) or last:
                last_log = now
                reporter.metrics(step, **trainer.pop_stats())
                rate = (step - start) / max(now - t0, 1e-6)
                reporter.progress(step, schedule.steps, f"step {step} · {rate:.1f} steps/s")
            checkpoint = step % schedule.checkpoint_every == 0 or last
            if (step % schedule.preview_every == 0
                    and now - last_preview >= schedule.min_preview_interval) or checkpoint:
                last_preview = now
                model, grid = preview_and_watch()
                if checkpoint:
                    save_checkpoint(trainer, run_dir, info, model)
                    from plugins.common.pngmeta import save_png

                    save_png(grid, samples_dir / f"step_{step:07d}.png",
                             {"gan:step": str(step)})
            if out_of_time:
                reporter.log(f"Time budget reached at step {step} "
                             f"({(now - t0) / 60:.1f} min); checkpoint saved.")
                break
    except Cancelled:
        if trainer.step > 0:
            save_checkpoint(trainer, run_dir, info)
            reporter.log(f"Stopped at step {trainer.step}; checkpoint saved (Resume continues "
                         "from here).")
        raise
    return trainer.step
