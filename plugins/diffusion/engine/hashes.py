"""The short hashes A1111 writes into PNG parameters, so image hosts and A1111 itself match our
files to the same model files.

- ``Model hash`` and ``VAE hash``: AutoV2, the first 10 hex digits of the SHA-256 of the whole
  file (A1111 since 1.0; the 8-digit "old" hash of 64 KiB is no longer written).
- ``Lora hashes``: the first 12 hex digits of the SHA-256 of a ``.safetensors`` file's tensor data
  (everything after its header): kohya's "addnet" hash, which A1111 uses so that editing a
  LoRA's metadata keeps its hash.
- ``TI hashes``: the first 12 hex digits of the SHA-256 of the whole embedding file.

Hashing a 2 GB checkpoint reads all of it (seconds), so each result is kept per process by
path, size and modification time; a file that changes is hashed again.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_BLOCK = 1 << 20
_lock = threading.Lock()
_memo: dict[tuple[str, str, int, int], str] = {}


def _key(kind: str, path: Path) -> tuple[str, str, int, int]:
    st = path.stat()
    return kind, str(path.resolve()), st.st_size, st.st_mtime_ns


def _cached(kind: str, path: Path, compute: object) -> str:
    key = _key(kind, path)
    with _lock:
        hit = _memo.get(key)
    if hit is not None:
        return hit
    value = compute()  # type: ignore[operator]
    with _lock:
        _memo[key] = value
    return str(value)


def sha256_file(path: Path, offset: int = 0) -> str:
    """The SHA-256 of ``path`` from byte ``offset`` on (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def autov2(path: Path) -> str:
    """A1111's model hash of a file (10 hex digits)."""
    path = Path(path)
    return _cached("sha256", path, lambda: sha256_file(path))[:10]


def full_sha256(path: Path) -> str:
    path = Path(path)
    return _cached("sha256", path, lambda: sha256_file(path))


def addnet_hash(path: Path) -> str:
    """A1111's LoRA hash (12 hex digits): the SHA-256 of a safetensors file's data after its
    header; a file that is not safetensors is hashed whole."""
    path = Path(path)

    def compute() -> str:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if path.suffix.lower() == ".safetensors" and len(head) == 8:
            return sha256_file(path, 8 + int.from_bytes(head, "little"))
        return sha256_file(path)

    return _cached("addnet", path, compute)[:12]


def ti_hash(path: Path) -> str:
    """A1111's textual-inversion hash (12 hex digits)."""
    return full_sha256(Path(path))[:12]


def model_file(path: Path) -> Path | None:
    """The file whose hash names a model: a single file itself, a diffusers folder's UNet (or
    transformer) weights."""
    path = Path(path)
    if path.is_file():
        return path
    for sub in ("unet", "transformer"):
        cands = sorted((path / sub).glob("*.safetensors"))
        if cands:
            return cands[0]
    return None


def model_hash(path: Path) -> str:
    """The ``Model hash`` written for ``path`` (empty when it has no weights file)."""
    target = model_file(path)
    if target is None:
        return ""
    try:
        return autov2(target)
    except OSError:
        return ""


def model_file_of_vae(folder: Path) -> Path | None:
    """A VAE folder's weights file (its hash names it)."""
    cands = sorted(Path(folder).glob("*.safetensors"))
    return cands[0] if cands else None
