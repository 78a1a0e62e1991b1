"""Tiled maps (.tmj JSON, .tmx XML) and tilesets (.tsj, .tsx): write maps Tiled and game-engine
importers open, read maps Tiled wrote.

A map is built once (:func:`map_doc`, in the shape of Tiled's JSON format) and saved as JSON
(:func:`write_tmj`) or XML (:func:`write_tmx`, via :mod:`.tmx`): a ``tiles`` layer, the agent's
path when asked, a ``collision`` object layer (solid, one-way and hazard areas as rectangles) and
an ``objects`` layer (the player start, the exit, every enemy). Each tile carries ``solid``,
``hazard``, ``oneway`` and ``climbable`` flags.

Written maps are finite, orthogonal, right-down, tile data in CSV encoding (a JSON array of
global tile ids) with every key Tiled's JSON reader expects (``type``, ``version``,
``tiledversion``, ``orientation``, ``renderorder``, ``infinite``, ``nextlayerid``,
``nextobjectid``, ``compressionlevel``). The tileset is embedded or external (``{"firstgid": 1,
"source": "x.tsj"}``) and points at a PNG sheet written beside the map. Each tile carries its
VGLC character and properties as Tiled custom properties, and the whole legend rides along as a map
property, so a map read back is the same level.

Reading accepts what Tiled writes: embedded or external tilesets (.tsj/.json, and .tsx XML),
CSV or base64 data (uncompressed, zlib or gzip), infinite maps (chunks), group layers, and gids
with flip flags (the flags are dropped with a warning: a tile map of characters cannot flip).
"""

from __future__ import annotations

import base64
import json
import string
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from plugins.common.provenance import scrub
from studio.errors import UserError
from studio.storage import atomic_path, atomic_write_json, atomic_write_text

from .level import CLIMB_PROPS, Legend, Level, Tile
from .render import TilesetImage, colour_tiles, tileset_sheet
from .text import read_text

TILED_VERSION = "1.10.2"
FORMAT_VERSION = "1.10"
FLIP_MASK = 0xF0000000  # horizontal, vertical, diagonal, hexagonal-120 flags
_CHAR_POOL = (string.ascii_letters + string.digits + "#$%&*+-./:;<=>?@[]^_`{|}~!,()'\"")


