"""Fuzzing the levels readers with Hypothesis: VGLC text with its legend (JSON or README
lines), Tiled maps, pins and regions. Whatever the input, the result is a level (or pins, or
params) or a :class:`UserError` naming the file; never a traceback.

Kept fast: a modest number of examples each, no deadline (CI machines are slow and shared).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.levels.engine import files, pins, tiled
from plugins.levels.engine import generate as gen
from plugins.levels.engine.level import Legend, Level
from plugins.levels.params import GenerateParams
from studio import params as params_mod
from studio.errors import UserError

T = TypeVar("T")
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

#: JSON values of every kind, small
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12)
TILE_CHARS = st.sampled_from(list("X-E?o#.\tÐé–Ж\x96\x00 \ufeff"))
PROPS = st.lists(st.sampled_from(["solid", "passable", "empty", "enemy", "hazard", "solidtop",
                                  "door", "climbable", "gold", "spawn", "start", "exit",
                                  "wall", "floor", "void", "diggable"]), max_size=3)


def outcome(fn: Callable[[], T], *names: str) -> T | None:
    """``fn()``'s result, or None when it raised a UserError that names one of ``names``."""
    try:
        return fn()
    except UserError as exc:
        msg = str(exc)
        assert msg and any(n in msg for n in names), msg
        return None


@st.composite
def legend_json(draw: st.DrawFn) -> bytes:
    """A legend file: a plausible one (maybe bent) or anything at all."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=80))
    if kind == 1:
        return json.dumps(draw(JSON)).encode()
    tiles = draw(st.dictionaries(st.text(min_size=0, max_size=2), PROPS | JSON, max_size=6))
    doc: dict[str, Any] = {"tiles": tiles}
    for key in ("name", "view", "direction", "physics", "colors"):
        if draw(st.booleans()):
            doc[key] = draw(JSON | st.sampled_from(["up", "right", "topdown", "#ff0000"]))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8")
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text


@st.composite
def level_text(draw: st.DrawFn) -> bytes:
    """A level file: rows of tile characters (maybe ragged, with a BOM, CRLF, odd encodings)
    or any bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=120))
    width = draw(st.integers(0, 8))
    rows = draw(st.lists(st.text(TILE_CHARS, min_size=width, max_size=width + draw(
        st.integers(0, 1))), max_size=8))
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(rows)
    enc = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    return text.encode(enc, errors="replace")


@given(level=level_text(), legend=legend_json(), readme=st.booleans())
@FUZZ
def test_vglc_levels_and_legends(level: bytes, legend: bytes, readme: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "level.txt").write_bytes(level)
        if readme:  # The Legend of Zelda's kind of legend: "C = NAME" lines
            (folder / "README.txt").write_bytes(legend[:60] + b"\nX = WALL\n- = FLOOR\n")
            names: tuple[str, ...] = ("level.txt", "README.txt")
        else:
            (folder / "game.json").write_bytes(legend)
            names = ("level.txt", "game.json")
        lv = outcome(lambda: files.load_level(folder / "level.txt"), *names)
        if lv is not None:
            assert lv.width >= 1 and lv.height >= 1 and not lv.unknown_chars()
            assert files.load_level(folder / "level.txt").lines() == lv.lines()  # deterministic
        found = outcome(lambda: files.load_folder(folder), *names, tmp)
        assert (found is None) == (lv is None)


@functools.cache
def _base_map() -> str:
    """A valid map as Tiled JSON text (written once: the tileset picture is not needed)."""
    lg = Legend.from_mapping({"X": ["solid", "ground"], "-": ["passable", "empty"],
                              "E": ["enemy"]}, "Mini")
    lv = Level.from_lines(["-E-", "XXX"], lg, "map")
    with tempfile.TemporaryDirectory() as tmp:
        tiled.write_tmj(lv, Path(tmp) / "map.tmj", path_cells=[(0, 0), (1, 0)])
        return (Path(tmp) / "map.tmj").read_text(encoding="utf-8")


