"""How the player of a game moves, as the playability agents model it, and where that came from.

One jump height does not fit every game: Super Mario Bros clears its levels with a 4-tile jump,
other Mario-like games have gaps of 12 tiles, and a vertical platformer is climbed from the
bottom to the top rather than crossed from left to right. A :class:`Physics` holds one game's
limits:

* platformers: the ``direction`` the level is played in (``"right"``: left to right; ``"up"``:
  from the bottom to the top), how high a jump rises (``jump`` tiles) and how far the player
  moves sideways for each tile of flight (``run``);
* top-down maps: whether blocks can be pushed aside (``push``) and how many tiles of water or
  lava in a row can be crossed (``wade``, The Legend of Zelda's stepladder).

:func:`resolve` picks them, in this order: values the user set; calibration on real levels when
asked for (:func:`calibrate`: the smallest limits under which every real level passes); the
legend's own ``"physics"`` and ``"direction"`` keys; the built-in profile of a known game
(:data:`PROFILES`); the defaults. The direction not stated anywhere is detected from the levels'
shape (tall and narrow: climbed). Every :class:`Physics` says in plain words what it is and where
it came from (:meth:`Physics.words`), and the check report shows that.

The profiles are checked against the real levels in ``tests/levels/test_levels_games.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

from studio.errors import UserError

from .level import DIRECTIONS, Legend, Level

MAX_JUMP = 16
MAX_RUN = 6
MAX_WADE = 3
SOURCES = ("default", "chosen", "legend", "profile", "calibrated")
DIRECTION_WORDS = {"right": "left to right", "up": "from the bottom to the top"}


@dataclass(frozen=True)
class Physics:
    """One game's movement limits and where they came from (see the module docstring)."""

    direction: str = "right"
    jump: int = 4
    run: int = 1
    push: bool = False
    wade: int = 0
    #: default | chosen (by the user) | legend | profile | calibrated
    source: str = "default"
    #: what the source refers to: the game of a profile, the levels of a calibration
    basis: str = ""
    #: where the direction came from: chosen | legend | profile | shape | default
    direction_from: str = "default"
    #: real levels a calibration could not make pass with any limits tried
    unfinished: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise UserError(f"direction {self.direction!r}: choose right (left to right) or up "
                            "(from the bottom to the top)")
        if not 1 <= self.jump <= MAX_JUMP:
            raise UserError(f"a jump of {self.jump} tiles: choose 1 to {MAX_JUMP}")
        if not 1 <= self.run <= MAX_RUN:
            raise UserError(f"a run of {self.run} tiles per tile of flight: choose 1 to "
                            f"{MAX_RUN}")
        if not 0 <= self.wade <= MAX_WADE:
            raise UserError(f"crossing {self.wade} hazard tiles: choose 0 to {MAX_WADE}")

    # -- words ----------------------------------------------------------------------------------
    def movement(self, mode: str) -> str:
        """What the player can do, in words (``mode``: the agent that judges)."""
        if mode == "platformer":
            side = "1 tile" if self.run == 1 else f"{self.run} tiles"
            return (f"jumps up to {self.jump} tiles high, {side} sideways per tile of flight "
                    f"(gaps up to {max_gap(self.jump, self.run)} tiles wide)")
        if mode == "topdown":
            parts = ["walks"]
            parts.append("pushes blocks aside" if self.push else "blocks stop it")
            if self.wade:
                tiles = "1 tile" if self.wade == 1 else f"{self.wade} tiles"
                parts.append(f"crosses water or lava up to {tiles} wide")
            else:
                parts.append("water and lava stop it")
            return ", ".join(parts)
        if mode == "ladder":
            return "runs, climbs ladders and ropes, falls, digs through diggable floor"
        return ""

    def origin(self) -> str:
        """Where these limits came from, in words."""
        if self.source == "chosen":
            return "as you set them"
        if self.source == "legend":
            return "from the game's legend"
        if self.source == "profile":
            return f"the profile for {self.basis}"
        if self.source == "calibrated":
            text = (f"calibrated on {self.basis}: the smallest limits under which they all "
                    "pass")
            if self.unfinished:
                text += (f" ({len(self.unfinished)} cannot be finished with any limits: "
                         f"{', '.join(self.unfinished[:5])})")
            return text
        return ("the default, not tuned for this game: calibrate it on the game's real levels"
                if self.basis else "the default")

    def direction_words(self) -> str:
        how = {"legend": "as its legend says", "profile": "as its profile says",
               "shape": "detected: the level is tall and narrow" if self.direction == "up"
               else "detected: the level is wider than tall",
               "chosen": "as you set it"}.get(self.direction_from, "")
        return DIRECTION_WORDS[self.direction] + (f" ({how})" if how else "")

    def words(self, mode: str) -> str:
        """The movement and its origin in one sentence, for the report."""
        return f"{self.movement(mode)}; {self.origin()}"

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "unfinished"}
        if self.unfinished:
            out["unfinished"] = list(self.unfinished)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "legend", where: str = "legend"
                  ) -> Physics:
        """Limits written as ``{"jump": 5, "run": 2, "direction": "up"}`` (a legend's
        ``"physics"`` key, a model's config); bad values are a :class:`UserError`."""
        known = {"direction", "jump", "run", "push", "wade"}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key == "direction":
                values[key] = str(value)
            elif key == "push":
                if not isinstance(value, bool):
                    raise UserError(f"{where}: physics \"push\" must be true or false")
                values[key] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float) or \
                        int(value) != value:
                    raise UserError(f"{where}: physics \"{key}\" must be a whole number, not "
                                    f"{value!r}")
                values[key] = int(value)
        try:
            return cls(**values, source=source,
                       direction_from=source if "direction" in values else "default")
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None


