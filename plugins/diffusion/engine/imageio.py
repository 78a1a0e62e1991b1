"""The user's images and masks for the editor: read with clear errors, never modified.

Unlike training data (``plugins.common.images``, square crops of a folder), an image being
edited keeps its own size and aspect; these helpers read one image or mask as arrays and grow a
canvas for outpainting. Masks follow A1111: white (or opaque) = repaint, black = keep.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import UserError

MAX_SIDE = 8192


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``; transparency is flattened onto white."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"the image {p} does not exist")
    if p.is_dir():
        raise UserError(f"{p} is a folder: choose an image file")
    try:
        with Image.open(p) as im:
            im.load()
            if max(im.size) > MAX_SIDE:
                raise UserError(f"{p.name} is {im.size[0]}x{im.size[1]}: images up to "
                                f"{MAX_SIDE} px per side can be edited")
            if im.mode in ("RGBA", "LA", "PA", "P") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise UserError(f"{p.name} is not an image (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError:
        raise UserError(f"{p.name} is too large to open safely") from None
    except (OSError, SyntaxError) as exc:
        raise UserError(f"{p.name} is a damaged image ({exc})") from None


def read_mask(path: str | os.PathLike[str], size: tuple[int, int] | None) -> np.ndarray:
    """A mask file as float32 ``(H, W)`` in [0, 1] (1 = repaint). ``size`` is the image's
    ``(width, height)``; a mask of another size is refused rather than silently stretched
    (``None``: not known here; generation checks the shapes again).

    A mask with real transparency uses its alpha channel (painted areas are opaque); otherwise its
    brightness.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"the mask {p} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            if size is not None and im.size != tuple(size):
                raise UserError(f"the mask {p.name} is {im.size[0]}x{im.size[1]} but the image is "
                                f"{size[0]}x{size[1]}: they must be the same size")
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                alpha = np.asarray(im.convert("RGBA"), dtype=np.uint8)[..., 3]
                if alpha.min() < 255:
                    return alpha.astype(np.float32) / 255.0
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise UserError(f"the mask {p.name} is not an image") from None
    except (OSError, SyntaxError) as exc:
        raise UserError(f"the mask {p.name} is a damaged image ({exc})") from None


def read_image_field(path: Path, params: Any, warn: Callable[[str], None]) -> np.ndarray:
    """The command line's ``--image FILE`` as the array the job's ``image`` field holds."""
    return read_image(path)


def read_mask_field(path: Path, params: Any, warn: Callable[[str], None]) -> np.ndarray:
    """The command line's ``--mask FILE``, checked against the image read just before it (the
    params' ``image`` field comes first)."""
    image = getattr(params, "image", None)
    size = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else None
    return read_mask(path, size)


def describe_array(arr: Any) -> dict[str, Any]:
    """What a run manifest or the remembered settings say about an image or mask: its size,
    not its pixels."""
    shape = getattr(arr, "shape", ())
    if len(shape) >= 2:
        return {"image": f"{shape[1]}x{shape[0]}"}
    return {"object": type(arr).__name__}


def check_mask(mask: np.ndarray) -> None:
    if float(mask.max()) <= 0.0:
        raise UserError("the mask is empty: paint the area to regenerate (white) first")


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften a mask's edge by ``radius`` pixels *inwards*: the blend with the original happens
    inside the painted area, so every pixel the user did not paint stays exactly as it was."""
    m = mask.astype(np.float32)
    if radius <= 0:
        return m
    from PIL import Image, ImageFilter

    img = Image.fromarray(np.clip(m * 255.0, 0, 255).astype(np.uint8), mode="L")
    soft = np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0
    return np.minimum(np.clip(2.0 * soft - 1.0, 0.0, 1.0), m)


def grow_canvas(image: np.ndarray, left: int = 0, top: int = 0, right: int = 0, bottom: int = 0,
                overlap: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Outpainting: pad ``image`` by the given pixels (filled by repeating the edge, a neutral
    start for the sampler) and return it with a mask of the new area plus ``overlap`` pixels
    into the old one, so the seam is regenerated too."""
    pads = (left, top, right, bottom)
    if min(pads) < 0:
        raise UserError("outpainting margins cannot be negative")
    if max(pads) == 0:
        raise UserError("give at least one margin (left, top, right or bottom) to grow the image")
    h, w = image.shape[:2]
    if max(w + left + right, h + top + bottom) > MAX_SIDE:
        raise UserError(f"the grown image would exceed {MAX_SIDE} px per side")
    grown = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="edge")
    mask = np.ones(grown.shape[:2], dtype=np.float32)
    y0, x0 = top + (overlap if top else 0), left + (overlap if left else 0)
    y1, x1 = top + h - (overlap if bottom else 0), left + w - (overlap if right else 0)
    mask[max(y0, top):max(y1, y0), max(x0, left):max(x1, x0)] = 0.0
    return grown, mask


def composite(original: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``generated`` where the mask is 1, ``original`` where it is 0, blended between; pixels
    with mask 0 are exactly the original's."""
    m = mask.astype(np.float32)[..., None]
    out = original.astype(np.float32) * (1.0 - m) + generated.astype(np.float32) * m
    result = np.clip(np.round(out), 0, 255).astype(np.uint8)
    keep = mask <= 0.0
    result[keep] = original[keep]
    return result


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 RGB resize (Lanczos)."""
    from PIL import Image

    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
