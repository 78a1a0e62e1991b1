"""Tile maps and their legends: the one representation every generator, check and format shares.

A level is a ``(H, W)`` ``uint8`` array of character codes (the VGLC way of writing levels) plus a
:class:`Legend` that says what each character *is* ("solid", "enemy", "passable", ...). Keeping
characters rather than indices makes VGLC text a lossless view of the grid, lets levels of
different games live side by side, and lets every check work from properties rather than from
one game's hard-coded letters.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.errors import UserError

#: properties that make a tile block movement
SOLID_PROPS = frozenset({"solid", "wall", "block"})
#: properties that hurt a player who walks into them (enemies are stompable, see ``walkable``)
HAZARD_PROPS = frozenset({"hazard", "damaging", "lava", "water", "element", "spike", "void"})
CLIMB_PROPS = frozenset({"climbable", "ladder", "rope"})
#: platforms solid only from above: stood on, jumped up through (VGLC's "solidtop")
SOLIDTOP_PROPS = frozenset({"solidtop", "semisolid", "oneway", "one-way"})
VIEWS = ("platformer", "ladder", "topdown")
#: which way a platformer is played: left to right, or climbing from the bottom to the top
DIRECTIONS = ("right", "up")
#: properties that say a game is seen from above / from the side (see ``Legend.guess_view``)
_TOPDOWN_HINTS = ("wall", "floor")
_SIDE_HINTS = ("ground", "empty", "sky", "pipe", "platform", *SOLIDTOP_PROPS)


@dataclass(frozen=True)
class Tile:
    """One legend entry: its character, its properties (lower case) and a display colour."""

    char: str
    props: tuple[str, ...]
    color: tuple[int, int, int] | None = None

    @property
    def name(self) -> str:
        """The most telling property ("ground" rather than "solid")."""
        generic = {"solid", "passable", "hazard", "damaging", "moving", "solidtop", "openable"}
        for p in self.props:
            if p not in generic:
                return p
        return self.props[0] if self.props else self.char

    def has(self, *props: str) -> bool:
        return any(p in self.props for p in props)

    @property
    def solid(self) -> bool:
        """Blocks movement from every side (a solid-top platform does not: see ``solidtop``)."""
        return self.has(*SOLID_PROPS) and not self.has("passable") and not self.solidtop

    @property
    def solidtop(self) -> bool:
        """A platform solid only from above: the player stands on it and jumps up through it."""
        return self.has(*SOLIDTOP_PROPS)

    @property
    def walkable(self) -> bool:
        """A player may occupy this cell: not solid, and not a hazard unless it is an enemy (a
        player stomps or dodges enemies; lava and water are off limits)."""
        if self.solid:
            return False
        return not (self.has(*HAZARD_PROPS) and not self.has("enemy"))


class Legend:
    """An ordered mapping from tile characters to :class:`Tile`.

    The order is the channel order of the learned models and the tile order of exported tilesets,
    so it is kept exactly as read.
    """

    def __init__(self, tiles: Iterable[Tile], name: str = "", view: str = "",
                 direction: str = "", physics: Mapping[str, Any] | None = None) -> None:
        self.tiles: dict[str, Tile] = {}
        for t in tiles:
            if len(t.char) != 1 or ord(t.char) > 255:
                raise UserError(f"legend tile {t.char!r} must be a single Latin-1 character")
            self.tiles[t.char] = t
        if not self.tiles:
            raise UserError("the legend has no tiles")
        self.name = name
        self.view = view if view in VIEWS else ""
        #: "right", "up" or "" (not said: detected from the levels' shape)
        self.direction = direction if direction in DIRECTIONS else ""
        #: the game's movement limits when the legend states them (``{"jump": 5, ...}``)
        self.physics: dict[str, Any] = dict(physics or {})

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, tiles: Mapping[str, Iterable[str]], name: str = "", view: str = "",
                     colors: Mapping[str, Any] | None = None, direction: str = "",
                     physics: Mapping[str, Any] | None = None) -> Legend:
        out = []
        for char, props in tiles.items():
            if isinstance(props, str):
                props = [props]
            col = (colors or {}).get(char)
            out.append(Tile(str(char), tuple(str(p).strip().lower() for p in props),
                            _parse_color(col) if col is not None else None))
        return cls(out, name, view, direction, physics)

    def to_json(self) -> dict[str, Any]:
        """VGLC-compatible (``{"tiles": {char: [props]}}``) plus our optional keys."""
        data: dict[str, Any] = {"tiles": {c: list(t.props) for c, t in self.tiles.items()}}
        if self.name:
            data["name"] = self.name
        if self.view:
            data["view"] = self.view
        if self.direction:
            data["direction"] = self.direction
        if self.physics:
            data["physics"] = dict(self.physics)
        data["colors"] = {c: "#{:02x}{:02x}{:02x}".format(*self.color(c)) for c in self.tiles}
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def merged(self, other: Legend) -> Legend:
        """This legend plus the tiles of ``other`` it lacks (levels of one game may each use a
        subset)."""
        tiles = list(self.tiles.values()) + [t for c, t in other.tiles.items()
                                             if c not in self.tiles]
        return Legend(tiles, self.name or other.name, self.view or other.view,
                      self.direction or other.direction, self.physics or other.physics)

    def with_tile(self, tile: Tile) -> Legend:
        tiles = dict(self.tiles)
        tiles[tile.char] = tile
        return Legend(tiles.values(), self.name, self.view, self.direction, self.physics)

    # -- queries --------------------------------------------------------------------------------
    @property
    def chars(self) -> list[str]:
        return list(self.tiles)

    def __contains__(self, char: object) -> bool:
        return char in self.tiles

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, char: str) -> Tile:
        return self.tiles[char]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Legend) and self.to_json() == other.to_json()

    def __hash__(self) -> int:  # legends are used as cache keys for derived tables
        return hash(json.dumps(self.to_json(), sort_keys=True))

    def find(self, *props: str) -> list[str]:
        """Characters of tiles having any of ``props``, in legend order."""
        return [c for c, t in self.tiles.items() if t.has(*props)]

    def first(self, *props: str, default: str | None = None) -> str | None:
        found = self.find(*props)
        return found[0] if found else default

    @property
    def empty(self) -> str:
        """What "erase" paints: the empty tile, else the first walkable non-special tile."""
        for pred in (lambda t: t.has("empty"), lambda t: t.has("floor") and t.walkable,
                     lambda t: t.walkable and not t.has("enemy", "collectable", "start", "exit",
                                                        "door", "climbable")):
            for c, t in self.tiles.items():
                if pred(t):
                    return c
        return next(iter(self.tiles))

    @property
    def ground(self) -> str:
        """The plain solid tile repairs and generators build floors from."""
        return (self.first("ground") or self.first("wall") or self.first("solid")
                or next(iter(self.tiles)))

    def guess_view(self) -> str:
        """Which agent checks this game: a ladder game, a top-down map, or a side-on platformer.

        Walls and floors are seen from above; ground, empty sky, pipes and solid-top platforms
        from the side. Doors, starts and exits say nothing either way (a vertical platformer has
        doors too), so they only decide when nothing else does.
        """
        if self.view:
            return self.view
        if self.find(*CLIMB_PROPS):
            return "ladder"
        if self.find(*_TOPDOWN_HINTS):
            return "topdown"
        if self.find(*_SIDE_HINTS):
            return "platformer"
        if self.find("door", "void", "start", "exit"):
            return "topdown"
        return "platformer"

    def lut(self, predicate: str) -> np.ndarray:
        """A 256-entry boolean table indexed by character code (fast masks over whole grids).

        ``predicate``: ``"solid"``, ``"walkable"``, ``"climbable"`` or any property name.
        """
        table = np.zeros(256, dtype=bool)
        for c, t in self.tiles.items():
            if predicate == "solid":
                v = t.solid
            elif predicate == "walkable":
                v = t.walkable
            elif predicate == "climbable":
                v = t.has(*CLIMB_PROPS)
            elif predicate == "solidtop":
                v = t.solidtop
            else:
                v = t.has(predicate)
            table[ord(c)] = v
        return table

    def color(self, char: str) -> tuple[int, int, int]:
        t = self.tiles.get(char)
        if t is not None and t.color is not None:
            return t.color
        return default_color(t if t is not None else Tile(char, ()))

    def color_lut(self) -> np.ndarray:
        """``(256, 3)`` uint8 colours by character code (unknown codes are magenta)."""
        table = np.zeros((256, 3), dtype=np.uint8)
        table[:] = (255, 0, 255)
        for c in self.tiles:
            table[ord(c)] = self.color(c)
        return table

    def index_lut(self) -> np.ndarray:
        """Character code -> legend index (-1 for characters not in the legend)."""
        table = np.full(256, -1, dtype=np.int64)
        for i, c in enumerate(self.tiles):
            table[ord(c)] = i
        return table

    def codes(self) -> np.ndarray:
        return np.frombuffer("".join(self.tiles).encode("latin-1"), dtype=np.uint8).copy()


def _parse_color(value: Any) -> tuple[int, int, int]:
    """``"#RRGGBB"``, Tiled's ``"#AARRGGBB"`` or ``[r, g, b]`` (0-255 each)."""
    try:
        if isinstance(value, list | tuple) and len(value) >= 3:
            rgb = (int(value[0]), int(value[1]), int(value[2]))
        else:
            s = str(value).strip().lstrip("#")
            if len(s) == 8:  # AARRGGBB (Tiled)
                s = s[2:]
            if len(s) != 6:
                raise ValueError(s)
            rgb = (int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16))
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"colour {value!r} is not #RRGGBB") from None
    if not all(0 <= v <= 255 for v in rgb):
        raise UserError(f"colour {value!r} has a value outside 0-255")
    return rgb


