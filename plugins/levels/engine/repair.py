"""Repair: make an unplayable level playable by changing as few tiles as possible.

* Platformers: the same A* agent, but it may also clear a blocking tile or place a ground block
  under a step into the air, each edit costing more than any walk. The cheapest path therefore
  uses the fewest edits; they are applied and the level is checked again (an edit can matter to
  a later part of the path, so we iterate until the plain agent agrees).
* Top-down maps: a 0-1 breadth-first search from everything the start reaches, where walking is
  free and breaking through a wall tile costs one; the cheapest tunnel to the exit, then to each
  unreachable room, is carved, nearest first.

Ladder games (Lode Runner) are not repaired: digging and climbing make "fewest changes" a
different puzzle, and the job says so rather than pretending.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from studio.errors import UserError

from . import agents
from .level import Level
from .physics import Physics, resolve


@dataclass
class Repair:
    level: Level
    changes: list[tuple[int, int, str, str]] = field(default_factory=list)  # x, y, old, new
    check: agents.Check | None = None

    @property
    def count(self) -> int:
        return len(self.changes)


def repair(level: Level, mode: str = "auto", max_rounds: int = 8,
           physics: Physics | None = None) -> Repair:
    """The fewest tile changes that make ``level`` playable for ``mode``'s agent with
    ``physics`` (``None``: the game's, see :func:`physics.resolve`)."""
    if mode == "auto":
        mode = level.legend.guess_view()
    ph = physics or resolve(level.legend, [level])
    before = agents.check(level, mode, ph)
    if before.playable:
        return Repair(level.copy(), [], before)
    if mode == "platformer":
        return _repair_platformer(level, max_rounds, ph)
    if mode == "topdown":
        return _repair_topdown(level, ph)
    raise UserError(f"repair works on platformer and top-down maps, not {mode!r} maps "
                    "(Lode Runner levels need digging and climbing, which it does not plan)")


def _set(out: Level, changes: list[tuple[int, int, str, str]], x: int, y: int, ch: str) -> None:
    old = out.char_at(x, y)
    if old != ch:
        out.grid[y, x] = ord(ch)
        changes.append((x, y, old, ch))


def _repair_platformer(level: Level, max_rounds: int, ph: Physics) -> Repair:
    out = level.copy()
    lg = out.legend
    empty, ground = lg.empty, lg.ground
    changes: list[tuple[int, int, str, str]] = []
    for _ in range(max_rounds):
        solid = out.mask("solid")
        walk = out.mask("walkable")
        removable = ~walk
        removable[-1] = False  # keep the floor row: clearing it would only open a pit
        res = agents.platformer(out, jump=ph.jump, run=ph.run, direction=ph.direction,
                                solid=solid, walk=walk, removable=removable, bridges=True)
        if not res.playable:
            break
        edits = res.details.get("edits", [])
        if not edits:
            return Repair(out, changes, agents.check(out, "platformer", ph))
        for x, y, kind in edits:
            _set(out, changes, x, y, empty if kind == "remove" else ground)
        final = agents.check(out, "platformer", ph)
        if final.playable:
            return Repair(out, changes, final)
    raise UserError("this level could not be repaired: the agent finds no route even when "
                    "allowed to clear tiles and bridge gaps (is there any floor to start on?)")


def _repair_topdown(level: Level, ph: Physics) -> Repair:
    out = level.copy()
    lg = out.legend
    floor = lg.first("floor") or lg.empty
    changes: list[tuple[int, int, str, str]] = []
    for _ in range(len(level.grid.ravel())):
        res = agents.check(out, "topdown", ph)
        if res.playable:
            return Repair(out, changes, res)
        walk = out.mask("walkable")
        walk |= agents.door_tunnels(out.mask("door"), out.mask("solid"))
        from scipy import ndimage

        labels, _ = ndimage.label(walk)
        start = res.path[0]
        reach = labels == labels[start[1], start[0]]
        targets = np.zeros_like(walk)
        exits = out.mask("exit") | out.mask("goal")
        if exits.any() and not (exits & reach).any():
            targets |= exits
        else:
            targets |= walk & ~reach
        if not targets.any():
            break
        # breakable: solid tiles that are not the map border and not void
        breakable = out.mask("solid") & ~out.mask("void")
        breakable[0, :] = breakable[-1, :] = False
        breakable[:, 0] = breakable[:, -1] = False
        tunnel = _cheapest_tunnel(reach, targets, walk, breakable)
        if tunnel is None:
            raise UserError("the unreachable part of this map is walled off by tiles that "
                            "cannot be broken (map border or void)")
        for x, y in tunnel:
            _set(out, changes, x, y, floor)
    raise UserError("repair did not converge on this map")


def _cheapest_tunnel(sources: np.ndarray, targets: np.ndarray, walk: np.ndarray,
                     breakable: np.ndarray) -> list[tuple[int, int]] | None:
    """0-1 BFS: the path from ``sources`` to the nearest ``targets`` cell that crosses the fewest
    breakable tiles; returns those tiles."""
    h, w = walk.shape
    n = h * w
    INF = 1 << 30
    dist = [INF] * n
    parent = [-1] * n
    wk = walk.ravel().tolist()
    br = breakable.ravel().tolist()
    tg = targets.ravel().tolist()
    dq: deque[int] = deque()
    for i in np.flatnonzero(sources.ravel()).tolist():
        dist[i] = 0
        dq.append(i)
    while dq:
        i = dq.popleft()
        if tg[i]:
            cells = []
            while i != -1 and dist[i] > 0:
                if not wk[i]:
                    cells.append((i % w, i // w))
                i = parent[i]
            return cells
        x = i % w
        d = dist[i]
        for j in (i - w, i + w, i - 1 if x > 0 else -1, i + 1 if x < w - 1 else -1):
            if j < 0 or j >= n:
                continue
            if wk[j]:
                nd = d
            elif br[j]:
                nd = d + 1
            else:
                continue
            if nd < dist[j]:
                dist[j] = nd
                parent[j] = i
                if nd == d:
                    dq.appendleft(j)
                else:
                    dq.append(j)
    return None
