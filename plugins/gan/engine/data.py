"""Training data for the GAN: the user's folder (or the built-in digits) as tensors, plus the two
choices made from the data itself: colour or grayscale, and the native resolution.

Folder reading, corrupt-file skipping and class sub-folders are :mod:`plugins.common.images`'
job; this module only decides *how* to load and summarises the result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from plugins.common.images import ImageDataset, load_image_folder, resolve_data_folder, scan_folder
from studio.errors import UserError

if TYPE_CHECKING:
    from studio.cache import PrepCache

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}

#: a smaller training resolution is used only when enlarging it back loses almost nothing
NATIVE_PSNR_DB = 35.0


def detect_channels(root: Path, limit: int = 64) -> int:
    """1 when the first ``limit`` images are all grayscale (by their mode, or RGB with equal
    channels), else 3. Cheap: reads headers and, for RGB files, one small thumbnail."""
    from PIL import Image

    files, _ = scan_folder(root)
    seen = 0
    for f in files[:limit]:
        try:
            with Image.open(f) as im:
                if im.mode in GRAY_MODES:
                    seen += 1
                    continue
                im.draft("RGB", (64, 64))
                arr = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.int16)
        except Exception:  # unreadable files are reported by the loader; ignore them here
            continue
        if np.abs(np.diff(arr, axis=-1)).max() > 2:  # channels differ: a colour picture
            return 3
        seen += 1
    return 1 if seen else 3


def load_dataset(data: str, workspace: Path, size: int, color: str = "auto",
                 max_images: int | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 check: Callable[[], None] | None = None,
                 cache: PrepCache | None = None) -> ImageDataset:
    """Load ``data`` (a folder, or "digits") at ``size`` px; ``color`` is auto, rgb or gray;
    through the workspace's prepared-data ``cache`` when given."""
    if not data or not str(data).strip():
        raise UserError("choose a folder of images (or 'digits' for the built-in sample set)")
    root = resolve_data_folder(str(data), workspace)
    if color not in ("auto", "rgb", "gray"):
        raise UserError(f"color must be auto, rgb or gray, not {color!r}")
    channels = {"rgb": 3, "gray": 1}.get(color) or detect_channels(root)
    ds = load_image_folder(root, size, channels, max_images=max_images, progress=progress,
                           check=check, cache=cache)
    if len(ds) < 8:
        raise UserError(f"only {len(ds)} usable image(s) in {root}: a GAN needs at least 8 "
                        "(a few hundred or more for good results)")
    return ds


def native_size(images: np.ndarray, size: int, threshold_db: float = NATIVE_PSNR_DB,
                min_size: int = 8, sample: int = 512) -> int:
    """The smallest power-of-two resolution the images can be reduced to and enlarged back from
    with a PSNR of at least ``threshold_db`` (35 dB: differences below what the eye sees).

    Images that were themselves enlarged from small originals (the built-in digits are 8x8
    scans shown at 32 px) carry no detail above that resolution, and a GAN trained there learns
    the same pictures several times faster. Photos and drawings keep their full size.
    """
    import torch

    from plugins.gan.engine.models import downscale, upscale

    arr = np.asarray(images)[:sample]
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    best = size
    s = size // 2
    while s >= min_size:
        back = upscale(downscale(x, s), size)
        mse = float(((back - x) ** 2).mean())
        psnr = 10 * np.log10(4.0 / max(mse, 1e-12))
        if psnr < threshold_db:
            break
        best = s
        s //= 2
    return best


def dataset_name(data: str, root: Path) -> str:
    """What a run calls its data: "digits" for the built-in set, else the folder's name."""
    from plugins.common.images import DIGITS_NAME

    if str(data).strip().lower() in (DIGITS_NAME, f"builtin:{DIGITS_NAME}"):
        return DIGITS_NAME
    return Path(root).name or str(root)


def summary(ds: ImageDataset) -> dict[str, object]:
    """What the run records about its data (config.json and the run's provenance)."""
    counts = {}
    if ds.classes:
        bins = np.bincount(ds.labels[ds.labels >= 0], minlength=len(ds.classes))
        counts = {c: int(n) for c, n in zip(ds.classes, bins, strict=True)}
    return {"path": str(ds.root), "images": len(ds), "skipped": len(ds.skipped),
            "classes": list(ds.classes), "class_counts": counts, "channels": ds.channels,
            "fingerprint": ds.fingerprint()}
