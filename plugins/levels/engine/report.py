"""What checking a level found, as an object: the editor reads it, the command line prints it.

A :class:`LevelReport` holds the playability agent's result (with its path), the level's design
features, and, when checked against training levels, how far its tiles are from theirs. It turns
into the JSON the command line has always printed (:meth:`LevelReport.to_json`) and into lines a
person can read (:meth:`LevelReport.readable`), so the window never shows a raw dump.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import agents, metrics
from .level import Level

AGENTS = {"platformer": "platformer (jumps)", "ladder": "ladders and ropes",
          "topdown": "top-down (walks)"}
FEATURES = {"enemies": "Enemies", "gaps": "Gaps in the floor", "gap_tiles": "Floor tiles missing",
            "collectables": "Coins and collectables", "solid_fraction": "Solid tiles"}
DETAILS = {"rooms": "Rooms", "rooms_reachable": "Rooms reachable", "gold": "Gold",
           "gold_reachable": "Gold reachable", "reachable_fraction": "Walkable area reachable",
           "runway": "Entered from the segment before"}
COMPARISON = {"tile_js": "Tile mix distance to the training levels",
              "tile_kl": "Tile mix divergence from the training levels",
              "novelty": "Novelty (tiles unlike the nearest training piece)"}
FRACTIONS = {"solid_fraction", "reachable_fraction", "novelty"}


@dataclass
class LevelReport:
    """One level's check."""

    name: str
    check: agents.Check
    features: dict[str, float] = field(default_factory=dict)
    comparison: dict[str, float] = field(default_factory=dict)  # against training levels
    repair: dict[str, Any] | None = None  # what ``check --repair`` did
    changes: int | None = None  # tiles the repair job changed

    @classmethod
    def of(cls, level: Level, check: agents.Check) -> LevelReport:
        return cls(level.name, check, metrics.features(level))

    @property
    def playable(self) -> bool:
        return self.check.playable

    @property
    def path(self) -> list[tuple[int, int]]:
        return self.check.path

    def to_json(self, booleans: bool = False) -> dict[str, Any]:
        """The command line's report (its keys are what scripts read). ``playable`` (and a
        repair's ``playable_after``) read "yes"/"no", or JSON true/false with ``booleans``
        (``check --json``)."""
        out: dict[str, Any] = {
            "level": self.name, "playable": _yes(self.playable, booleans),
            **{k: v for k, v in self.check.to_json().items() if k not in ("playable", "edits")},
            "features": self.features, **self.comparison}
        if self.repair is not None:
            out["repair"] = dict(self.repair)
            if "playable_after" in self.repair:
                out["repair"]["playable_after"] = _yes(
                    self.repair["playable_after"] in (True, "yes"), booleans)
        if self.changes is not None:
            out["changes"] = self.changes
        return out

    def readable(self) -> list[tuple[str, str]]:
        """(what, value) lines in plain words, for the editor's Check tab."""
        c = self.check
        rows = [("Verdict", "playable" if c.playable else "not playable")]
        if c.reason:
            rows.append(("Why not" if not c.playable else "Note", c.reason))
        rows.append(("Agent", AGENTS.get(c.mode, c.mode)))
        ph = c.physics
        if ph is not None:
            if c.mode == "platformer":
                rows.append(("Direction", ph.direction_words()))
            rows.append(("Physics", ph.movement(c.mode)))
            rows.append(("Physics from", ph.origin()))
        rows.append(("Path length", f"{len(c.path)} tiles"))
        if c.mode == "platformer" and ph is not None and ph.direction == "up":
            rows.append(("Rows climbed", str(c.furthest)))
        elif c.mode == "platformer":
            rows.append(("Furthest column reached", str(c.furthest)))
        else:
            rows.append(("Tiles the player can reach", str(c.furthest)))
        for key, value in c.details.items():
            if key in DETAILS:
                rows.append((DETAILS[key], _show(key, value)))
        for key, value in self.features.items():
            rows.append((FEATURES.get(key, key.replace("_", " ").capitalize()),
                         _show(key, value)))
        for key, value in self.comparison.items():
            rows.append((COMPARISON.get(key, key.replace("_", " ").capitalize()),
                         _show(key, value)))
        if self.changes is not None:
            rows.append(("Tiles changed by the repair", str(self.changes)))
        if self.repair is not None:
            if "error" in self.repair:
                rows.append(("Repair", str(self.repair["error"])))
            else:
                rows.append(("Repair", f"{self.repair.get('changes', 0)} tiles changed, "
                             f"playable after: {self.repair.get('playable_after', 'no')}"))
        return rows


def _yes(value: bool, booleans: bool) -> bool | str:
    return value if booleans else ("yes" if value else "no")


def _show(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in FRACTIONS and isinstance(value, int | float):
        return f"{value:.0%}"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3f}"
    return str(value)


@dataclass
class CheckResult:
    """What the check job returns: one report per level, and for several levels a summary."""

    levels: list[Level]
    reports: list[LevelReport]
    summary: dict[str, Any] = field(default_factory=dict)
    #: print JSON booleans (``check --json``) rather than "yes"/"no"
    booleans: bool = False

    def to_json(self, booleans: bool | None = None) -> dict[str, Any]:
        b = self.booleans if booleans is None else booleans
        if len(self.reports) == 1:
            return self.reports[0].to_json(b)
        return {"summary": self.summary, "levels": [r.to_json(b) for r in self.reports]}

    def __str__(self) -> str:
        """The command line prints the report as JSON ("playable": "yes"/"no", or true/false
        with ``--json``)."""
        return json.dumps(self.to_json(), indent=2)
