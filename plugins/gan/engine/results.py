"""What the GAN's Explore jobs hand back: light types (numpy, no torch) that the panel reads.

They live in the engine, below the jobs and the panel, so the panel can use a job's result
without importing the job module (it submits jobs by name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Sample:
    """What identifies one generated image: its latent comes from its seed alone."""

    seed: int
    label: int | None = None  # class index (conditional models)
    edits: list[float] = field(default_factory=list)  # GANSpace slider values (in std units)


@dataclass
class Generated:
    """Images made by an Explore job (the panel reads the arrays; the CLI prints ``str``)."""

    images: np.ndarray  # uint8 (N, H, W, C)
    samples: list[Sample] = field(default_factory=list)  # one per image (or the two ends)
    model: dict[str, Any] = field(default_factory=dict)  # explore.describe(model)
    path: Path | None = None  # the file written, if any

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        n, h, w, _ = self.images.shape
        return f"{n} image(s) of {w}x{h}"