# ----------------------------------------------------------------------------------------------
# Writing: one map document, two serialisers (JSON here, XML in :mod:`.tmx`)
# ----------------------------------------------------------------------------------------------
def _props(items: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
    return [{"name": n, "type": t, "value": v} for n, t, v in items]


def _hazard(t: Tile) -> bool:
    """Hurts or kills the player who walks in (lava, spikes, water); enemies are objects."""
    return not t.walkable and not t.solid and not t.has("enemy")


def tile_properties(t: Tile) -> list[dict[str, Any]]:
    """A tile's custom properties: its VGLC character, every legend property, and the flags a
    game engine reads (``solid``, ``hazard``, ``oneway``, ``climbable``), true or false."""
    items: dict[str, tuple[str, Any]] = {"char": ("string", t.char)}
    for p in t.props:
        items.setdefault(p, ("bool", True))
    for name, value in (("solid", t.solid), ("hazard", _hazard(t)), ("oneway", t.solidtop),
                        ("climbable", t.has(*CLIMB_PROPS))):
        items.setdefault(name, ("bool", value))
    return _props([(n, k, v) for n, (k, v) in items.items()])


def tileset_json(legend: Legend, image: str, tile: int, columns: int, sheet_w: int,
                 sheet_h: int, name: str, tile_h: int | None = None) -> dict[str, Any]:
    """The tileset in Tiled's JSON shape. Collisions live in the map's ``collision`` layer (a
    wall is one rectangle there), not as shapes on each tile: one place to edit them, and
    readers that gather every object group (pytmx) see no stray layers."""
    th = tile if tile_h is None else tile_h
    tiles = [{"id": i, "properties": tile_properties(t)}
             for i, t in enumerate(legend.tiles.values())]
    return {
        "columns": columns, "image": image, "imageheight": sheet_h, "imagewidth": sheet_w,
        "margin": 0, "name": name, "spacing": 0, "tilecount": len(legend),
        "tileheight": th, "tilewidth": tile, "tiles": tiles,
    }


def rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """``mask``'s cells as few ``(x, y, w, h)`` rectangles: runs along each row, stacked with
    the same run in the rows below (a wall is one collider, not one per tile)."""
    done: list[tuple[int, int, int, int]] = []
    open_: dict[tuple[int, int], tuple[int, int]] = {}  # (x0, x1) -> (y0, rows)
    for y in range(mask.shape[0] + 1):
        runs: set[tuple[int, int]] = set()
        if y < mask.shape[0]:
            row = np.concatenate([[False], mask[y], [False]]).astype(np.int8)
            edges = np.flatnonzero(np.diff(row))
            runs = {(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)}
        for run in [r for r in open_ if r not in runs]:
            y0, n = open_.pop(run)
            done.append((run[0], y0, run[1] - run[0], n))
        for run in runs:
            y0, n = open_.get(run, (y, 0))
            open_[run] = (y0, n + 1)
    return sorted(done, key=lambda r: (r[1], r[0]))


def _cells(level: Level, *props: str) -> list[tuple[int, int]]:
    mask = np.zeros(level.grid.shape, dtype=bool)
    for p in props:
        mask |= level.mask(p)
    return [(int(x), int(y)) for y, x in np.argwhere(mask)]


def route(level: Level, path_cells: list[tuple[int, int]] | None = None
          ) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Where the player starts and where the level ends: the start and exit tiles, else the
    playability agent's path (its first cell; for a platformer, its last when it gets
    through)."""
    starts, exits = _cells(level, "start", "spawn"), _cells(level, "exit", "goal")
    start = starts[0] if starts else None
    end = exits[0] if exits else None
    platformer = level.legend.guess_view() == "platformer"
    if start is None or (end is None and platformer):
        from .agents import check

        res = check(level)
        cells = res.path or list(path_cells or [])
        if start is None and cells:
            start = cells[0]
        if end is None and platformer and res.playable and cells:
            end = cells[-1]  # a platformer ends where the player leaves the last column
    return start, end


#: what the collision layers hold, in order: (kind, which tiles)
COLLISION_KINDS: tuple[tuple[str, Callable[[Tile], bool]], ...] = (
    ("solid", lambda t: t.solid), ("oneway", lambda t: t.solidtop), ("hazard", _hazard))


def kind_mask(level: Level, which: Callable[[Tile], bool]) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    for c, t in level.legend.tiles.items():
        table[ord(c)] = which(t)
    return table[level.grid]


def things(level: Level, path_cells: list[tuple[int, int]] | None = None
           ) -> list[tuple[str, str, int, int, str]]:
    """The level's objects as ``(kind, name, x, y, char)`` cells: the player start, the exit
    and every enemy (kinds ``start``, ``exit``, ``enemy``); Tiled and LDtk exports share them."""
    out = []
    start, end = route(level, path_cells)
    if start is not None:
        out.append(("start", "player start", start[0], start[1],
                    chr(int(level.grid[start[1], start[0]]))))
    if end is not None:
        out.append(("exit", "exit", end[0], end[1], chr(int(level.grid[end[1], end[0]]))))
    for x, y in _cells(level, "enemy"):
        t = level.legend[chr(int(level.grid[y, x]))]
        out.append(("enemy", t.name, x, y, t.char))
    return out


def map_doc(level: Level, tileset_ref: dict[str, Any], tw: int, th: int,
            path_cells: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """The map, once, in Tiled's JSON shape: the tile layer, the agent's path (when given), a
    ``collision`` object layer (solid, one-way and hazard areas as rectangles) and an
    ``objects`` layer (player start, exit, enemies). :func:`write_tmj` saves it as JSON,
    :func:`write_tmx` as XML."""
    gids = (level.indices() + 1).astype(np.int64)
    layers: list[dict[str, Any]] = [{
        "data": gids.ravel().tolist(), "height": level.height, "id": 1, "name": "tiles",
        "opacity": 1, "type": "tilelayer", "visible": True, "width": level.width, "x": 0, "y": 0,
    }]
    next_object = 1

    def obj(name: str, kind: str, x: float, y: float, w: float = 0, h: float = 0,
            **extra: Any) -> dict[str, Any]:
        nonlocal next_object
        next_object += 1
        return {"id": next_object - 1, "name": name, "type": kind, "rotation": 0,
                "visible": True, "x": x, "y": y, "width": w, "height": h, **extra}

    def group(name: str, objects: list[dict[str, Any]]) -> None:
        layers.append({"draworder": "topdown", "id": len(layers) + 1, "name": name,
                       "opacity": 1, "type": "objectgroup", "visible": True, "x": 0, "y": 0,
                       "objects": objects})

    if path_cells:
        points = [{"x": (x + 0.5) * tw, "y": (y + 0.5) * th} for x, y in path_cells]
        x0, y0 = points[0]["x"], points[0]["y"]
        group("agent path", [obj("agent path", "", x0, y0, polyline=[
            {"x": p["x"] - x0, "y": p["y"] - y0} for p in points])])
    lg = level.legend
    areas = []
    for kind, which in COLLISION_KINDS:
        areas += [obj(kind, kind, x * tw, y * th, w * tw, h * th)
                  for x, y, w, h in rectangles(kind_mask(level, which))]
    group("collision", areas)
    group("objects", [obj(name, kind, x * tw, y * th, tw, th,
                          properties=_props([("char", "string", char)]))
                      for kind, name, x, y, char in things(level, path_cells)])
    # the files a level was read from or learnt from are named, never their folders
    meta = scrub({k: v for k, v in level.meta.items() if isinstance(v, str | int | float | bool)})
    return {
        "compressionlevel": -1, "height": level.height, "infinite": False, "layers": layers,
        "nextlayerid": len(layers) + 1, "nextobjectid": next_object,
        "orientation": "orthogonal",
        "properties": _props([("legend", "string", json.dumps(lg.to_json())),
                              ("generator", "string", json.dumps(meta))]),
        "renderorder": "right-down", "tiledversion": TILED_VERSION, "tileheight": th,
        "tilesets": [tileset_ref], "tilewidth": tw, "type": "map", "version": FORMAT_VERSION,
        "width": level.width,
    }


def write_tmj(level: Level, path: str | Path, *, tile: int = 16, external_tileset: bool = False,
              tiles: np.ndarray | None = None, path_cells: list[tuple[int, int]] | None = None
              ) -> list[Path]:
    """Write ``level`` as a Tiled JSON map; returns every file written (map, sheet, maybe .tsj).

    Args:
        tile: tile size in pixels for the generated colour sheet.
        external_tileset: write the tileset to ``<name>.tsj`` and reference it (shared tilesets).
        tiles: legend-ordered tile pixels (an imported tileset image) instead of colour tiles.
        path_cells: the agent's path, stored as a polyline in an object layer named "agent path".
    """
    return _write(level, Path(path), "tmj", tile, external_tileset, tiles, path_cells)


def write_tmx(level: Level, path: str | Path, *, tile: int = 16, external_tileset: bool = False,
              tiles: np.ndarray | None = None, path_cells: list[tuple[int, int]] | None = None
              ) -> list[Path]:
    """Write ``level`` as a Tiled XML map (.tmx, what SuperTiled2Unity imports): the same map
    as :func:`write_tmj`, with an external tileset as ``<name>.tsx``."""
    return _write(level, Path(path), "tmx", tile, external_tileset, tiles, path_cells)


def _write(level: Level, path: Path, fmt: str, tile: int, external_tileset: bool,
           tiles: np.ndarray | None, path_cells: list[tuple[int, int]] | None) -> list[Path]:
    from . import tmx

    legend = level.legend
    if tiles is None:
        tiles = colour_tiles(legend, tile)
    th, tw = int(tiles.shape[1]), int(tiles.shape[2])
    columns = min(len(legend), 8)
    sheet = tileset_sheet(tiles, columns)
    sheet_path = path.with_name(f"{path.stem}_tiles.png")
    from PIL import Image

    with atomic_path(sheet_path, suffix=".png") as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    written = [path, sheet_path]
    ts = tileset_json(legend, sheet_path.name, tw, columns, sheet.shape[1], sheet.shape[0],
                      legend.name or "tiles", th)
    if external_tileset:
        ts_path = path.with_name(f"{path.stem}.{'tsj' if fmt == 'tmj' else 'tsx'}")
        if fmt == "tmj":
            atomic_write_json(ts_path, {"type": "tileset", "version": FORMAT_VERSION,
                                        "tiledversion": TILED_VERSION, **ts})
        else:
            atomic_write_text(ts_path, tmx.tileset_xml(ts, FORMAT_VERSION, TILED_VERSION))
        written.append(ts_path)
        tileset_ref: dict[str, Any] = {"firstgid": 1, "source": ts_path.name}
    else:
        tileset_ref = {"firstgid": 1, **ts}
    doc = map_doc(level, tileset_ref, tw, th, path_cells)
    if fmt == "tmj":
        atomic_write_json(path, doc, indent=1)
    else:
        atomic_write_text(path, tmx.map_xml(doc))
    return written


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
def _load_json(path: Path, what: str) -> dict[str, Any]:
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path.name} is not valid JSON ({exc.msg}, line {exc.lineno})"
                        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path.name} is not a JSON object")
    return data


def _read_tsx(path: Path) -> dict[str, Any]:
    """A TSX (XML) tileset in Tiled's JSON shape."""
    from . import tmx

    root = tmx.parse(path, "external tileset")
    if root.tag != "tileset":
        raise UserError(f"{path.name} is not a Tiled tileset (its root is <{root.tag}>)")
    return tmx.tileset(root)


