"""Helpers shared by the GAN tests (a uniquely named module: every test folder has its own
conftest.py, so importing helpers "from conftest" would be ambiguous)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def make_folder(root: Path, n_per_class: int = 12, size: int = 16, broken: bool = True) -> Path:
    """Two classes (horizontal / vertical bars), grayscale PNGs, plus broken files."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, horizontal in (("bars_h", True), ("bars_v", False)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = np.zeros((size, size), dtype=np.uint8)
            p = int(rng.integers(2, size - 2))
            if horizontal:
                img[p - 1:p + 1, :] = 255
            else:
                img[:, p - 1:p + 1] = 255
            Image.fromarray(img).save(root / cls / f"img_{i:02d}.png")
    if broken:
        (root / "bars_h" / "truncated.png").write_bytes(
            (root / "bars_h" / "img_00.png").read_bytes()[:40])
        (root / "bars_v" / "notes.jpg").write_text("not an image")
    return root


def run_job(name: str, events: list[Any] | None = None, **params: Any) -> Any:
    """Run one GAN job through the studio's job runner (as the CLI and the window do)."""
    from plugins.gan.plugin import GanPlugin
    from studio.jobs import JobRunner
    from studio.settings import Settings

    runner = JobRunner(events.append if events is not None else None,
                       settings=Settings(device="cpu"))
    try:
        rec = runner.submit("gan", GanPlugin().job(name), params)
        runner.wait(rec.id, timeout=240)
        return rec
    finally:
        runner.shutdown()


#: a training configuration small enough for tests (seconds on one CPU thread)
TINY = {"size": 32, "batch_size": 8, "preview_every": 3, "checkpoint_every": 4, "log_every": 2,
        "train_size": 16}
