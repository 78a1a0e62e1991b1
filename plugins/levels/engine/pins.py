"""Pinned tiles: cells the user painted that generation must keep.

A :class:`Pins` is a mapping ``(x, y) -> tile code``. The editor builds one from the tiles it
has marked as painted; the command line gives a JSON file ``{"pins": [[x, y, "C"], ...]}`` (read
by :func:`read_pins`, the codec of the generate job's ``pins`` field) or the short form
``x,y,C;x,y,C`` (:func:`parse_pins`). Generators receive the object, never the text.

Light on purpose (no numpy at import): the params module imports this type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from studio.errors import UserError


class Pins(dict[tuple[int, int], int]):
    """``(x, y) -> tile code`` of the tiles a generator must keep."""

    @classmethod
    def from_items(cls, items: Iterable[Any]) -> Pins:
        """From ``[x, y, "C"]`` triples (the JSON file's form)."""
        out = cls()
        for item in items:
            try:
                x, y, c = int(item[0]), int(item[1]), str(item[2])
            except (TypeError, ValueError, IndexError, KeyError):
                raise UserError(f"pin {item!r} must be [x, y, \"C\"]") from None
            if len(c) != 1:
                raise UserError(f"pin tile {c!r} must be one character")
            if x < 0 or y < 0:
                raise UserError(f"pin {item!r} lies outside the map (negative coordinate)")
            out[(x, y)] = ord(c)
        return out

    @classmethod
    def from_mask(cls, mask: Any, grid: Any) -> Pins:
        """The marked cells of ``mask`` (a boolean ``(H, W)`` array) with their tiles in
        ``grid`` (the level's codes): what the editor has painted."""
        import numpy as np

        return cls({(int(x), int(y)): int(grid[y, x]) for y, x in np.argwhere(mask)})

    def inside(self, rect: tuple[int, int, int, int]) -> Pins:
        """The pins within ``(x0, y0, x1, y1)`` (x1, y1 exclusive)."""
        x0, y0, x1, y1 = rect
        return Pins({k: v for k, v in self.items() if x0 <= k[0] < x1 and y0 <= k[1] < y1})

    def to_items(self) -> list[list[Any]]:
        return [[x, y, chr(c)] for (x, y), c in sorted(self.items())]


def parse_pins(text: str) -> Pins:
    """The command line's short form ``x,y,C;x,y,C`` (a tile may be a comma: ``3,4,,``)."""
    items: list[list[str]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        if part.count(",") < 2:
            raise UserError(f"pin {part!r} must look like x,y,C")
        a, b, c = part.split(",", 2)
        items.append([a, b, c])
    return Pins.from_items(items)


def read_pins(path: Path | str, params: Any = None,
              warn: Callable[[str], None] | None = None) -> Pins:
    """The codec of a ``pins`` field: a JSON file ``{"pins": [[x, y, "C"], ...]}`` (or the
    bare list), or the pins written out ``x,y,C;x,y,C`` (text that names no file)."""
    if isinstance(path, str):
        if path.strip().lower().endswith(".json"):
            raise UserError(f"pins file {path} does not exist")
        return parse_pins(path)
    from .text import read_text

    text = read_text(path, "pins file")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"pins file {Path(path).name} is not JSON ({exc})") from None
    items = data.get("pins", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UserError(f"pins file {Path(path).name}: \"pins\" must be a list of [x, y, \"C\"]")
    try:
        return Pins.from_items(items)
    except UserError as exc:
        raise UserError(f"pins file {Path(path).name}: {exc}") from None


def describe_pins(pins: Pins) -> dict[str, Any]:
    """What a run manifest says about the pins (their count, not every cell)."""
    return {"pins": len(pins)}
