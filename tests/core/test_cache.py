"""The prepared-data cache (studio.cache): keyed by contents and settings, atomic, bounded,
cleared from Settings; and the image folders and writer corpora that use it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from plugins.common import images as images_mod
from studio.cache import PrepCache, key_of


def _entry(cache: PrepCache, kind: str, key: str, n: int) -> None:
    def fill(w) -> None:
        w.array("x", np.zeros(n, dtype=np.uint8))
        w.meta["n"] = n

    assert cache.put(kind, key, fill)


def test_keys_follow_contents_and_settings_not_names_of_settings_order() -> None:
    a = key_of("images", {"size": 32, "channels": 3}, ["a.png:1", "b.png:2"])
    assert a == key_of("images", {"channels": 3, "size": 32}, ["a.png:1", "b.png:2"])
    assert a != key_of("images", {"size": 64, "channels": 3}, ["a.png:1", "b.png:2"])
    assert a != key_of("images", {"size": 32, "channels": 3}, ["a.png:1", "b.png:3"])
    assert a != key_of("music", {"size": 32, "channels": 3}, ["a.png:1", "b.png:2"])


def test_put_get_limit_and_clear(tmp_path: Path) -> None:
    cache = PrepCache(tmp_path / "cache", limit_bytes=2500)
    assert cache.get("k", "missing") is None
    _entry(cache, "k", "one", 1000)
    got = cache.get("k", "one")
    assert got is not None and got.meta["n"] == 1000 and got.array("x").shape == (1000,)
    os.utime(got.path / "entry.json", (time.time() - 100, time.time() - 100))  # oldest use
    _entry(cache, "k", "two", 1000)
    _entry(cache, "k", "three", 1000)  # over 2,500 bytes: the least recently used one goes
    assert cache.get("k", "one") is None
    assert cache.get("k", "two") is not None and cache.get("k", "three") is not None
    assert cache.size() > 2000
    assert cache.clear() > 2000 and cache.size() == 0 and cache.get("k", "two") is None
    off = PrepCache(tmp_path / "off", limit_bytes=0)  # 0 GB in Settings: no cache at all
    assert not off.put("k", "one", lambda w: None) and not (tmp_path / "off").exists()


def test_a_damaged_or_half_made_entry_is_dropped_and_never_read(tmp_path: Path) -> None:
    cache = PrepCache(tmp_path / "cache", limit_bytes=10**9)
    _entry(cache, "k", "one", 10)
    (cache.root / "k" / "one" / "x.npy").write_bytes(b"not an array")
    assert cache.load("k", "one", lambda e: e.array("x")) is None
    assert not (cache.root / "k" / "one").exists()
    half = cache.root / "k" / "two"
    half.mkdir()
    np.save(half / "x.npy", np.zeros(3))  # no entry.json: a job died while writing it
    assert cache.get("k", "two") is None

    def failing(w) -> None:
        w.array("x", np.zeros(3))
        raise OSError("disk full")

    assert not cache.put("k", "three", failing)  # a full disk does not fail the job
    assert not (cache.root / "k" / "three").exists()
    assert [p.name for p in (cache.root / "k").iterdir() if p.name.startswith(".")] == []


def _folder(tmp_path: Path) -> Path:
    from PIL import Image

    root = tmp_path / "art"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            rng = np.random.default_rng(i + (10 if cls == "dogs" else 0))
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.png")
    (root / "cats" / "broken.png").write_bytes(b"not a png")
    return root


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file()}


def test_an_image_folder_is_decoded_once_per_contents_and_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path)
    before = _snapshot(root)
    cache = PrepCache(tmp_path / "ws" / "cache", limit_bytes=10**9)
    first = images_mod.load_image_folder(root, 16, 3, cache=cache)
    assert len(first) == 10 and len(first.skipped) == 1 and first.hashes is not None

    decoded: list[Path] = []
    real = images_mod.load_image
    monkeypatch.setattr(images_mod, "load_image",
                        lambda p, s, c: decoded.append(p) or real(p, s, c))
    again = images_mod.load_image_folder(root, 16, 3, cache=cache)
    assert decoded == []  # nothing decoded: all from the cache
    assert np.array_equal(again.images, first.images)
    assert np.array_equal(again.labels, first.labels) and again.classes == ["cats", "dogs"]
    assert again.files == first.files and again.hashes == first.hashes
    assert [(s.path, s.reason) for s in again.skipped] == [(s.path, s.reason)
                                                           for s in first.skipped]

    images_mod.load_image_folder(root, 24, 3, cache=cache)  # another size: decoded again
    assert len(decoded) == 11
    decoded.clear()
    from PIL import Image

    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(root / "dogs" / "0.png")
    edited = images_mod.load_image_folder(root, 16, 3, cache=cache)  # an edited file: a miss
    assert len(decoded) == 11 and not np.array_equal(edited.images, first.images)
    assert _snapshot(root).keys() == before.keys()  # the user's folder: read, never written


def test_manifest_examples_reuse_the_hashes_the_cache_made(tmp_path: Path) -> None:
    from studio.manifest import file_examples

    root = _folder(tmp_path)
    ds = images_mod.load_image_folder(root, 16, 3,
                                      cache=PrepCache(tmp_path / "c", limit_bytes=10**9))
    assert file_examples(root, ds.files, hashes=ds.hashes) == file_examples(root, ds.files)
