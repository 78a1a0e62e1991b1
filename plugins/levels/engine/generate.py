"""One entry point for every classic generator, for whole maps and for a selected region.

``make(method, ...)`` builds a level; ``regenerate(base, method, rect, ...)`` rebuilds only the
rectangle ``rect`` of an existing level so that it still fits what surrounds it:

* WFC pins every tile around the region (one pattern width deep) and solves only inside it, so
  the new tiles agree with the old ones at every overlap;
* caves re-run the automaton inside the region with the rest of the map as its boundary;
* the others generate a fresh map with the new seed and take the region from it; a top-down map
  keeps exactly one start and one exit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from studio.errors import UserError

from . import classic, wfc
from .level import Level

METHODS = ("wfc", "dungeon", "caves", "terrain", "lsystem")
DEFAULT_SIZE = {"dungeon": (64, 64), "caves": (64, 64), "terrain": (96, 64),
                "lsystem": (64, 64)}
_FUNCS: dict[str, Callable[..., Level]] = {
    "dungeon": classic.dungeon, "caves": classic.caves, "terrain": classic.terrain,
    "lsystem": classic.lsystem,
}


def _accepts(fn: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    names = set(inspect.signature(fn).parameters)
    return {k: v for k, v in params.items() if k in names and v is not None}


def default_size(method: str, example: Level | None, params: dict[str, Any]) -> tuple[int, int]:
    if method == "wfc":
        if example is None:
            raise UserError("WFC learns from an example map: pass --example FILE")
        return example.width, example.height
    if method == "lsystem" and params.get("preset") == "plants":
        return (100, 16)
    return DEFAULT_SIZE[method]


def make(method: str, width: int, height: int, seed: int, *, example: Level | None = None,
         params: dict[str, Any] | None = None, pins: dict[tuple[int, int], int] | None = None,
         check: Callable[[], None] | None = None,
         progress: Callable[[int, int], None] | None = None,
         stats: wfc.WfcStats | None = None) -> Level:
    """A new level. ``params`` may hold any generator's options; each takes what it knows."""
    params = dict(params or {})
    if method not in METHODS:
        raise UserError(f"unknown method {method!r} (choose {', '.join(METHODS)})")
    if not width or not height:
        dw, dh = default_size(method, example, params)
        width, height = width or dw, height or dh
    if method == "wfc":
        if example is None:
            raise UserError("WFC learns from an example map: pass --example FILE")
        model = wfc.learn(example.grid, int(params.get("pattern", 3)),
                          int(params.get("symmetry", 1)))
        grid = wfc.generate(model, width, height, seed, pins=pins,
                            anchor=str(params.get("anchor", "auto")), check=check,
                            progress=progress, stats=stats)
        level = Level(grid, example.legend, f"wfc-{seed}")
    else:
        level = _FUNCS[method](width, height, seed, **_accepts(_FUNCS[method], params))
        if pins:
            for (x, y), code in pins.items():
                if 0 <= x < level.width and 0 <= y < level.height:
                    level.grid[y, x] = code
        level.name = f"{method}-{seed}"
    used = ({k: params[k] for k in ("pattern", "symmetry", "anchor") if k in params}
            if method == "wfc" else _accepts(_FUNCS[method], params))
    level.meta.update({"method": method, "seed": int(seed), "width": level.width,
                       "height": level.height,
                       **{k: v for k, v in used.items() if isinstance(v, int | float | str)}})
    if example is not None and method == "wfc":
        level.meta["example"] = example.meta.get("source", example.name)
    return level


