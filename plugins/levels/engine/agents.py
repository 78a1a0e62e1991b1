"""Playability checks: can a player get through this level?

Three agents, picked from the legend (:meth:`Legend.guess_view`), each judging with the game's
:class:`~.physics.Physics` (its profile, its legend's limits, a calibration on its real levels,
or the user's; the check says which):

* ``platformer`` (Super Mario Bros, Kid Icarus and the like): A* over ``(x, y, rising)`` states
  with jump arcs. Standing on a solid tile (or a solid-top platform) the agent walks one tile
  left or right or jumps; a jump rises up to ``jump`` tiles, drifting up to ``run`` tiles
  sideways per tile climbed, and may be released early; falling drifts the same way. A
  solid-top platform is jumped up through and caught on the way down. With the defaults (jump
  4, run 1) gaps of up to 9 tiles at equal height are cleared and four-tile-high pipes climbed,
  as in the original game (:func:`~.physics.max_gap` measures it for any limits). Enemies are
  stompable (walkable); hazards that are not enemies, and the bottom edge, are deadly. Goal,
  left to right: from a standing cell in the first few columns to any cell of the last column;
  climbed (``direction="up"``): from the bottom rows to the top row that has room.
* ``ladder`` (Lode Runner): breadth-first over cells with ladders, ropes, falling and digging
  through diggable floor; playable when every piece of gold is reachable from the spawn.
* ``topdown`` (dungeons, caves, Zelda): flood fill. Playable when the exit is reachable from the
  start and every room (walkable region with doors closed) has a reachable cell; with the
  game's physics, blocks may be pushed aside and narrow water or lava crossed.

Every agent returns a :class:`Check` with the path it found (or the furthest it got), drawn by the
editor and exported as a polyline to Tiled.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .level import Level
from .physics import Physics, resolve


@dataclass
class Check:
    playable: bool
    mode: str
    path: list[tuple[int, int]] = field(default_factory=list)
    reason: str = ""
    #: platformers: furthest column reached (left to right) or rows climbed (bottom to top);
    #: the other agents: reachable cells
    furthest: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: the limits the agent judged with (``None``: an agent called directly, without them)
    physics: Physics | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"playable": self.playable, "mode": self.mode, "reason": self.reason,
               "furthest": self.furthest, "path_length": len(self.path), **self.details}
        if self.physics is not None:
            out["physics"] = self.physics.to_json()
        return out


def check(level: Level, mode: str = "auto", physics: Physics | None = None,
          runway: bool = False) -> Check:
    """Run the agent for ``mode`` (``auto`` asks the legend which game this is) with
    ``physics`` (``None``: :func:`physics.resolve` for this level's game and shape).

    ``runway`` (platformers): the level is a *segment* the player enters from the previous
    one, so the agent may also start from a one-tile ledge at floor height just before it (left
    of it, or below it when the game is climbed): a segment that opens with a gap is fine if
    the gap can be jumped. Whole levels are checked without it: they must start on solid ground.
    """
    if mode == "auto":
        mode = level.legend.guess_view()
    ph = physics or resolve(level.legend, [level])
    if mode == "platformer":
        res = _platformer_run(level, ph) if runway else platformer(
            level, jump=ph.jump, run=ph.run, direction=ph.direction)
    elif mode == "ladder":
        res = ladder(level)
    elif mode == "topdown":
        res = topdown(level, push=ph.push, wade=ph.wade)
    else:
        raise ValueError(f"unknown check mode {mode!r}")
    res.physics = ph
    return res


def _platformer_run(level: Level, ph: Physics) -> Check:
    """A segment entered from the one before: a ledge one tile before its first column (left to
    right) or a floor under its bottom row (climbed)."""
    solid, walk, top = level.mask("solid"), level.mask("walkable"), level.mask("solidtop")
    if ph.direction == "up":
        floor = np.ones((1, level.width), dtype=bool)
        res = platformer(level, jump=ph.jump, run=ph.run, direction="up", start_cols=1,
                         solid=np.concatenate([solid, floor]),
                         walk=np.concatenate([walk, ~floor]),
                         top=np.concatenate([top, ~floor]))
        res.path = [(x, y) for x, y in res.path if y < level.height]
        res.furthest = max(0, res.furthest - 1)
    else:
        lead_solid = np.zeros((level.height, 1), dtype=bool)
        lead_solid[-1] = True
        res = platformer(level, jump=ph.jump, run=ph.run, start_cols=1,
                         solid=np.concatenate([lead_solid, solid], axis=1),
                         walk=np.concatenate([~lead_solid, walk], axis=1),
                         top=np.concatenate([np.zeros_like(lead_solid), top], axis=1))
        res.path = [(x - 1, y) for x, y in res.path if x >= 1]
        res.furthest = max(0, res.furthest - 1)
    if not res.playable and start_cells(solid | top, walk, 3, ph.direction):
        strict = platformer(level, jump=ph.jump, run=ph.run, direction=ph.direction)
        if strict.playable or strict.furthest > res.furthest:
            return strict  # no worse than the strict check
    res.details["runway"] = True
    return res


# ----------------------------------------------------------------------------------------------
# Platformer: A* with jump arcs
# ----------------------------------------------------------------------------------------------
def start_cells(ground: np.ndarray, walk: np.ndarray, start_cols: int = 3,
                direction: str = "right") -> list[tuple[int, int]]:
    """Standing cells (``walk`` over ``ground``) where a level starts: in the first column that
    has any, within the first ``start_cols`` (left to right), or in the lowest row that has
    any, within the last ``start_cols`` rows above the bottom one (climbed)."""
    h, w = ground.shape
    stand = walk[:-1] & ground[1:]
    if direction == "up":
        for y in range(h - 2, max(-1, h - 2 - start_cols), -1):
            xs = np.nonzero(stand[y])[0]
            if len(xs):
                return [(int(x), y) for x in xs]
        return []
    for x in range(min(start_cols, w)):
        ys = np.nonzero(stand[:, x])[0]
        if len(ys):
            return [(x, int(y)) for y in ys]
    return []


def platformer(level: Level, jump: int = 4, apex: int = 2, start_cols: int = 3,
               solid: np.ndarray | None = None, walk: np.ndarray | None = None,
               removable: np.ndarray | None = None, bridges: bool = False, run: int = 1,
               direction: str = "right", top: np.ndarray | None = None) -> Check:
    """A* from the start edge to the goal edge; see the module docstring for the moves.

    ``direction``: ``"right"`` (from the first columns to the last one) or ``"up"`` (from the
    bottom rows to the top row that has room to stand in). ``run``: tiles the player moves
    sideways for each tile of flight. ``top``: solid-top platforms (stood on, jumped up
    through); by default the level's ``solidtop`` tiles.

    With ``removable`` (cells the agent may clear) and ``bridges`` (it may place a block under a
    step into the air), each such edit costs more than any walk, so the search returns the path
    needing the fewest tile changes: that is how :func:`repair.repair` works. The edits are in
    ``check.details["edits"]`` as ``(x, y, "remove" | "place")``.
    """
    if solid is None:
        solid = level.mask("solid")
    if walk is None:
        walk = level.mask("walkable")
    if top is None:
        top = level.mask("solidtop") if level.grid.shape == solid.shape else \
            np.zeros_like(solid)
    h, w = solid.shape
    n = h * w
    up_dir = direction == "up"
    edit = n * 8  # one edit outweighs any path without edits
    ok = walk if removable is None else (walk | removable)
    wk = ok.ravel().tolist()
    fk = (ok & ~top).ravel().tolist()  # cells a falling player may enter (not a platform top)
    ex = (np.where(walk, 0, edit) if removable is not None else np.zeros((h, w), dtype=np.int64)
          ).ravel().tolist()
    hang = jump  # first apex state; apex states drift sideways before falling
    bridge = hang + apex  # standing on a block the repair placed
    ground = np.zeros_like(solid)
    ground[:-1] = solid[1:] | top[1:]
    seeds = [(y * w + x, ex[y * w + x]) for x, y in
             start_cells(solid | top, ok, start_cols, direction)]
    if not seeds and bridges:  # nowhere to stand: the repair may place a first block
        if up_dir:
            seeds = [(bridge * n + (h - 2) * w + x, edit + ex[(h - 2) * w + x])
                     for x in range(w) if h > 1 and wk[(h - 2) * w + x]]
        else:
            seeds = [(bridge * n + y * w, edit + ex[y * w] + (h - 2 - y))
                     for y in range(h - 1) if wk[y * w]]
    if not seeds:
        where = "the bottom rows" if up_dir else "the first columns"
        return Check(False, "platformer", [], f"nowhere to stand in {where}", 0)
    gr = ground.ravel().tolist()
    goal_x = w - 1
    goal_y = int(np.argmax(walk.any(axis=1))) if walk.any() else 0  # the top row with room

    cells = np.arange(n)
    hv = ((cells // w - goal_y) if up_dir else (goal_x - cells % w)).tolist()  # to the goal

    parent: dict[int, int] = {}
    gbest: dict[int, int] = {}
    heap: list[tuple[int, int, int]] = []
    for s, cost in seeds:
        gbest[s] = cost
        parent[s] = -1
        heapq.heappush(heap, (hv[s % n] + cost, cost, s))
    best_state = seeds[0][0]
    best = hv[best_state % n]
    push = heapq.heappush
    pop = heapq.heappop
    bridged = bridge * n
    while heap:
        _, g, s = pop(heap)
        if g != gbest.get(s):
            continue
        j, i = divmod(s, n)
        y, x = divmod(i, w)
        d_now = hv[i]
        if d_now < best:
            best, best_state = d_now, s
        if d_now == 0:
            return _result(True, parent, s, n, w, bridge, walk, "", _progress(s % n, w, h, up_dir),
                           direction)
        moves: list[int] = []  # new states
        if (j == 0 and gr[i]) or j == bridge:  # standing
            if x > 0 and wk[i - 1]:
                moves.append(i - 1)
                if bridges and y + 1 < h and not gr[i - 1]:
                    moves.append(bridge * n + i - 1)
            if x < goal_x and wk[i + 1]:
                moves.append(i + 1)
                if bridges and y + 1 < h and not gr[i + 1]:
                    moves.append(bridge * n + i + 1)
            if y > 0:
                up = i - w
                nj = (jump - 1 if jump > 1 else hang) * n
                if wk[up]:
                    moves.append(nj + up)
                    # a running jump: the row left behind must be clear too
                    if run == 1:  # the common case, unrolled (the search's hot loop)
                        if x > 0 and wk[up - 1] and wk[i - 1]:
                            moves.append(nj + up - 1)
                        if x < goal_x and wk[up + 1] and wk[i + 1]:
                            moves.append(nj + up + 1)
                    else:
                        for sg, reach in ((-1, min(run, x)), (1, min(run, goal_x - x))):
                            for d in range(sg, sg * (reach + 1), sg):
                                if not (wk[up + d] and wk[i + d]):
                                    break
                                moves.append(nj + up + d)
        else:
            if 0 < j < hang and y > 0:  # still rising
                up = i - w
                nj = (j - 1 if j > 1 else hang) * n
                if wk[up]:
                    moves.append(nj + up)
                if run == 1:
                    if x > 0 and wk[up - 1] and (wk[up] or wk[i - 1]):
                        moves.append(nj + up - 1)
                    if x < goal_x and wk[up + 1] and (wk[up] or wk[i + 1]):
                        moves.append(nj + up + 1)
                else:
                    for sg, reach in ((-1, min(run, x)), (1, min(run, goal_x - x))):
                        if not reach or not (wk[up] or wk[i + sg]):
                            continue
                        for d in range(sg, sg * (reach + 1), sg):
                            if not wk[up + d]:
                                break
                            moves.append(nj + up + d)
            if j >= hang:  # at the top of the arc: drift sideways before falling
                na = (j + 1 if j + 1 < hang + apex else 0) * n
                if run == 1:
                    if x > 0 and wk[i - 1]:
                        moves.append(na + i - 1)
                    if x < goal_x and wk[i + 1]:
                        moves.append(na + i + 1)
                else:
                    for sg, reach in ((-1, min(run, x)), (1, min(run, goal_x - x))):
                        for d in range(sg, sg * (reach + 1), sg):
                            if not wk[i + d]:
                                break
                            moves.append(na + i + d)
            if y + 1 < h:  # falling (or releasing the jump); a platform top catches the player
                dn = i + w
                if fk[dn]:
                    moves.append(dn)
                if run == 1:
                    if x > 0 and fk[dn - 1] and (fk[dn] or wk[i - 1]):
                        moves.append(dn - 1)
                    if x < goal_x and fk[dn + 1] and (fk[dn] or wk[i + 1]):
                        moves.append(dn + 1)
                else:
                    for sg, reach in ((-1, min(run, x)), (1, min(run, goal_x - x))):
                        if not reach or not (fk[dn] or wk[i + sg]):
                            continue
                        for d in range(sg, sg * (reach + 1), sg):
                            if not fk[dn + d]:
                                break
                            moves.append(dn + d)
            if j > 0 and gr[i]:  # a jump that touched ground can stand there
                moves.append(i)
        for ns in moves:
            ni = ns % n
            g2 = g + 1 + ex[ni] + (edit if ns >= bridged else 0)
            if g2 < gbest.get(ns, 1 << 60):
                gbest[ns] = g2
                parent[ns] = s
                push(heap, (g2 + hv[ni], g2, ns))
    reached = _progress(best_state % n, w, h, up_dir)
    if up_dir:
        row = (best_state % n) // w
        reason = (f"stuck at row {row} of {h} (counting from the top), {row - goal_y} rows "
                  "below the top")
    else:
        reason = f"stuck at column {reached} of {w}"
    return _result(False, parent, best_state, n, w, bridge, walk, reason, reached, direction)


def _progress(i: int, w: int, h: int, up_dir: bool) -> int:
    """How far cell ``i`` is along the level: its column, or rows above the bottom row."""
    return (h - 1 - i // w) if up_dir else i % w


def _result(ok: bool, parent: dict[int, int], s: int, n: int, w: int, bridge: int,
            walk: np.ndarray, reason: str, furthest: int, direction: str = "right") -> Check:
    states = []
    while s != -1:
        states.append(s)
        s = parent[s]
    states.reverse()
    path: list[tuple[int, int]] = []
    edits: list[tuple[int, int, str]] = []
    for st in states:
        j, i = divmod(st, n)
        x, y = i % w, i // w
        if not walk[y, x] and (x, y, "remove") not in edits:
            edits.append((x, y, "remove"))
        if j == bridge and (x, y + 1, "place") not in edits:
            edits.append((x, y + 1, "place"))
        if not path or path[-1] != (x, y):
            path.append((x, y))
    check = Check(ok, "platformer", path, reason, furthest)
    if direction == "up":
        check.details["direction"] = "up"
    if edits:
        check.details["edits"] = edits
    return check


# ----------------------------------------------------------------------------------------------
# Ladder platformer (Lode Runner): ladders, ropes, falling, digging
# ----------------------------------------------------------------------------------------------
def ladder(level: Level) -> Check:
    lg = level.legend
    solid = level.mask("solid")
    walk = level.mask("walkable")
    climb = level.mask("climbable")
    rope = level.mask("rope")
    dig = level.mask("diggable")
    h, w = solid.shape
    gold = {(int(x), int(y)) for y, x in zip(*np.nonzero(
        level.mask("gold") | level.mask("pickupable") | level.mask("collectable")), strict=True)}
    spawn = np.argwhere(level.mask("spawn") | level.mask("start"))
    if len(spawn):
        start = (int(spawn[0][1]), int(spawn[0][0]))
    else:
        stand = np.argwhere(walk[:-1] & (solid[1:] | climb[1:]))
        if not len(stand):
            return Check(False, "ladder", [], "no spawn tile and nowhere to stand", 0)
        start = (int(stand[-1][1]), int(stand[-1][0]))
    parent: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        below_solid = y + 1 >= h or solid[y + 1, x]
        supported = below_solid or climb[y, x] or (y + 1 < h and climb[y + 1, x] and
                                                   not rope[y + 1, x])
        nxt: list[tuple[int, int]] = []
        if not supported:
            if y + 1 < h and walk[y + 1, x]:
                nxt.append((x, y + 1))
        else:
            for dx in (-1, 1):
                if 0 <= x + dx < w and walk[y, x + dx]:
                    nxt.append((x + dx, y))
                # dig the floor diagonally below, then drop into the hole
                if 0 <= x + dx < w and y + 1 < h and dig[y + 1, x + dx] and (
                        walk[y, x + dx] or dig[y, x + dx]):
                    nxt.append((x + dx, y + 1))
            if y + 1 < h and dig[y + 1, x]:  # dig a staircase straight down
                nxt.append((x, y + 1))
            if climb[y, x] and not rope[y, x] and y > 0 and walk[y - 1, x]:
                nxt.append((x, y - 1))
            if y + 1 < h and walk[y + 1, x]:
                nxt.append((x, y + 1))
        for c in nxt:
            if c not in parent:
                parent[c] = (x, y)
                queue.append(c)
    # a dug cell holds its tile: the agent may stand "in" a diggable tile only transiently
    missing = [g for g in gold if g not in parent]
    target = max((g for g in gold if g in parent), key=lambda g: _depth(parent, g), default=None)
    path = _walk_back(parent, target) if target else [start]
    ok = not missing and bool(gold)
    reason = "" if ok else (f"{len(missing)} of {len(gold)} gold unreachable" if gold
                            else "no gold to collect")
    del lg
    return Check(ok, "ladder", path, reason, len(parent),
                 {"gold": len(gold), "gold_reachable": len(gold) - len(missing)})


def _depth(parent: dict[Any, Any], c: Any) -> int:
    d = 0
    while parent[c] is not None:
        c = parent[c]
        d += 1
    return d


def _walk_back(parent: dict[Any, Any], c: Any) -> list[tuple[int, int]]:
    out = []
    while c is not None:
        out.append(c)
        c = parent[c]
    return out[::-1]


# ----------------------------------------------------------------------------------------------
# Top-down: flood fill
# ----------------------------------------------------------------------------------------------
def topdown(level: Level, push: bool = False, wade: int = 0) -> Check:
    """Flood fill (see the module docstring). ``push``: a block with room on two opposite
    sides can be pushed aside, so it does not stop the player; ``wade``: water or lava up to
    that many tiles in a row, between two walkable tiles, can be crossed (Zelda's stepladder)."""
    from scipy import ndimage

    walk = level.mask("walkable")
    doors = level.mask("door")
    if not walk.any():
        return Check(False, "topdown", [], "no walkable tile", 0)
    starts = np.argwhere(level.mask("start") | level.mask("spawn"))
    exits = np.argwhere(level.mask("exit") | level.mask("goal"))
    solid = level.mask("solid")
    extra = door_tunnels(doors, solid)
    if push:
        blocks = solid & (level.mask("block") | level.mask("pushable"))
        extra |= blocks & ((_shift(walk, 0, 1) & _shift(walk, 0, -1)) |
                           (_shift(walk, 1, 0) & _shift(walk, -1, 0)))
    if wade:
        hazard = ~walk & ~solid & ~level.mask("void")
        extra |= crossings(hazard, walk, wade)
    walk = walk | extra
    labels, _ = ndimage.label(walk)
    stairs = level.mask("stair")
    if stairs.sum() > 1:  # stairs lead to one another (Zelda's underground passages)
        linked = np.unique(labels[stairs])
        labels[np.isin(labels, linked)] = linked[0]
    if len(starts):
        sy, sx = (int(v) for v in starts[0])
    else:  # no start tile: the biggest walkable region stands for "where the player is"
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        sy, sx = (int(v) for v in np.argwhere(labels == counts.argmax())[0])
    reach = labels == labels[sy, sx]
    rooms, n_rooms = ndimage.label(walk & ~doors)
    sizes = np.bincount(rooms.ravel(), minlength=n_rooms + 1)
    big = np.nonzero(sizes >= 4)[0]
    big = big[big > 0]
    if not level.legend.find("floor", "door"):  # open terrain: no rooms, only start to exit
        big = big[:0]
    reached = np.unique(rooms[reach & (rooms > 0)])
    unreached = np.setdiff1d(big, reached)
    path: list[tuple[int, int]] = []
    exit_ok = True
    if len(exits):
        ey, ex = (int(v) for v in exits[0])
        exit_ok = bool(reach[ey, ex])
        if exit_ok:
            path = bfs_path(walk, (sx, sy), (ex, ey))
    ok = exit_ok and len(unreached) == 0
    reasons = []
    if not exit_ok:
        reasons.append("the exit cannot be reached from the start")
    if len(unreached):
        reasons.append(f"{len(unreached)} of {len(big)} rooms unreachable")
    return Check(ok, "topdown", path or [(sx, sy)], "; ".join(reasons), int(reach.sum()),
                 {"rooms": int(len(big)), "rooms_reachable": int(len(big) - len(unreached)),
                  "reachable_fraction": round(float(reach.sum() / walk.sum()), 4)})


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[y, x] = mask[y + dy, x + dx]`` (False beyond the edges)."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    ys, yd = slice(max(0, dy), h + min(0, dy)), slice(max(0, -dy), h + min(0, -dy))
    xs, xd = slice(max(0, dx), w + min(0, dx)), slice(max(0, -dx), w + min(0, -dx))
    out[yd, xd] = mask[ys, xs]
    return out


def crossings(hazard: np.ndarray, walk: np.ndarray, longest: int) -> np.ndarray:
    """Hazard cells in a straight run of at most ``longest`` between two walkable cells."""
    out = np.zeros_like(hazard)
    h, w = hazard.shape
    for k in range(1, longest + 1):
        if w > k + 1:  # walk at x, hazard at x+1..x+k, walk at x+k+1
            span = walk[:, :w - k - 1] & walk[:, k + 1:]
            for d in range(1, k + 1):
                span &= hazard[:, d:w - k - 1 + d]
            for d in range(1, k + 1):
                out[:, d:w - k - 1 + d] |= span
        if h > k + 1:
            span = walk[:h - k - 1] & walk[k + 1:]
            for d in range(1, k + 1):
                span &= hazard[d:h - k - 1 + d]
            for d in range(1, k + 1):
                out[d:h - k - 1 + d] |= span
    return out


def door_tunnels(doors: np.ndarray, solid: np.ndarray, reach: int = 4) -> np.ndarray:
    """Solid cells between two facing doors (at most ``reach - 1`` apart): passing a door takes
    the player through the wall to the door opposite, as between Zelda's rooms."""
    out = np.zeros_like(doors)
    h, w = doors.shape
    for k in range(2, reach + 1):
        # horizontal: door at x, door at x+k, solid between
        if w > k:
            between = np.ones((h, w - k), dtype=bool)
            for d in range(1, k):
                between &= solid[:, d:w - k + d]
            pair = doors[:, :w - k] & doors[:, k:] & between
            for d in range(1, k):
                out[:, d:w - k + d] |= pair
        if h > k:
            between = np.ones((h - k, w), dtype=bool)
            for d in range(1, k):
                between &= solid[d:h - k + d, :]
            pair = doors[:h - k, :] & doors[k:, :] & between
            for d in range(1, k):
                out[d:h - k + d, :] |= pair
    return out


def bfs_path(walk: np.ndarray, start: tuple[int, int], goal: tuple[int, int]
             ) -> list[tuple[int, int]]:
    """Shortest 4-connected path over ``walk`` (empty when there is none)."""
    h, w = walk.shape
    wk = walk.ravel().tolist()
    s, g = start[1] * w + start[0], goal[1] * w + goal[0]
    parent = {s: -1}
    q = deque([s])
    while q:
        i = q.popleft()
        if i == g:
            out = []
            while i != -1:
                out.append((i % w, i // w))
                i = parent[i]
            return out[::-1]
        x = i % w
        for j in (i - w if i >= w else -1, i + w if i + w < h * w else -1,
                  i - 1 if x > 0 else -1, i + 1 if x < w - 1 else -1):
            if j >= 0 and wk[j] and j not in parent:
                parent[j] = i
                q.append(j)
    return []