def _target(doc: dict[str, Any], where: str) -> Any:
    """The part of ``doc`` an edit changes (None when earlier edits removed it)."""
    if where == "map":
        return doc
    key = "layers" if where == "layer" else "tilesets"
    items = doc.get(key)
    part = items[0] if isinstance(items, list) and items else None
    if where != "tile":
        return part
    tiles = part.get("tiles") if isinstance(part, dict) else None
    return tiles[0] if isinstance(tiles, list) and tiles else None


MAP_KEYS = ["width", "height", "layers", "tilesets", "infinite", "properties", "orientation",
            "type"]
LAYER_KEYS = ["data", "width", "height", "encoding", "compression", "type", "chunks", "visible",
              "layers", "name"]
TILESET_KEYS = ["firstgid", "tiles", "source", "image", "tilewidth", "tileheight", "margin"]


@st.composite
def map_edits(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """Changes to a valid map: (where, key, new value or None to delete)."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["map", "layer", "tileset", "tile"]))
        keys = {"map": MAP_KEYS, "layer": LAYER_KEYS, "tileset": TILESET_KEYS,
                "tile": ["id", "properties", "type"]}[where]
        value = draw(st.none() | JSON | st.integers(-5, 10**10)
                     | st.sampled_from(["base64", "zlib", "gzip", "zstd", "csv", "AAAA", "group",
                                        "tilelayer", "../x.tsj", "map.tsx"]))
        out.append((where, draw(st.sampled_from(keys)), value))
    return out


@given(edits=map_edits(), raw=st.one_of(st.none(), st.binary(max_size=60)))
@FUZZ
def test_tiled_maps(edits: list[tuple[str, str, Any]], raw: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        doc = json.loads(_base_map())
        for where, key, value in edits:
            target = _target(doc, where)
            if not isinstance(target, dict):
                continue
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        data = raw if raw is not None else json.dumps(doc).encode()
        (folder / "map.tmj").write_bytes(data)
        lv = outcome(lambda: files.load_level(folder / "map.tmj"), "map.tmj", "map.tsx",
                     "x.tsj", "map_tiles.png", "map.tsj")
        if lv is not None:
            assert lv.width >= 1 and lv.height >= 1


@given(text=st.text(st.sampled_from(list("0123456789,;-x X\"é \t")), max_size=30))
@FUZZ
def test_pins_written_out(text: str) -> None:
    got = outcome(lambda: pins.parse_pins(text), "pin")
    if got is not None:
        assert all(x >= 0 and y >= 0 for x, y in got)


@given(data=st.one_of(st.binary(max_size=60), JSON.map(lambda v: json.dumps(v).encode()),
                      st.lists(st.lists(JSON, max_size=4), max_size=4).map(
                          lambda v: json.dumps({"pins": v}).encode())))
@FUZZ
def test_pins_files(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "pins.json"
        p.write_bytes(data)
        outcome(lambda: pins.read_pins(p), "pins.json")


CAVE = Level.from_lines(["#######", "#.....#", "#.<.>.#", "#.....#", "#######"],
                        Legend.from_mapping({"#": ["solid", "wall"], ".": ["passable", "floor"],
                                             "<": ["passable", "start"],
                                             ">": ["passable", "exit"]}, "Cave"), "cave")


@given(region=st.one_of(st.text(st.sampled_from(list("0123456789,- x")), max_size=16),
                        st.lists(st.integers(-50, 50), max_size=5).map(
                            lambda v: ",".join(map(str, v)))))
@FUZZ
def test_regions(region: str) -> None:
    p = outcome(lambda: params_mod.prepare(GenerateParams, {
        "method": "caves", "base": CAVE, "region": region, "save": False}), "region")
    if p is None:
        return
    rect = p.region or (0, 0, CAVE.width, CAVE.height)  # as the generate job does
    lv = outcome(lambda: gen.regenerate(CAVE, p.settings(), rect, 0), "region")
    if lv is not None:
        assert lv.grid.shape == CAVE.grid.shape