_ROLE_COLOURS: list[tuple[tuple[str, ...], tuple[int, int, int]]] = [
    (("start", "spawn"), (60, 200, 90)),
    (("exit", "goal"), (230, 60, 200)),
    (("enemy",), (215, 40, 40)),
    (("coin", "gold", "collectable", "pickupable"), (245, 200, 40)),
    (("lava",), (240, 100, 20)),
    (("door",), (170, 110, 50)),
    (("ladder", "climbable"), (200, 150, 60)),
    (("rope",), (150, 120, 90)),
    (("pipe",), (40, 170, 60)),
    (("cannon",), (60, 60, 70)),
    (("question block",), (235, 160, 40)),
    (("breakable",), (180, 90, 50)),
    (("deep water",), (25, 70, 160)),
    (("water", "element"), (50, 120, 220)),
    (("sand",), (225, 205, 140)),
    (("grass",), (110, 180, 70)),
    (("forest", "tree", "leaf"), (35, 110, 45)),
    (("trunk",), (120, 80, 40)),
    (("mountain", "rock"), (130, 120, 110)),
    (("snow",), (240, 245, 250)),
    (("road", "path"), (200, 170, 120)),
    (("void",), (20, 20, 24)),
    (("wall",), (90, 80, 100)),
    (("floor",), (205, 195, 175)),
    (("ground",), (150, 90, 45)),
    (("solid", "block"), (120, 70, 40)),
    (("empty", "passable", "sky"), (150, 200, 255)),
]


