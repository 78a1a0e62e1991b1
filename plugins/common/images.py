"""Image folders for the image plugins (GAN and diffusion share this one module).

A folder of png/jpg/webp/bmp files, searched recursively; first-level sub-folders are classes.
Each readable image is centre-cropped to a square and resized; unreadable or corrupt files are
skipped and reported with the reason. The source folder is only ever read. With the
workspace's prepared-data cache (:mod:`studio.cache`) a folder read before at the same size
is not decoded again: every file is hashed (which the run manifest needs anyway) and, when the
contents and settings match, the arrays come from the cache.

Also: the built-in sample set (scikit-learn's handwritten digits written out as PNGs with their
classes as sub-folders) and image-grid helpers for sample previews.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studio.errors import UserError

if TYPE_CHECKING:
    from studio.cache import Entry, PrepCache, Writer

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DIGITS_NAME = "digits"


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class ImageDataset:
    """Preprocessed images in memory: uint8 ``(N, H, W, C)``, labels ``(N,)`` (-1: no class)."""

    root: Path
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[Path]
    skipped: list[Skipped] = field(default_factory=list)
    hashes: list[str] | None = None  # sha256 of each of ``files``, when they were hashed

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def conditional(self) -> bool:
        """True when the folder has at least two class sub-folders."""
        return len(self.classes) >= 2

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_tensor(self, device: str = "cpu") -> Any:
        """Float tensor ``(N, C, H, W)`` scaled to [-1, 1], the range GANs and DDPMs use."""
        import torch

        x = torch.from_numpy(self.images).to(device).permute(0, 3, 1, 2).float()
        return x.div_(127.5).sub_(1.0)

    def labels_tensor(self, device: str = "cpu") -> Any:
        import torch

        return torch.from_numpy(self.labels).to(device)

    def report(self) -> str:
        """One paragraph for the log: what was loaded, what was skipped and why."""
        lines = [f"{len(self)} images from {self.root} at {self.size}px, {self.channels} channel(s)"
                 + (f", {len(self.classes)} classes" if self.classes else "")]
        if self.skipped:
            lines.append(f"{len(self.skipped)} file(s) skipped:")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped[:50]]
            if len(self.skipped) > 50:
                lines.append(f"  … and {len(self.skipped) - 50} more")
        return "\n".join(lines)

    def fingerprint(self) -> str:
        """A short hash of the file list and sizes, stored with runs for the audit panel."""
        h = hashlib.sha1()
        for f in self.files:
            try:
                h.update(f"{f}:{f.stat().st_size}".encode())
            except OSError:
                h.update(str(f).encode())
        return h.hexdigest()[:16]


def scan_folder(root: str | os.PathLike[str]) -> tuple[list[Path], list[str]]:
    """Image files under ``root`` (sorted, recursive) and the class names (first-level folders
    that contain images). Hidden files and folders are ignored."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"the image folder {root} does not exist")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: choose a folder of images")
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTS):
                files.append(Path(dirpath) / name)
    classes = sorted({f.relative_to(root).parts[0] for f in files
                      if len(f.relative_to(root).parts) > 1})
    return files, classes


