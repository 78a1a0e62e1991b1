"""One entry point for every classic generator, for whole maps and for a selected region.

``make(settings, ...)`` builds a level; ``regenerate(base, settings, rect, ...)`` rebuilds only
the rectangle ``rect`` of an existing level so that it still fits what surrounds it. The method is
the type of ``settings`` (:class:`WfcSettings`, :class:`DungeonSettings`, ...), which carries
exactly that method's options, typed:

* WFC pins every tile around the region (one pattern width deep) and solves only inside it, so
  the new tiles agree with the old ones at every overlap;
* caves re-run the automaton inside the region with the rest of the map as its boundary;
* the others generate a fresh map with the new seed and take the region from it; a top-down map
  keeps exactly one start and one exit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from studio.errors import UserError

from . import classic, wfc
from .level import Level
from .pins import Pins

METHODS = ("wfc", "dungeon", "caves", "terrain", "lsystem")
DEFAULT_SIZE = {"dungeon": (64, 64), "caves": (64, 64), "terrain": (96, 64),
                "lsystem": (64, 64)}


# ----------------------------------------------------------------------------------------------
# Each method's settings, typed. The values (and their defaults) come from the generate job's
# params; here they are only carried, so a setting is followed by name from widget to generator.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class WfcSettings:
    """Wave Function Collapse: pattern size N, pattern variants, row anchoring."""

    method: ClassVar[str] = "wfc"
    pattern: int
    symmetry: int
    anchor: str


@dataclass(frozen=True, kw_only=True)
class DungeonSettings:
    """BSP dungeon: room side limits and split depth."""

    method: ClassVar[str] = "dungeon"
    min_room: int
    max_room: int
    depth: int


@dataclass(frozen=True, kw_only=True)
class CaveSettings:
    """Cellular-automata caves: initial rock fraction and smoothing steps."""

    method: ClassVar[str] = "caves"
    fill: float
    steps: int


@dataclass(frozen=True, kw_only=True)
class TerrainSettings:
    """Noise terrain: feature size, octaves, sea level, island fall-off."""

    method: ClassVar[str] = "terrain"
    scale: float
    octaves: int
    sea_level: float
    island: bool


@dataclass(frozen=True, kw_only=True)
class LsystemSettings:
    """L-system: preset (trails or plants) and iterations (None: the preset's)."""

    method: ClassVar[str] = "lsystem"
    preset: str
    iterations: int | None


MethodSettings = WfcSettings | DungeonSettings | CaveSettings | TerrainSettings | LsystemSettings


def default_size(settings: MethodSettings, example: Level | None) -> tuple[int, int]:
    """The map size when width or height is 0 ("auto"): the example's for WFC, else the
    method's own."""
    if isinstance(settings, WfcSettings):
        if example is None:
            raise UserError("WFC learns from an example map: pass --example FILE")
        return example.width, example.height
    if isinstance(settings, LsystemSettings) and settings.preset == "plants":
        return (100, 16)
    return DEFAULT_SIZE[settings.method]


def _classic(settings: MethodSettings, width: int, height: int, seed: int) -> Level:
    """One of the numpy generators, called with its settings by name."""
    s = settings
    if isinstance(s, DungeonSettings):
        return classic.dungeon(width, height, seed, min_room=s.min_room, max_room=s.max_room,
                               depth=s.depth)
    if isinstance(s, CaveSettings):
        return classic.caves(width, height, seed, fill=s.fill, steps=s.steps)
    if isinstance(s, TerrainSettings):
        return classic.terrain(width, height, seed, scale=s.scale, octaves=s.octaves,
                               sea_level=s.sea_level, island=s.island)
    if isinstance(s, LsystemSettings):
        return classic.lsystem(width, height, seed, preset=s.preset, iterations=s.iterations)
    raise UserError(f"unknown generation method {type(s).__name__}")


def make(settings: MethodSettings, width: int, height: int, seed: int, *,
         example: Level | None = None, pins: Pins | None = None,
         check: Callable[[], None] | None = None,
         progress: Callable[[int, int], None] | None = None,
         stats: wfc.WfcStats | None = None) -> Level:
    """A new level made by ``settings``' method (0 for width or height: its default size)."""
    if not width or not height:
        dw, dh = default_size(settings, example)
        width, height = width or dw, height or dh
    if isinstance(settings, WfcSettings):
        if example is None:
            raise UserError("WFC learns from an example map: pass --example FILE")
        model = wfc.learn(example.grid, settings.pattern, settings.symmetry)
        grid = wfc.generate(model, width, height, seed, pins=pins, anchor=settings.anchor,
                            check=check, progress=progress, stats=stats)
        level = Level(grid, example.legend, f"wfc-{seed}")
    else:
        level = _classic(settings, width, height, seed)
        for (x, y), code in (pins or {}).items():
            if 0 <= x < level.width and 0 <= y < level.height:
                level.grid[y, x] = code
        level.name = f"{settings.method}-{seed}"
    level.meta.update({"method": settings.method, "seed": int(seed), "width": level.width,
                       "height": level.height,
                       **{k: v for k, v in asdict(settings).items()
                          if isinstance(v, int | float | str)}})
    if example is not None and isinstance(settings, WfcSettings):
        level.meta["example"] = example.meta.get("source", example.name)
    return level


def regenerate(base: Level, settings: MethodSettings, rect: tuple[int, int, int, int],
               seed: int, *, example: Level | None = None, pins: Pins | None = None,
               check: Callable[[], None] | None = None,
               warn: Callable[[str], None] | None = None) -> Level:
    """``base`` with only ``rect = (x0, y0, x1, y1)`` (x1, y1 exclusive) made anew."""
    x0, y0, x1, y1 = _clip(rect, base)
    out = base.copy()
    method = settings.method
    if isinstance(settings, WfcSettings):
        example = example or base  # without an example, the level teaches itself
        n = settings.pattern
        model = wfc.learn(example.grid, n, settings.symmetry)
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
    elif isinstance(settings, CaveSettings) and base.legend.name == "Cave":
        out.grid = classic.regrow_caves(base, (x0, y0, x1, y1), seed, fill=settings.fill,
                                        steps=settings.steps)
        _keep_one_start_exit(out, base)
    else:
        fresh = make(settings, base.width, base.height, seed, example=example, check=check)
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
