"""The workspace's cache of prepared data: what a job made of the user's files (decoded and
resized images, a trained tokenizer and the token ids of a corpus) kept for the next run.

Why: preparing a data set can cost more than a short training run (decoding thousands of
images, training a tokenizer on a large corpus), and users train on the same folder again and
again with other settings. An entry is keyed by the *content* of the files (their sha256, so a
renamed or touched file still hits and an edited one misses) and by every setting that changes
the result, and holds plain arrays (``.npy``, read with ``allow_pickle=False``), JSON and files
the preparing code wrote itself: nothing is ever unpickled. The user's files are only read.

Entries live in ``<workspace>/cache/<kind>/<key>/``; a finished entry has ``entry.json``
(written last, so a half-written entry never counts) and is made in a temporary folder that is
renamed into place, so two jobs preparing the same data at once both succeed. The cache keeps
under a size limit (Settings, default 2 GB) by dropping the least recently used entries;
"Clear caches" in Settings empties it. A damaged entry is dropped and the data prepared again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENTRY = "entry.json"
DEFAULT_LIMIT_GB = 2.0


def key_of(kind: str, settings: Mapping[str, Any], contents: Iterable[str]) -> str:
    """A key from the preparation's kind, its settings (JSON values) and the content hashes
    (and names, where they matter) of what it reads, in order."""
    h = hashlib.sha256()
    h.update(json.dumps({"kind": kind, "settings": dict(settings)}, sort_keys=True,
                        default=str).encode("utf-8"))
    for c in contents:
        h.update(b"\0")
        h.update(c.encode("utf-8"))
    return h.hexdigest()[:40]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """A finished cache entry: its folder, its JSON metadata and its arrays."""

    path: Path
    meta: dict[str, Any]

    def array(self, name: str) -> np.ndarray:
        """A stored array (``ValueError`` / ``OSError`` if damaged: the caller drops it)."""
        return np.load(self.path / f"{name}.npy", allow_pickle=False)


class Writer:
    """Fills a new entry's temporary folder (see :meth:`PrepCache.put`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: dict[str, Any] = {}

    def array(self, name: str, value: np.ndarray) -> None:
        np.save(self.path / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)


class PrepCache:
    """The prepared-data cache of one workspace, with a size limit in bytes."""

    def __init__(self, root: str | os.PathLike[str], limit_bytes: int) -> None:
        self.root = Path(root)
        self.limit_bytes = int(limit_bytes)

    @classmethod
    def of_workspace(cls, workspace: Path, limit_gb: float = DEFAULT_LIMIT_GB) -> PrepCache:
        return cls(Path(workspace) / "cache", int(max(0.0, limit_gb) * 1e9))

    @property
    def enabled(self) -> bool:
        return self.limit_bytes > 0

    # -- read --------------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> Entry | None:
        """The finished entry for ``key``, or None. Marks it used (for the size limit)."""
        if not self.enabled:
            return None
        path = self.root / kind / key
        try:
            meta = json.loads((path / ENTRY).read_text(encoding="utf-8"))
            os.utime(path / ENTRY)
        except (OSError, ValueError):
            return None
        return Entry(path, meta) if isinstance(meta, dict) else None

    def load(self, kind: str, key: str, read: Callable[[Entry], Any]) -> Any | None:
        """``read(entry)`` for the entry of ``key``; None when there is none or it is damaged
        (then it is dropped, and the caller prepares the data again)."""
        entry = self.get(kind, key)
        if entry is None:
            return None
        try:
            return read(entry)
        except (OSError, ValueError, KeyError, TypeError):
            self.drop(kind, key)
            return None

    # -- write -------------------------------------------------------------------------------
    def put(self, kind: str, key: str, fill: Callable[[Writer], None]) -> bool:
        """Make the entry of ``key``: ``fill`` writes its files and meta into a temporary
        folder, which is then renamed into place. Returns False (and leaves nothing) when the
        cache is off or the disk refuses (a full disk must not fail the job that prepared the
        data)."""
        if not self.enabled:
            return False
        final = self.root / kind / key
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=final.parent))
        except OSError:
            return False
        try:
            w = Writer(tmp)
            fill(w)
            (tmp / ENTRY).write_text(json.dumps({**w.meta, "made": time.time()}),
                                     encoding="utf-8")
            if final.exists():  # made meanwhile by another job: theirs is as good
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        self.trim()
        return True

    def drop(self, kind: str, key: str) -> None:
        shutil.rmtree(self.root / kind / key, ignore_errors=True)

    # -- size --------------------------------------------------------------------------------
    def entries(self) -> Iterator[tuple[Path, float, int]]:
        """Every finished entry: (folder, last use, bytes)."""
        if not self.root.is_dir():
            return
        for kind in self.root.iterdir():
            if not kind.is_dir():
                continue
            for entry in kind.iterdir():
                marker = entry / ENTRY
                if entry.name.startswith(".") or not marker.exists():
                    continue
                with contextlib.suppress(OSError):
                    yield entry, marker.stat().st_mtime, _folder_bytes(entry)

    def size(self) -> int:
        """Bytes the cache holds (half-made entries included)."""
        return _folder_bytes(self.root) if self.root.is_dir() else 0

    def trim(self) -> int:
        """Drop the least recently used entries until the cache is within its limit; bytes
        freed."""
        found = sorted(self.entries(), key=lambda e: e[1])
        total = sum(b for _, _, b in found)
        freed = 0
        for path, _used, size in found:
            if total - freed <= self.limit_bytes:
                break
            shutil.rmtree(path, ignore_errors=True)
            freed += size
        return freed

    def clear(self) -> int:
        """Empty the cache ("Clear caches" in Settings); bytes freed."""
        size = self.size()
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        child.unlink()
        return size - self.size()


def _folder_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total