def regenerate(base: Level, method: str, rect: tuple[int, int, int, int], seed: int, *,
               example: Level | None = None, params: dict[str, Any] | None = None,
               pins: dict[tuple[int, int], int] | None = None,
               check: Callable[[], None] | None = None,
               warn: Callable[[str], None] | None = None) -> Level:
    """``base`` with only ``rect = (x0, y0, x1, y1)`` (x1, y1 exclusive) made anew."""
    params = dict(params or {})
    x0, y0, x1, y1 = _clip(rect, base)
    out = base.copy()
    if method == "wfc":
        example = example or base  # without an example, the level teaches itself
        n = int(params.get("pattern", 3))
        model = wfc.learn(example.grid, n, int(params.get("symmetry", 1)))
        wx0, wy0 = max(0, x0 - n + 1), max(0, y0 - n + 1)
        wx1, wy1 = min(base.width, x1 + n - 1), min(base.height, y1 + n - 1)
        if wx1 - wx0 < n or wy1 - wy0 < n:
            raise UserError(f"the region is too small for {n}x{n} WFC patterns")
        ring: dict[tuple[int, int], int] = {}
        for y in range(wy0, wy1):
            for x in range(wx0, wx1):
                if not (x0 <= x < x1 and y0 <= y < y1):
                    ring[(x - wx0, y - wy0)] = int(base.grid[y, x])
        for (x, y), code in (pins or {}).items():
            if x0 <= x < x1 and y0 <= y < y1:
                ring[(x - wx0, y - wy0)] = int(code)
        full_height = wy0 == 0 and wy1 == base.height and example.height == base.height
        anchor = "rows" if full_height else "none"
        try:
            grid = wfc.generate(model, wx1 - wx0, wy1 - wy0, seed, pins=ring, anchor=anchor,
                                check=check)
        except wfc.WfcError:
            if warn:
                warn("the tiles around the region are not patterns of the example, so the new "
                     "region could not be matched to them; it was generated on its own")
            inner = {k: v for k, v in ring.items()
                     if x0 <= k[0] + wx0 < x1 and y0 <= k[1] + wy0 < y1}
            grid = wfc.generate(model, wx1 - wx0, wy1 - wy0, seed, pins=inner, anchor=anchor,
                                check=check)
        out.grid[y0:y1, x0:x1] = grid[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
    elif method == "caves" and base.legend.name == "Cave":
        out.grid = classic.regrow_caves(base, (x0, y0, x1, y1), seed,
                                        **_accepts(classic.regrow_caves, params))
        _keep_one_start_exit(out, base)
    else:
        fresh = make(method, base.width, base.height, seed, example=example, params=params,
                     check=check)
        if fresh.legend != base.legend:
            raise UserError(f"a {method} map uses other tiles than this level ({base.legend.name}"
                            "): pick the method that made it, or WFC, to regenerate a region")
        out.grid[y0:y1, x0:x1] = fresh.grid[y0:y1, x0:x1]
        _keep_one_start_exit(out, base)
    if pins:
        for (x, y), code in pins.items():
            if x0 <= x < x1 and y0 <= y < y1:
                out.grid[y, x] = code
    out.meta.update({"regenerated": [x0, y0, x1, y1], "region_seed": int(seed),
                     "region_method": method})
    return out


def _clip(rect: tuple[int, int, int, int], level: Level) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(v) for v in rect)
    x0, x1 = sorted((max(0, min(level.width, x0)), max(0, min(level.width, x1))))
    y0, y1 = sorted((max(0, min(level.height, y0)), max(0, min(level.height, y1))))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise UserError("the region to regenerate is empty: select at least one tile")
    return x0, y0, x1, y1


def _keep_one_start_exit(out: Level, base: Level) -> None:
    """After pasting, exactly the base's start and exit remain (a pasted copy is cleared, a lost
    one is put back)."""
    lg = out.legend
    for prop in ("start", "exit"):
        ch = lg.first(prop)
        if ch is None:
            continue
        code = ord(ch)
        old = np.argwhere(base.grid == code)
        out.grid[out.grid == code] = ord(lg.empty)
        for y, x in old[:1]:
            out.grid[y, x] = code


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """``"x0,y0,x1,y1"`` (corners, the second exclusive) into a tuple."""
    if not text:
        return None
    try:
        vals = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise UserError(f"--region must be four whole numbers x0,y0,x1,y1, not {text!r}"
                        ) from None
    if len(vals) != 4:
        raise UserError(f"--region must be x0,y0,x1,y1, not {text!r}")
    return vals  # type: ignore[return-value]


def parse_pins(text: str | None) -> dict[tuple[int, int], int]:
    """Pins as ``"x,y,C;x,y,C"`` or a JSON file ``{"pins": [[x, y, "C"], ...]}``."""
    if not text:
        return {}
    import json
    from pathlib import Path

    p = Path(text).expanduser()
    items: list[Any]
    if p.suffix.lower() == ".json" or p.exists():
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"pins file {p} does not exist") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"pins file {p.name} is not JSON ({exc})") from None
        items = data.get("pins", []) if isinstance(data, dict) else data
    else:
        items = []
        for part in text.split(";"):
            if not part.strip():
                continue
            a, b, c = part.split(",", 2) if part.count(",") >= 2 else (None, None, None)
            if a is None:
                raise UserError(f"pin {part!r} must look like x,y,C")
            items.append([a, b, c])
    out: dict[tuple[int, int], int] = {}
    for item in items:
        try:
            x, y, c = int(item[0]), int(item[1]), str(item[2])
        except (TypeError, ValueError, IndexError):
            raise UserError(f"pin {item!r} must be [x, y, \"C\"]") from None
        if len(c) != 1:
            raise UserError(f"pin tile {c!r} must be one character")
        out[(x, y)] = ord(c)
    return out