def default_color(tile: Tile) -> tuple[int, int, int]:
    """A readable colour from a tile's role (enemies red, ground brown, sky blue, ...); tiles
    with the same role but different characters get slightly different shades."""
    shade = int(hashlib.md5(tile.char.encode("latin-1")).hexdigest()[:2], 16) / 255.0
    for props, rgb in _ROLE_COLOURS:
        if tile.has(*props):
            k = 0.85 + 0.3 * shade
            return tuple(int(min(255, max(0, v * k))) for v in rgb)  # type: ignore[return-value]
    r, g, b = colorsys.hsv_to_rgb(shade, 0.55, 0.85)
    return (int(r * 255), int(g * 255), int(b * 255))


@dataclass
class Level:
    """A tile map: ``grid`` holds character codes; ``meta`` how it was made (method, seed...)."""

    grid: np.ndarray
    legend: Legend
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grid = np.ascontiguousarray(self.grid, dtype=np.uint8)
        if self.grid.ndim != 2 or self.grid.size == 0:
            raise UserError("a level needs at least one row and one column of tiles")

    @property
    def height(self) -> int:
        return int(self.grid.shape[0])

    @property
    def width(self) -> int:
        return int(self.grid.shape[1])

    @classmethod
    def from_lines(cls, lines: list[str], legend: Legend, name: str = "",
                   meta: dict[str, Any] | None = None) -> Level:
        grid = np.array([np.frombuffer(s.encode("latin-1"), dtype=np.uint8) for s in lines])
        return cls(grid, legend, name, dict(meta or {}))

    def lines(self) -> list[str]:
        return [row.tobytes().decode("latin-1") for row in self.grid]

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"

    def copy(self) -> Level:
        return Level(self.grid.copy(), self.legend, self.name, dict(self.meta))

    def char_at(self, x: int, y: int) -> str:
        return chr(int(self.grid[y, x]))

    def mask(self, predicate: str) -> np.ndarray:
        return self.legend.lut(predicate)[self.grid]

    def indices(self) -> np.ndarray:
        """Legend indices ``(H, W)`` int64 (the one-hot channel of every cell)."""
        idx = self.legend.index_lut()[self.grid]
        if (idx < 0).any():
            bad = sorted({chr(c) for c in np.unique(self.grid[idx < 0])})
            raise UserError(f"level {self.name or ''} uses tiles not in its legend: {bad}")
        return idx

    def unknown_chars(self) -> list[str]:
        known = self.legend.index_lut() >= 0
        return sorted(chr(c) for c in np.unique(self.grid) if not known[c])

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> Level:
        return Level(self.grid[y0:y1, x0:x1].copy(), self.legend, self.name, dict(self.meta))


def levels_legend(levels: list[Level]) -> Legend:
    """One legend covering every level (levels of a game read separately may each lack tiles)."""
    legend = levels[0].legend
    for lv in levels[1:]:
        if lv.legend != legend:
            legend = legend.merged(lv.legend)
    return legend


def from_indices(idx: np.ndarray, legend: Legend, name: str = "",
                 meta: dict[str, Any] | None = None) -> Level:
    """Inverse of :meth:`Level.indices`."""
    codes = legend.codes()
    return Level(codes[np.asarray(idx, dtype=np.int64)], legend, name, dict(meta or {}))