def game_key(name: str) -> str:
    """A game's name as letters and digits (``"Super_Mario_Bros"``: ``"supermariobros"``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


#: Built-in profiles of the games whose real levels are in the shared VGLC data, by their
#: mechanics: Mario's 4-tile jump (all 15 real levels pass, and calibration finds the same
#: limits), Link's pushable blocks and one-tile stepladder, Lode Runner's fixed rules. The tests
#: measure each against the real levels.
PROFILES: dict[str, Physics] = {
    "supermariobros": Physics(jump=4, run=1, source="profile", basis="Super Mario Bros",
                              direction_from="profile"),
    "thelegendofzelda": Physics(push=True, wade=1, source="profile",
                                basis="The Legend of Zelda"),
    "loderunner": Physics(source="profile", basis="Lode Runner"),
}


def profile(legend: Legend) -> Physics | None:
    return PROFILES.get(game_key(legend.name)) if legend.name else None


def detect_direction(levels: Iterable[Level]) -> str:
    """``"up"`` when the levels are mostly at least twice as tall as wide (a tower climbed from
    the bottom), else ``"right"``."""
    shapes = [(lv.width, lv.height) for lv in levels]
    if not shapes:
        return "right"
    tall = sum(h >= 2 * w for w, h in shapes)
    return "up" if tall * 2 > len(shapes) else "right"


def resolve(legend: Legend, levels: Sequence[Level] = (), *, direction: str = "auto",
            jump: int = 0, run: int = 0, calibrated: Physics | None = None) -> Physics:
    """The physics that judges ``levels`` of the game of ``legend`` (see the module docstring).

    ``direction`` (``"auto"``, ``"right"``, ``"up"``), ``jump`` and ``run`` (0: automatic) are
    the user's choices; ``calibrated`` is the result of :func:`calibrate` when asked for.
    """
    if calibrated is not None:
        base = calibrated
    elif legend.physics:
        base = Physics.from_json(legend.physics, "legend",
                                 f"the legend of {legend.name or 'the level'}")
    else:
        base = profile(legend) or Physics(basis=legend.name)
    if direction != "auto":
        base = replace(base, direction=direction, direction_from="chosen")
    elif legend.direction and base.source != "calibrated":
        base = replace(base, direction=legend.direction, direction_from="legend")
    elif base.direction_from == "default" and levels:
        base = replace(base, direction=detect_direction(levels), direction_from="shape")
    if jump or run:
        base = replace(base, jump=jump or base.jump, run=run or base.run, source="chosen",
                       basis="")
    return base


# ----------------------------------------------------------------------------------------------
# Calibration: the smallest limits under which every real level of a game passes
# ----------------------------------------------------------------------------------------------
def calibrate(levels: Sequence[Level], mode: str = "auto", direction: str = "auto",
              check: Callable[[], None] | None = None) -> Physics:
    """The smallest limits under which every level of ``levels`` (a game's real levels) passes.

    Platformers: the smallest jump height with the most generous run, then the smallest run with
    that jump (each search is a bisection: a bigger limit never loses a path). Top-down maps:
    the fewest of pushing blocks and crossing hazards, tried from none upwards. Ladder games have
    no limit to calibrate. Levels that fail even with the most generous limits are left out of
    the calibration and named in :attr:`Physics.unfinished`.
    """
    from . import agents

    if not levels:
        raise UserError("calibration needs the game's real levels: none were given")
    legend = levels[0].legend
    mode = legend.guess_view() if mode == "auto" else mode
    way = direction if direction != "auto" else (legend.direction or detect_direction(levels))
    basis = f"{len(levels)} real level{'s' if len(levels) != 1 else ''}" + (
        f" of {legend.name}" if legend.name else "")
    start = Physics(direction=way, source="calibrated", basis=basis,
                    direction_from="chosen" if direction != "auto" else
                    ("legend" if legend.direction else "shape"))

    def fails(ph: Physics, pool: Sequence[Level]) -> list[Level]:
        out = []
        for lv in pool:
            if check is not None:
                check()
            if not agents.check(lv, mode, ph).playable:
                out.append(lv)
        return out

    if mode == "platformer":
        most = replace(start, jump=MAX_JUMP, run=MAX_RUN)
        bad = fails(most, levels)
        pool = [lv for lv in levels if all(lv is not b for b in bad)]
        if not pool:
            return replace(start, unfinished=tuple(lv.name for lv in bad))
        jump = _smallest(1, MAX_JUMP, lambda j: not fails(replace(most, jump=j), pool))
        run = _smallest(1, MAX_RUN, lambda r: not fails(replace(most, jump=jump, run=r), pool))
        return replace(start, jump=jump, run=run, unfinished=tuple(lv.name for lv in bad))
    if mode == "topdown":
        tries = [replace(start, push=p, wade=w) for p in (False, True)
                 for w in range(MAX_WADE + 1)]
        bad = fails(tries[-1], levels)
        pool = [lv for lv in levels if all(lv is not b for b in bad)]
        for ph in tries:
            if not pool or not fails(ph, pool):
                return replace(ph, unfinished=tuple(lv.name for lv in bad))
    bad = fails(start, levels)
    return replace(start, unfinished=tuple(lv.name for lv in bad))


def _smallest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The smallest value in ``[lo, hi]`` for which the monotone ``ok`` holds (``hi`` holds)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@lru_cache(maxsize=128)
def max_gap(jump: int, run: int) -> int:
    """The widest gap at floor height the platformer agent clears with these limits (measured
    by running it, so the words in the report are what the agent really does)."""
    from . import agents

    legend = Legend.from_mapping({"X": ["solid"], "-": ["passable", "empty"]})
    h = jump + 4
    best = 0
    for gap in range(1, 2 * (jump + 2) * run + 3):
        w = gap + 4
        rows = ["-" * w] * (h - 1) + ["XX" + "-" * gap + "X" * (w - gap - 2)]
        lv = Level.from_lines(rows, legend)
        if not agents.platformer(lv, jump=jump, run=run, start_cols=1).playable:
            break
        best = gap
    return best