def _decode_data(data: Any, encoding: str | None, compression: str | None, count: int,
                 where: str) -> np.ndarray:
    if isinstance(data, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32
                   for v in data):
            raise UserError(f"{where}: tile data must be a list of tile ids (whole numbers)")
        arr = np.asarray(data, dtype=np.int64)
    elif isinstance(data, str):
        if (encoding or "csv") == "csv":
            try:
                arr = np.asarray([int(v) for v in data.replace("\n", "").split(",") if v.strip()],
                                 dtype=np.int64)
                if arr.size and (arr.min() < 0 or arr.max() >= 2**32):
                    raise ValueError("tile id out of range")
            except (ValueError, OverflowError):
                raise UserError(f"{where}: CSV tile data holds something that is not a number"
                                ) from None
        else:
            try:
                raw = base64.b64decode(data)
                limit = count * 4 + 4  # never inflate more than the layer can hold
                if compression == "zlib":
                    raw = zlib.decompressobj().decompress(raw, limit)
                elif compression == "gzip":
                    raw = zlib.decompressobj(31).decompress(raw, limit)
                elif compression == "zstd":
                    raise UserError(f"{where} uses zstd compression, which this studio cannot "
                                    "read: in Tiled set Map Properties > Tile Layer Format to "
                                    "CSV or Base64 (zlib) and save again")
                elif compression:
                    raise UserError(f"{where}: unknown compression {compression!r}")
            except (ValueError, zlib.error, OSError) as exc:
                raise UserError(f"{where}: corrupt base64 tile data ({exc})") from None
            if len(raw) % 4:
                raise UserError(f"{where}: base64 tile data is not a whole number of tiles")
            arr = np.asarray(struct.unpack(f"<{len(raw) // 4}I", raw), dtype=np.int64)
    else:
        raise UserError(f"{where}: tile layer has no data")
    if arr.size != count:
        raise UserError(f"{where}: tile data has {arr.size} tiles but the layer is {count}")
    return arr


def _tile_layers(layers: list[Any], warn: Callable[[str], None]) -> list[dict[str, Any]]:
    out = []
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        if layer.get("type") == "group":
            out += _tile_layers(layer.get("layers", []), warn)
        elif layer.get("type") == "tilelayer" and layer.get("visible", True):
            out.append(layer)
    return out


MAX_TILES = 4_000_000  # 2000 x 2000: far beyond any game level, and safe to hold in memory


def _whole(value: Any, what: str, where: str, lo: int = 0) -> int:
    """``value`` as a whole number of at least ``lo``, or a :class:`UserError` saying where."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or int(value) < lo:
        raise UserError(f"{where}: {what} must be a whole number of at least {lo}, not "
                        f"{value!r}")
    return int(value)


def _check_size(width: int, height: int, where: str) -> None:
    if width * height > MAX_TILES:
        raise UserError(f"{where} is {width:,}x{height:,} tiles; the studio opens maps of up "
                        f"to {MAX_TILES:,} tiles")


def read_tmj(path: str | Path, legend: Legend | None = None,
             warn: Callable[[str], None] | None = None) -> Level:
    """Read a Tiled map (JSON .tmj/.json, or XML .tmx) into a :class:`Level`.

    Tiles are identified by their ``char`` custom property (written by :func:`write_tmj`); other
    tiles get fresh characters and take their boolean custom properties (and their Tiled class)
    as legend properties. With several visible tile layers, the upper layer's non-empty tiles win.

    Sizes and tile data are checked as they are read (a map too big to hold is refused before
    anything is allocated); any other part of the file that is not what Tiled writes (a list
    where an object belongs, a word where a number does) is a :class:`UserError` naming the file
    and what was wrong, never a traceback.
    """
    path = Path(path).expanduser()
    try:
        return _read_tmj(path, legend, warn or (lambda s: None))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        what = f"no {exc.args[0]!r} where one is needed" if isinstance(exc, KeyError) else \
            f"{type(exc).__name__.replace('Error', '').lower() or 'value'} problem: {exc}"
        raise UserError(f"{path.name} is not a Tiled map this studio can read ({what}); save it "
                        "from Tiled again") from None


def _read_tmj(path: Path, legend: Legend | None, warn: Callable[[str], None]) -> Level:
    if path.suffix.lower() == ".tmx":
        from . import tmx

        doc = tmx.read_map(path)
    else:
        doc = _load_json(path, "Tiled map")
    if doc.get("type", "map") != "map":
        raise UserError(f"{path.name} is a Tiled {doc.get('type')!r} file, not a map")
    for key in ("width", "height", "layers", "tilesets"):
        if key not in doc:
            raise UserError(f"{path.name} is not a Tiled map (no {key!r} key)")
    if doc.get("orientation", "orthogonal") != "orthogonal":
        warn(f"{path.name} is {doc['orientation']}; its tiles are read as an orthogonal grid")
    if not isinstance(doc["layers"], list) or not isinstance(doc["tilesets"], list):
        raise UserError(f"{path.name}: \"layers\" and \"tilesets\" must be lists")
    layers = _tile_layers(doc["layers"], warn)
    if not layers:
        raise UserError(f"{path.name} has no visible tile layer")
    # grid bounds (infinite maps store chunks with their own coordinates)
    if doc.get("infinite"):
        xs, ys, xe, ye = [], [], [], []
        for layer in layers:
            for ch in layer.get("chunks", []):
                where = f"{path.name}: a chunk"
                cx, cy = (_whole(ch[k], k, where, -2**31) for k in ("x", "y"))
                cw, chh = (_whole(ch[k], k, where) for k in ("width", "height"))
                _check_size(cw, chh, where)
                xs.append(cx)
                ys.append(cy)
                xe.append(cx + cw)
                ye.append(cy + chh)
        if not xs:
            raise UserError(f"{path.name} is an infinite map with no tiles")
        ox, oy, width, height = min(xs), min(ys), max(xe) - min(xs), max(ye) - min(ys)
    else:
        ox, oy = 0, 0
        width = _whole(doc["width"], "width", path.name)
        height = _whole(doc["height"], "height", path.name)
    if width <= 0 or height <= 0:
        raise UserError(f"{path.name} has no tiles ({width}x{height})")
    _check_size(width, height, path.name)
    gids = np.zeros((height, width), dtype=np.int64)
    for n, layer in enumerate(layers):
        where = f"{path.name} layer {layer.get('name', n)!r}"
        enc, comp = layer.get("encoding"), layer.get("compression")
        if doc.get("infinite"):
            for ch in layer.get("chunks", []):
                arr = _decode_data(ch.get("data"), enc, comp, ch["width"] * ch["height"], where)
                arr = arr.reshape(ch["height"], ch["width"])
                y0, x0 = ch["y"] - oy, ch["x"] - ox
                view = gids[y0:y0 + ch["height"], x0:x0 + ch["width"]]
                np.copyto(view, arr, where=arr != 0)
        else:
            lw = _whole(layer.get("width", width), "width", where)
            lh = _whole(layer.get("height", height), "height", where)
            _check_size(lw, lh, where)
            arr = _decode_data(layer.get("data"), enc, comp, lw * lh, where).reshape(lh, lw)
            h, w = min(lh, height), min(lw, width)
            np.copyto(gids[:h, :w], arr[:h, :w], where=arr[:h, :w] != 0)
    if len(layers) > 1:
        warn(f"{path.name} has {len(layers)} tile layers; they were flattened (upper tiles win)")
    if (gids & FLIP_MASK).any():
        warn(f"{path.name} has flipped or rotated tiles; flips are ignored")
    gids &= ~FLIP_MASK & 0xFFFFFFFF

    # tilesets: gid -> (tileset dict, local id)
    tilesets = []
    for ts in doc["tilesets"]:
        first = int(ts.get("firstgid", 1))
        if "source" in ts:
            src = (path.parent / ts["source"]).resolve()
            try:
                data = _read_tsx(src) if src.suffix.lower() == ".tsx" else _load_json(
                    src, "external tileset")
            except UserError as exc:
                raise UserError(f"{path.name} uses the tileset {src.name}: {exc}") from None
            data = {**data, "_dir": str(src.parent)}
        else:
            data = {**ts, "_dir": str(path.parent)}
        tilesets.append((first, data))
    tilesets.sort(key=lambda t: t[0])

    stored = _map_property(doc, "legend")
    base = None
    if stored:
        try:
            from .vglc import legend_from_json

            base = legend_from_json(json.loads(stored), path.name)
        except (ValueError, UserError):
            warn(f"{path.name}: its stored legend is unreadable; rebuilt from tile properties")
    if legend is not None:
        base = legend if base is None else legend.merged(base)

    uniq, inverse = np.unique(gids, return_inverse=True)
    used = [int(g) for g in uniq]
    char_of: dict[int, str] = {}
    tiles_out: dict[str, Tile] = dict(base.tiles) if base else {}
    taken = set(tiles_out)
    pool = (c for c in _CHAR_POOL if c not in taken)
    order: dict[str, int] = {}
    image_info: tuple[Path, int, int, int, int] | None = None
    for gid in used:
        if gid == 0:
            continue
        first, ts = next(((f, t) for f, t in reversed(tilesets) if f <= gid), (None, None))
        if ts is None:
            raise UserError(f"{path.name} uses tile id {gid}, which no tileset covers")
        local = gid - first
        tile = next((t for t in ts.get("tiles", []) if int(t.get("id", -1)) == local), {})
        props_list = tile.get("properties") or []
        if isinstance(props_list, dict):  # Tiled < 1.2 wrote properties as an object
            props_list = [{"name": k, "value": v} for k, v in props_list.items()]
        char = next((str(p.get("value")) for p in props_list if p.get("name") == "char"
                     and isinstance(p.get("value"), str) and len(p.get("value")) == 1), None)
        if char is None:
            char = next(pool, None)
            if char is None:
                raise UserError(f"{path.name} uses more distinct tiles than this studio can "
                                "name with single characters")
        char_of[gid] = char
        if char not in tiles_out:
            props = [str(p["name"]).lower() for p in props_list
                     if p.get("name") != "char" and p.get("value") is True]
            cls = tile.get("type") or tile.get("class")
            if cls:
                props.insert(0, str(cls).lower())
            tiles_out[char] = Tile(char, tuple(props) if props else ("passable",))
        if image_info is None and ts.get("image"):
            image_info = (Path(ts["_dir"]) / ts["image"], int(ts.get("tilewidth", 16)),
                          int(ts.get("tileheight", 16)), int(ts.get("margin", 0)),
                          int(ts.get("spacing", 0)))
        if ts.get("image") and image_info and Path(ts["_dir"]) / ts["image"] == image_info[0]:
            order[char] = local
    if 0 in used:  # an empty cell in Tiled: the legend's empty tile (or a new "void" one)
        empty = Legend(tiles_out.values()).empty if tiles_out and any(
            t.walkable for t in tiles_out.values()) else None
        if empty is None:
            empty = next(pool, "~")
            tiles_out[empty] = Tile(empty, ("passable", "empty"))
        char_of[0] = empty
    name = (base.name if base else "") or path.stem
    view = base.view if base else ""
    new_legend = Legend(tiles_out.values(), name, view)
    codes = np.array([ord(char_of[g]) for g in used], dtype=np.uint8)  # by tile, not by id
    level = Level(codes[inverse.reshape(gids.shape)], new_legend, path.stem)
    meta = _map_property(doc, "generator")
    if meta:
        try:
            found = json.loads(meta)
        except ValueError:
            found = None
        if isinstance(found, dict):
            level.meta.update(found)
        else:
            warn(f"{path.name}: its generator settings are unreadable; the level opens without "
                 "them")
    level.meta["source"] = str(path)
    if image_info is not None and image_info[0].exists() and not stored:
        level.meta["tileset_image"] = TilesetImage(image_info[0], image_info[1], image_info[2],
                                                   image_info[3], image_info[4], order)
    return level


def _map_property(doc: dict[str, Any], name: str) -> str | None:
    props = doc.get("properties") or []
    if isinstance(props, dict):
        v = props.get(name)
        return v if isinstance(v, str) else None
    for p in props:
        if isinstance(p, dict) and p.get("name") == name and isinstance(p.get("value"), str):
            return p["value"]
    return None
