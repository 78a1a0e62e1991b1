"""Fuzzing the shared readers with Hypothesis (issue 18): image folders (PNG, JPEG, GIF,
damaged or not images at all), text corpora (any bytes), run manifests (``run.json``: any
bytes, any JSON) and PNG generation parameters (any ``parameters`` text, in a real PNG). Whatever
the input, the result is a value or a :class:`UserError` naming the file; never a traceback.

The levels and music readers have their own fuzz tests. Kept fast: a modest number of examples
each, no deadline (CI machines are slow and shared).
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from plugins.common.images import IMAGE_EXTS, load_image_folder
from plugins.diffusion.engine.infotext import (
    GenerationParams,
    format_parameters,
    parse_parameters,
    read_png_parameters,
)
from plugins.writer.engine.corpus import load_corpus
from studio import manifest
from studio.errors import UserError

T = TypeVar("T")
FUZZ = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=14)


def outcome(fn: Callable[[], T], *names: str) -> T | None:
    """``fn()``'s result, or None when it raised a UserError that names one of ``names``."""
    try:
        return fn()
    except UserError as exc:
        msg = str(exc)
        assert msg and any(n in msg for n in names), msg
        return None


def _image_bytes(fmt: str, size: tuple[int, int], mode: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode in ("L", "P", "1") else (size[1], size[0], len(mode))
    im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8).astype(np.uint8),
                        mode="L" if mode in ("L", "P", "1") else mode)
    if mode in ("P", "1"):
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


@st.composite
def image_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """An image file: a real one, a damaged one (cut short, bytes flipped) or noise."""
    fmt, ext = draw(st.sampled_from([("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"),
                                     ("BMP", ".bmp"), ("WEBP", ".webp")]))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1", "LA"]))
    if fmt == "JPEG" and mode in ("RGBA", "P", "LA"):
        mode = "RGB"
    if fmt in ("GIF", "BMP") and mode == "LA":
        mode = "L"
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    data = _image_bytes(fmt, size, mode, draw(st.integers(0, 2**16)))
    damage = draw(st.integers(0, 3))
    if damage == 1:
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == 2:
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        data = bytes(b)
    elif damage == 3:
        data = draw(st.binary(max_size=200))
    return ext, data


@FUZZ
@given(st.lists(image_file(), min_size=1, max_size=4), st.booleans(),
       st.sampled_from([1, 3]))
def test_image_folders(files: list[tuple[str, bytes]], classes: bool, channels: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "my images"
        for i, (ext, data) in enumerate(files):
            folder = root / f"class {i % 2}" if classes else root
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"pic {i}{ext}").write_bytes(data)
        ds = outcome(lambda: load_image_folder(root, 16, channels), "my images")
        if ds is not None:
            assert ds.images.shape[1:] == (16, 16, channels)
            readable = [ext for ext, _ in files if ext in IMAGE_EXTS]  # GIFs are not read
            assert len(ds.images) + len(ds.skipped) == len(readable)
            assert all(s.reason for s in ds.skipped)


@FUZZ
@given(st.lists(st.binary(max_size=120) | st.text(max_size=60).map(
    lambda t: t.encode("utf-8")), min_size=1, max_size=3), st.booleans())
def test_text_corpora(payloads: list[bytes], bom: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "my texts"
        root.mkdir()
        names = [f"part {i}.txt" for i in range(len(payloads))]
        for name, data in zip(names, payloads, strict=True):
            (root / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
        corpus = outcome(lambda: load_corpus(root), "my texts", *names)
        if corpus is not None:
            assert corpus.documents and all(d.text.strip() for d in corpus.documents)
            assert not any(d.text.startswith("\ufeff") for d in corpus.documents)


@FUZZ
@given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({"plugin": st.text(max_size=6)},
                                       optional={"schema": JSON, "params": JSON,
                                                 "datasets": JSON, "artifacts": JSON,
                                                 "sessions": JSON, "history": JSON,
                                                 "state": JSON, "title": JSON}
                                       ).map(lambda d: json.dumps(d).encode())))
def test_run_manifests(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "run.json").write_bytes(data)
        m = outcome(lambda: manifest.read(tmp), "run.json", tmp)
        if m is not None:  # whatever was read can be written back and read again
            manifest.write(tmp, m)
            again = manifest.read(tmp)
            assert again is not None and again.to_json() == m.to_json()


PARAM_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(lambda prompt, neg, pairs: "\n".join(
        [prompt, f"Negative prompt: {neg}", ", ".join(f"{k}: {v}" for k, v in pairs)]),
        st.text(max_size=30), st.text(max_size=20),
        st.lists(st.tuples(st.sampled_from(["Steps", "Sampler", "CFG scale", "Seed", "Size",
                                            "Model hash", "Model", "Denoising strength",
                                            "Mask blur", "Studio mode", "Lora", "Clip skip"]),
                           st.text(max_size=12)), max_size=8)))


@FUZZ
@given(PARAM_TEXT)
def test_png_generation_parameters(text: str) -> None:
    try:
        p = parse_parameters(text)
    except ValueError as exc:
        assert "generation parameters" in str(exc)
        p = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "my picture.png"
        info = PngImagePlugin.PngInfo()
        info.add_itxt("parameters", text)
        Image.new("RGB", (4, 4)).save(path, pnginfo=info)
        read = outcome(lambda: read_png_parameters(path), "my picture.png")
        assert (read is None) == (p is None or not text.strip())
        if p is not None and read is not None:
            assert isinstance(read, GenerationParams)
            # what the studio writes back reads back as the same parameters
            assert parse_parameters(format_parameters(read)).steps == read.steps


@FUZZ
@given(st.binary(max_size=300))
def test_png_parameters_of_damaged_files(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "my picture.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
        outcome(lambda: read_png_parameters(path), "my picture.png")
