"""Built-in legends of the classic generators (top-down maps, terrain, side-view plants).

They are ordinary :class:`Legend` objects, exported with every level, so a map made here opens in
Tiled with its tile properties and reads back with the same checks.
"""

from __future__ import annotations

from .level import Legend

DUNGEON = Legend.from_mapping({
    "#": ["solid", "wall"],
    ".": ["passable", "floor"],
    "+": ["passable", "door"],
    "<": ["passable", "start"],
    ">": ["passable", "exit"],
}, name="Dungeon", view="topdown")

CAVE = Legend.from_mapping({
    "#": ["solid", "wall", "rock"],
    ".": ["passable", "floor"],
    "<": ["passable", "start"],
    ">": ["passable", "exit"],
}, name="Cave", view="topdown")

TERRAIN = Legend.from_mapping({
    "~": ["hazard", "deep water"],
    "w": ["passable", "shallow water", "water edge"],
    ",": ["passable", "sand"],
    '"': ["passable", "grass"],
    "T": ["passable", "forest"],
    "^": ["solid", "mountain", "rock"],
    "*": ["passable", "snow"],
    "=": ["passable", "road"],
    "<": ["passable", "start"],
    ">": ["passable", "exit"],
}, name="Terrain", view="topdown", colors={"w": "#5aa0e6"})

TRAILS = Legend.from_mapping({
    "T": ["solid", "forest", "tree"],
    ".": ["passable", "path", "floor"],
    "<": ["passable", "start"],
    ">": ["passable", "exit"],
}, name="Forest trails", view="topdown")

PLANTS = Legend.from_mapping({
    "-": ["passable", "empty", "sky"],
    "X": ["solid", "ground"],
    "|": ["passable", "trunk", "background"],
    "L": ["solid", "leaf", "platform"],
}, name="Plants", view="platformer")

BUILTIN = {lg.name: lg for lg in (DUNGEON, CAVE, TERRAIN, TRAILS, PLANTS)}
