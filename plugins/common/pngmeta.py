"""PNG files that remember how they were made (text chunks), written atomically.

Generated images carry their parameters so they can be regenerated: the GAN writes its model,
seed, class and latent; the diffusion editor writes the ``parameters`` key that A1111 writes so
other tools read it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import UserError
from studio.storage import atomic_path


def save_png(image: Any, target: str | os.PathLike[str], text: Mapping[str, str] | None = None
             ) -> Path:
    """Save a uint8 ``(H, W)``/``(H, W, C)`` array or PIL image with ``text`` chunks."""
    from PIL import Image, PngImagePlugin

    if isinstance(image, np.ndarray):
        arr = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        image = Image.fromarray(arr.astype(np.uint8))
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        if any(ord(ch) > 255 for ch in str(value)):
            info.add_itxt(key, str(value))  # UTF-8 chunk for non-Latin-1 text (prompts)
        else:
            info.add_text(key, str(value))
    with atomic_path(target, suffix=".png") as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(target)


def read_png_text(path: str | os.PathLike[str]) -> dict[str, str]:
    """All text chunks of a PNG (tEXt, zTXt and iTXt)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise UserError(f"{Path(path).name} is a {im.format} image, not a PNG: only PNGs "
                                "carry generation parameters")
            im.load()
            return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}
    except UnidentifiedImageError:
        raise UserError(f"{Path(path).name} is not an image") from None
