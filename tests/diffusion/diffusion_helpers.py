"""Helpers the diffusion tests import by name (a unique module name: every test folder has a
conftest.py, so importing helpers "from conftest" picks whichever conftest loaded first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
