"""Classic procedural generators: noise terrain, cellular-automata caves, BSP dungeons and
L-system trails and plants. All numpy, all instant, all deterministic per seed.

Each function takes ``(width, height, seed, *, settings...)`` and returns a :class:`Level` with
its own legend (:mod:`.legends`). The settings an artist chooses have no defaults here: they live
once, in the generate job's params (``plugins/levels/params.py``); only the knobs nobody sets
from outside (birth/survive rules, mountain height) keep theirs. ``iterations=None`` and
``step=None`` mean the L-system preset's own values (:data:`PRESETS`).

Top-down maps get a start (``<``) and an exit (``>``) placed as far apart as the walkable area
allows, so the flood-fill check has something to prove.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from studio.errors import UserError

from . import legends
from .level import Level


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed) & 0xFFFFFFFFFFFF))


def _check_size(width: int, height: int, lo: int = 4, hi: int = 2048) -> None:
    if not (lo <= width <= hi and lo <= height <= hi):
        raise UserError(f"map size must be between {lo} and {hi} tiles a side, "
                        f"not {width}x{height}")


# ----------------------------------------------------------------------------------------------
# Noise
# ----------------------------------------------------------------------------------------------
def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin(height: int, width: int, period: float, rng: np.random.Generator) -> np.ndarray:
    """Gradient (Perlin) noise, roughly in [-0.7, 0.7], with features ``period`` tiles apart."""
    period = max(1.0, float(period))
    gy = int(math.ceil(height / period)) + 2
    gx = int(math.ceil(width / period)) + 2
    ang = rng.uniform(0.0, 2 * math.pi, (gy, gx))
    gvy, gvx = np.sin(ang), np.cos(ang)
    ys = np.arange(height) / period
    xs = np.arange(width) / period
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        iy = (y0 + dy)[:, None]
        ix = (x0 + dx)[None, :]
        return gvx[iy, ix] * (fx - dx) + gvy[iy, ix] * (fy - dy)

    u, v = _fade(fx), _fade(fy)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return top * (1 - v) + bottom * v


def fbm(height: int, width: int, scale: float, seed: int, octaves: int = 4,
        persistence: float = 0.5, lacunarity: float = 2.0) -> np.ndarray:
    """Fractal noise (octaves of Perlin), normalised to [0, 1]."""
    rng = _rng(seed)
    total = np.zeros((height, width))
    amp, period, norm = 1.0, float(scale), 0.0
    for _ in range(max(1, int(octaves))):
        total += amp * perlin(height, width, period, rng)
        norm += amp
        amp *= persistence
        period = max(1.0, period / lacunarity)
    total /= norm
    lo, hi = total.min(), total.max()
    return (total - lo) / (hi - lo) if hi > lo else np.zeros_like(total)


def terrain(width: int, height: int, seed: int, *, scale: float, octaves: int,
            sea_level: float, island: bool, mountains: float = 0.78,
            moisture_scale: float = 32.0) -> Level:
    """A top-down biome map from an elevation and a moisture noise field.

    Deep water below ``sea_level``, then shallows, beach, grass or forest (by moisture), rock above
    ``mountains`` and snow on the peaks. ``island`` lowers the edges so land sits in the middle.
    """
    _check_size(width, height)
    e = fbm(height, width, scale, seed, octaves)
    if island:
        yy, xx = np.mgrid[0:height, 0:width]
        d = np.maximum(np.abs(2 * xx / max(1, width - 1) - 1), np.abs(2 * yy / max(1, height - 1)
                                                                       - 1))
        e = np.clip(e * 0.65 + (1 - d ** 2) * 0.45 - 0.1, 0, 1)
    m = fbm(height, width, moisture_scale, seed + 7919, 3)
    lg = legends.TERRAIN
    grid = np.full((height, width), ord('"'), dtype=np.uint8)
    grid[m > 0.58] = ord("T")
    grid[(m < 0.22) & (e < 0.6)] = ord(",")
    grid[e < sea_level + 0.09] = ord(",")
    grid[e < sea_level + 0.04] = ord("w")
    grid[e < sea_level] = ord("~")
    grid[e > mountains] = ord("^")
    grid[e > mountains + (1 - mountains) * 0.6] = ord("*")
    level = Level(grid, lg, "terrain")
    _place_start_exit(level)
    return level


# ----------------------------------------------------------------------------------------------
# Caves
# ----------------------------------------------------------------------------------------------
def _neighbours8(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask.astype(np.int8), 1, constant_values=1)
    h, w = mask.shape
    n = np.zeros((h, w), dtype=np.int8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            n += p[dy:dy + h, dx:dx + w]
    return n


def caves(width: int, height: int, seed: int, *, fill: float, steps: int,
          birth: int = 5, survive: int = 4) -> Level:
    """Cellular-automata caves: random rock, then ``steps`` rounds of "a cell becomes rock with
    ``birth`` or more rock neighbours and stays rock with ``survive`` or more". Pockets cut off
    from the biggest cave are filled in, so every floor tile is reachable."""
    _check_size(width, height, 8)
    if not 0.0 < fill < 1.0:
        raise UserError("cave fill must be between 0 and 1")
    from scipy import ndimage

    rng = _rng(seed)
    for _attempt in range(8):
        wall = rng.random((height, width)) < fill
        for _ in range(max(0, int(steps))):
            nb = _neighbours8(wall)
            wall = np.where(wall, nb >= survive, nb >= birth)
        wall[0, :] = wall[-1, :] = True
        wall[:, 0] = wall[:, -1] = True
        labels, count = ndimage.label(~wall)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        keep = labels == sizes.argmax()
        if keep.sum() >= 0.15 * width * height:
            break
    else:
        raise UserError("these cave settings leave almost no open space: lower the fill")
    grid = np.where(keep, ord("."), ord("#")).astype(np.uint8)
    level = Level(grid, legends.CAVE, "cave")
    _place_start_exit(level)
    return level


def regrow_caves(level: Level, rect: tuple[int, int, int, int], seed: int, *, fill: float,
                 steps: int, birth: int = 5, survive: int = 4) -> np.ndarray:
    """Re-run the automaton inside ``rect`` with the rest of the map as its boundary, so the new
    rock joins the old seamlessly. Returns the new grid (start/exit are re-placed by the caller)."""
    x0, y0, x1, y1 = rect
    rng = _rng(seed)
    wall = level.mask("solid")
    inside = np.zeros_like(wall)
    inside[y0:y1, x0:x1] = True
    wall = np.where(inside, rng.random(wall.shape) < fill, wall)
    for _ in range(max(0, int(steps))):
        nb = _neighbours8(wall)
        wall = np.where(inside, np.where(wall, nb >= survive, nb >= birth), wall)
    floor = ord(level.legend.empty)
    solid = ord(level.legend.ground)
    out = level.grid.copy()
    out[inside] = np.where(wall[inside], solid, floor)
    return out


# ----------------------------------------------------------------------------------------------
# BSP dungeons
# ----------------------------------------------------------------------------------------------
def dungeon(width: int, height: int, seed: int, *, min_room: int, max_room: int,
            depth: int) -> Level:
    """Binary space partitioning: split the map recursively, put a room in each leaf, join
    sibling subtrees with L-shaped corridors (so the dungeon is connected by construction), and
    mark doorways where corridors pierce room walls."""
    _check_size(width, height, 8)
    if min_room < 2 or max_room < min_room:
        raise UserError("room sizes: need 2 <= min_room <= max_room")
    rng = _rng(seed)
    floor = np.zeros((height, width), dtype=bool)
    room_mask = np.zeros((height, width), dtype=bool)
    rooms: list[tuple[int, int, int, int]] = []
    leaf = min_room + 2

    def split(x0: int, y0: int, x1: int, y1: int, d: int) -> list[int]:
        w, h = x1 - x0, y1 - y0
        can_v = w >= 2 * leaf
        can_h = h >= 2 * leaf
        if d <= 0 or not (can_v or can_h) or (w <= max_room + 2 and h <= max_room + 2
                                              and rng.random() < 0.25):
            rw = int(rng.integers(min_room, min(max_room, w - 2) + 1)) if w - 2 >= min_room \
                else max(1, w - 2)
            rh = int(rng.integers(min_room, min(max_room, h - 2) + 1)) if h - 2 >= min_room \
                else max(1, h - 2)
            rx = x0 + 1 + int(rng.integers(0, max(1, w - rw - 1)))
            ry = y0 + 1 + int(rng.integers(0, max(1, h - rh - 1)))
            floor[ry:ry + rh, rx:rx + rw] = True
            room_mask[ry:ry + rh, rx:rx + rw] = True
            rooms.append((rx, ry, rw, rh))
            return [len(rooms) - 1]
        vertical = can_v and (not can_h or (w > h if abs(w - h) > 2 else rng.random() < 0.5))
        if vertical:
            cut = int(rng.integers(x0 + leaf, x1 - leaf + 1))
            a = split(x0, y0, cut, y1, d - 1)
            b = split(cut, y0, x1, y1, d - 1)
        else:
            cut = int(rng.integers(y0 + leaf, y1 - leaf + 1))
            a = split(x0, y0, x1, cut, d - 1)
            b = split(x0, cut, x1, y1, d - 1)
        # join the closest pair of rooms across the cut
        best = None
        for i in a:
            ci = _centre(rooms[i])
            for j in b:
                cj = _centre(rooms[j])
                dist = abs(ci[0] - cj[0]) + abs(ci[1] - cj[1])
                if best is None or dist < best[0]:
                    best = (dist, ci, cj)
        assert best is not None
        _, (ax, ay), (bx, by) = best
        if rng.random() < 0.5:
            floor[ay, min(ax, bx):max(ax, bx) + 1] = True
            floor[min(ay, by):max(ay, by) + 1, bx] = True
        else:
            floor[min(ay, by):max(ay, by) + 1, ax] = True
            floor[by, min(ax, bx):max(ax, bx) + 1] = True
        return a + b

    split(0, 0, width, height, int(depth))
    floor[0, :] = floor[-1, :] = False
    floor[:, 0] = floor[:, -1] = False
    grid = np.where(floor, ord("."), ord("#")).astype(np.uint8)
    # doorways: corridor cells next to a room, flanked by wall on both sides across the passage
    corridor = floor & ~room_mask
    near_room = np.zeros_like(floor)
    near_room[1:] |= room_mask[:-1]
    near_room[:-1] |= room_mask[1:]
    near_room[:, 1:] |= room_mask[:, :-1]
    near_room[:, :-1] |= room_mask[:, 1:]
    wall = ~floor
    flank_h = np.zeros_like(floor)
    flank_v = np.zeros_like(floor)
    flank_h[:, 1:-1] = wall[:, :-2] & wall[:, 2:]
    flank_v[1:-1, :] = wall[:-2, :] & wall[2:, :]
    doors = corridor & near_room & (flank_h | flank_v)
    grid[doors] = ord("+")
    level = Level(grid, legends.DUNGEON, "dungeon")
    sx, sy = _centre(rooms[int(rng.integers(0, len(rooms)))])
    _place_start_exit(level, start=(sx, sy), exits_in=[_centre(r) for r in rooms])
    level.meta["rooms"] = len(rooms)
    return level


def _centre(room: tuple[int, int, int, int]) -> tuple[int, int]:
    x, y, w, h = room
    return (x + w // 2, y + h // 2)


# ----------------------------------------------------------------------------------------------
# L-systems
# ----------------------------------------------------------------------------------------------
_DIRS8 = ((1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1))  # E, NE, N ...

PRESETS: dict[str, dict[str, object]] = {
    # branching forest trails seen from above
    "trails": {"axiom": "X", "angle": 90, "step": 3, "iterations": 4,
               "rules": {"X": ["F[+X]F[-X]+X", "F[-X]F[+X]-X", "F[+X][-X]FX", "FX"],
                         "F": ["FF", "F"]}},
    # plants seen from the side: trunks, with leaf platforms at the branch tips
    "plants": {"axiom": "X", "angle": 45, "step": 2, "iterations": 3,
               "rules": {"X": ["F[+X][-X]FX", "F[-X]FX", "F[+X]FX", "FX"],
                         "F": ["FF", "F"]}},
}


def expand(axiom: str, rules: dict[str, list[str]], iterations: int,
           rng: np.random.Generator, limit: int = 50_000) -> str:
    """Rewrite ``axiom``; a symbol with several productions picks one at random (stochastic
    L-system), so each seed grows a different plant or trail network."""
    s = axiom
    for _ in range(max(0, int(iterations))):
        out = []
        for ch in s:
            prods = rules.get(ch)
            out.append(ch if not prods else prods[int(rng.integers(0, len(prods)))])
        s = "".join(out)
        if len(s) > limit:
            raise UserError(f"the L-system grew past {limit} symbols: use fewer iterations")
    return s


def turtle(commands: str, start: tuple[int, int], heading: int, angle: int, step: int,
           draw: callable, tip: callable | None = None) -> None:  # type: ignore[valid-type]
    """Walk ``commands`` on the grid: F moves ``step`` tiles drawing, + and - turn by ``angle``
    (a multiple of 45 degrees), [ and ] push and pop the position; ``tip`` is called where a
    branch ends."""
    turn = max(1, int(angle) // 45)
    x, y, h = start[0], start[1], heading
    stack: list[tuple[int, int, int]] = []
    drawn_since_push = False
    for ch in commands:
        if ch == "F":
            dx, dy = _DIRS8[h % 8]
            for _ in range(step):
                x, y = x + dx, y + dy
                draw(x, y)
            drawn_since_push = True
        elif ch == "+":
            h += turn
        elif ch == "-":
            h -= turn
        elif ch == "[":
            stack.append((x, y, h))
            drawn_since_push = False
        elif ch == "]":
            if tip is not None and drawn_since_push:
                tip(x, y)
            if stack:
                x, y, h = stack.pop()
            drawn_since_push = False
    if tip is not None:
        tip(x, y)


def lsystem(width: int, height: int, seed: int, *, preset: str, iterations: int | None,
            step: int | None = None) -> Level:
    """Grow an L-system on the map: ``trails`` carves a branching path network through forest
    (top-down, start on the left, exit at the farthest reachable trail end); ``plants`` grows
    trees from the ground of a side-view level whose leaf tips are platforms."""
    _check_size(width, height, 8)
    if preset not in PRESETS:
        raise UserError(f"unknown L-system preset {preset!r} (choose {', '.join(PRESETS)})")
    p = PRESETS[preset]
    rng = _rng(seed)
    iters = int(iterations if iterations is not None else p["iterations"])  # type: ignore[arg-type]
    stp = max(1, int(step if step is not None else p["step"]))  # type: ignore[arg-type]
    rules: dict[str, list[str]] = p["rules"]  # type: ignore[assignment]
    if preset == "trails":
        grid = np.full((height, width), ord("T"), dtype=np.uint8)
        carve = np.zeros((height, width), dtype=bool)

        def draw(x: int, y: int) -> None:
            if 0 < x < width - 1 and 0 < y < height - 1:
                carve[y, x] = True

        start = (1, height // 2)
        carve[start[1], start[0]] = True
        roots = max(1, height // 24)
        for r in range(roots):
            y = int((r + 1) * height / (roots + 1))
            cmd = expand(str(p["axiom"]), rules, iters, rng)
            turtle(cmd, (1, y), 0, int(p["angle"]), stp, draw)  # type: ignore[arg-type]
            carve[min(y, start[1]):max(y, start[1]) + 1, 1] = True
        # trails that left the map and came back are cut off: keep what the start reaches
        carve &= bfs_distance(carve, start) >= 0
        grid[carve] = ord(".")
        level = Level(grid, legends.TRAILS, "trails")
        _place_start_exit(level, start=start)
        return level
    # plants: a side view with ground and trees
    grid = np.full((height, width), ord("-"), dtype=np.uint8)
    ground = height - 2
    grid[ground:, :] = ord("X")
    trunk = np.zeros((height, width), dtype=bool)
    leaves = np.zeros((height, width), dtype=bool)

    def draw_t(x: int, y: int) -> None:
        if 0 <= x < width and 0 <= y < ground:
            trunk[y, x] = True

    def leaf(x: int, y: int) -> None:
        if 1 <= y < ground - 2:
            leaves[y, max(0, x - 1):min(width, x + 2)] = True

    x = int(rng.integers(2, 6))
    while x < width - 2:
        cmd = expand(str(p["axiom"]), rules, iters, rng)
        turtle(cmd, (x, ground), 2, int(p["angle"]), stp, draw_t, leaf)  # type: ignore[arg-type]
        x += int(rng.integers(6, 12))
    grid[trunk] = ord("|")
    grid[leaves] = ord("L")
    return Level(grid, legends.PLANTS, "plants")


# ----------------------------------------------------------------------------------------------
# Start and exit
# ----------------------------------------------------------------------------------------------
def bfs_distance(walk: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """4-connected step distance from ``start`` over ``walk`` (-1 where unreachable)."""
    h, w = walk.shape
    dist = np.full(h * w, -1, dtype=np.int64)
    wk = walk.ravel().tolist()
    s = start[1] * w + start[0]
    dist_l = dist.tolist()
    dist_l[s] = 0
    q = deque([s])
    while q:
        i = q.popleft()
        d = dist_l[i] + 1
        x = i % w
        for j in (i - w, i + w, i - 1 if x > 0 else -1, i + 1 if x < w - 1 else -1):
            if 0 <= j < h * w and wk[j] and dist_l[j] < 0:
                dist_l[j] = d
                q.append(j)
    return np.asarray(dist_l, dtype=np.int64).reshape(h, w)


def _place_start_exit(level: Level, start: tuple[int, int] | None = None,
                      exits_in: list[tuple[int, int]] | None = None) -> None:
    """Start at ``start`` (else the walkable tile nearest the left edge), exit at the reachable
    tile (or candidate) farthest from it."""
    lg = level.legend
    s_code, e_code = ord(lg.first("start") or "<"), ord(lg.first("exit") or ">")
    grid = level.grid
    grid[(grid == s_code) | (grid == e_code)] = ord(lg.empty)
    walk = level.mask("walkable")
    if not walk.any():
        raise UserError("the map has no walkable tile to start on: change the settings")
    if start is None or not walk[start[1], start[0]]:
        from scipy import ndimage

        labels, _ = ndimage.label(walk)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        main = labels == sizes.argmax()  # start in the biggest walkable region
        cols = np.nonzero(main.any(axis=0))[0]
        x = int(cols[0])
        ys = np.nonzero(main[:, x])[0]
        start = (x, int(ys[len(ys) // 2]))
    dist = bfs_distance(walk, start)
    if exits_in:
        cands = [c for c in exits_in if dist[c[1], c[0]] >= 0]
        end = max(cands, key=lambda c: dist[c[1], c[0]]) if cands else None
    else:
        end = None
    if end is None:
        flat = int(dist.argmax())
        end = (flat % level.width, flat // level.width)
    grid[start[1], start[0]] = s_code
    if end != start:
        grid[end[1], end[0]] = e_code