def center_crop_resize(img: Any, size: int) -> Any:
    """Centre-crop a PIL image to a square and resize it to ``size`` (Lanczos when shrinking,
    bicubic when enlarging)."""
    from PIL import Image

    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        resample = Image.Resampling.LANCZOS if side > size else Image.Resampling.BICUBIC
        img = img.resize((size, size), resample)
    return img


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One file as uint8 ``(size, size, channels)``; raises ``ValueError`` with a reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            if im.mode in ("P", "LA", "RGBA", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im2 = Image.alpha_composite(background, rgba)
            else:
                im2 = im
            im2 = im2.convert("L" if channels == 1 else "RGB")
            if min(im2.size) < 1:
                raise ValueError("image has no pixels")
            arr = np.asarray(center_crop_resize(im2, size), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can read (corrupt or wrong extension)") from None
    except (OSError, SyntaxError) as exc:  # truncated files raise OSError; bad PNG chunks Syntax
        raise ValueError(f"corrupt image ({exc})") from None
    except Image.DecompressionBombError:
        raise ValueError("image is too large (over Pillow's decompression-bomb limit)") from None
    return arr[..., None] if channels == 1 else arr


def load_image_folder(
    root: str | os.PathLike[str],
    size: int = 32,
    channels: int = 3,
    *,
    max_images: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
    cache: PrepCache | None = None,
) -> ImageDataset:
    """Read and preprocess every image under ``root``.

    Args:
        root: folder of images; first-level sub-folders are classes.
        size: output side in pixels (square).
        channels: 3 for colour, 1 for grayscale.
        max_images: stop after this many readable images (for quick previews).
        progress: called as ``progress(done, total)`` while reading.
        check: called between files; raise from it to cancel (``ctx.check``).
        cache: the workspace's prepared-data cache (``ctx.cache``): the files are hashed
            first (``progress`` counts them too) and a folder prepared before at these
            settings is not decoded again; the result then carries ``hashes``.

    Raises:
        UserError: the folder is missing, has no images, or none of them could be read.
    """
    if size < 8 or size > 1024:
        raise UserError(f"image size must be between 8 and 1024 pixels, not {size}")
    if channels not in (1, 3):
        raise UserError("channels must be 1 (grayscale) or 3 (colour)")
    root = Path(root).expanduser()
    files, classes = scan_folder(root)
    if not files:
        raise UserError(f"{root} has no images (looked for {', '.join(IMAGE_EXTS)} files, "
                        "including sub-folders)")
    key = hashes = None
    if cache is not None and cache.enabled:
        from studio.cache import key_of
        from studio.manifest import sha256_file

        hashes = []
        for i, f in enumerate(files):
            if check is not None:
                check()
            hashes.append(sha256_file(f))
            if progress is not None and (i % 256 == 0 or i == len(files) - 1):
                progress(i + 1, len(files))
        key = key_of("images", {"size": size, "channels": channels, "max": max_images,
                                "format": CACHE_FORMAT},
                     (f"{f.relative_to(root).as_posix()}:{h}" for f, h in zip(files, hashes,
                                                                              strict=True)))
        hit = cache.load("images", key, lambda e: _from_entry(e, root, files, hashes))
        if hit is not None:
            return hit
    ds = _decode(root, files, classes, size, channels, max_images, progress, check)
    if hashes is not None and cache is not None and key is not None:
        by_file = dict(zip(files, hashes, strict=True))
        ds.hashes = [by_file[f] for f in ds.files]
        cache.put("images", key, lambda w: _fill(w, ds, root))
    return ds


#: bump when what :func:`load_image` makes of a file changes: older cache entries then miss
CACHE_FORMAT = 1


def _fill(w: Writer, ds: ImageDataset, root: Path) -> None:
    w.array("images", ds.images)
    w.array("labels", ds.labels)
    w.meta.update(classes=ds.classes, files=[f.relative_to(root).as_posix() for f in ds.files],
                  skipped=[[s.path.relative_to(root).as_posix(), s.reason] for s in ds.skipped])


def _from_entry(e: Entry, root: Path, files: list[Path], hashes: list[str]) -> ImageDataset:
    images, labels = e.array("images"), e.array("labels")
    kept = [root / rel for rel in e.meta["files"]]
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(kept) \
            or labels.shape != (len(kept),):
        raise ValueError("damaged cache entry")
    by_file = dict(zip(files, hashes, strict=True))
    return ImageDataset(root, images, labels.astype(np.int64), list(e.meta["classes"]), kept,
                        [Skipped(root / rel, str(reason)) for rel, reason in e.meta["skipped"]],
                        [by_file[f] for f in kept])


def _decode(root: Path, files: list[Path], classes: list[str], size: int, channels: int,
            max_images: int | None, progress: Callable[[int, int], None] | None,
            check: Callable[[], None] | None) -> ImageDataset:
    class_index = {c: i for i, c in enumerate(classes)}
    images: list[np.ndarray] = []
    labels: list[int] = []
    kept: list[Path] = []
    skipped: list[Skipped] = []
    for i, f in enumerate(files):
        if check is not None:
            check()
        try:
            images.append(load_image(f, size, channels))
        except ValueError as exc:
            skipped.append(Skipped(f, str(exc)))
            continue
        parts = f.relative_to(root).parts
        labels.append(class_index[parts[0]] if len(parts) > 1 else -1)
        kept.append(f)
        if progress is not None and (i % 64 == 0 or i == len(files) - 1):
            progress(i + 1, len(files))
        if max_images is not None and len(kept) >= max_images:
            break
    if not images:
        reasons = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:3])
        raise UserError(f"none of the {len(files)} image files in {root} could be read "
                        f"({reasons}{' …' if len(skipped) > 3 else ''})")
    used_classes = classes if any(lbl >= 0 for lbl in labels) else []
    return ImageDataset(root, np.stack(images), np.asarray(labels, dtype=np.int64), used_classes,
                        kept, skipped)


# ----------------------------------------------------------------------------------------------
# Built-in sample set
# ----------------------------------------------------------------------------------------------
def builtin_digits(workspace: Path, size: int = 32) -> Path:
    """scikit-learn's 1,797 handwritten digits as PNGs in ``<workspace>/datasets/digits/<0-9>/``.

    Written once (atomically per file) and reused; the 8x8 originals are upscaled to ``size`` px,
    white ink on black, so a new user can train at once with no data of their own.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    from studio.storage import atomic_path

    root = workspace / "datasets" / DIGITS_NAME
    marker = root / ".complete"
    if marker.exists():
        return root
    digits = load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        target = root / str(int(label)) / f"digit_{i:04d}.png"
        if target.exists():
            continue
        arr = np.clip(img / 16.0 * 255.0, 0, 255).astype(np.uint8)
        pil = Image.fromarray(arr, mode="L").resize((size, size), Image.Resampling.BICUBIC)
        with atomic_path(target, suffix=".png") as tmp:
            pil.save(tmp, format="PNG")
    marker.write_text("sklearn.datasets.load_digits\n", encoding="utf-8")
    return root


def is_builtin(data: str) -> bool:
    return data.strip().lower() in (DIGITS_NAME, f"builtin:{DIGITS_NAME}")


def absolute_data(data: str) -> str:
    """``data`` as a run records it: a built-in set by its name, a folder by its absolute path
    (a relative one would not be found when the run is resumed from another folder)."""
    return data if is_builtin(data) else str(Path(data).expanduser().resolve())


def resolve_data_folder(data: str, workspace: Path) -> Path:
    """``"digits"`` (or ``"builtin:digits"``) means the built-in sample set; anything else is a
    folder path."""
    if is_builtin(data):
        return builtin_digits(workspace)
    return Path(data).expanduser()


# ----------------------------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------------------------
def to_uint8(x: Any) -> np.ndarray:
    """A tensor/array in [-1, 1] shaped ``(N, C, H, W)`` into uint8 ``(N, H, W, C)``."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    return np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2,
              pad_value: int = 0) -> np.ndarray:
    """Tile uint8 ``(N, H, W, C)`` images into one ``(H', W', C)`` picture."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("no images to tile")
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol = int(math.ceil(n / nrow))
    grid = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid
