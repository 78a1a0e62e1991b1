"""Wave Function Collapse, overlapping model, with backtracking, restarts and pinned tiles.

Learned from one example map: every ``N x N`` window of the example is a pattern, weighted by how
often it occurs. The output is a grid of pattern cells; two neighbouring cells must hold patterns
that agree where they overlap. We repeatedly collapse the most constrained cell (fewest patterns
left, random tie-break), choosing a pattern by frequency, and propagate.

Speed: each cell's remaining patterns are one Python ``int`` used as a bitset. Propagation needs
"every pattern compatible with *any* pattern of this set" per direction: for sparse sets we OR the
per-pattern masks of the set bits, for dense sets we OR precomputed per-byte unions (a 256-entry
table per 8 patterns), so each step costs a handful of big-int operations instead of a loop over
patterns. A 100x14 level from mario-1-1 takes a few tens of milliseconds.

Never a contradiction in the output: a contradiction undoes the last choice (snapshots of the
wave are cheap list copies), bans that pattern there and carries on; after ``max_backtracks`` the
run restarts with a fresh random stream, and only when every restart fails does it raise
:class:`WfcError` (with pinned tiles the user painted, that usually means they cannot be
reconciled with the example).

Side-scrollers keep their rows: with ``anchor="rows"`` (the default when the output is as tall as
the example) a cell in pattern row ``r`` may only hold patterns seen in row ``r`` of the example,
so ground stays at the bottom; ``anchor="edges"`` only pins the top and bottom rows' patterns.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from studio.errors import UserError

# neighbour directions (dy, dx)
DIRS = ((0, 1), (1, 0), (0, -1), (-1, 0))


class WfcError(UserError):
    """Every attempt ended in a contradiction."""


def _mask_of(bools: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bools.astype(bool), bitorder="little").tobytes(), "little")


@dataclass
class OverlapModel:
    """Patterns, weights and adjacency bitsets learned from one example grid."""

    n: int
    patterns: np.ndarray  # (P, n, n) uint8
    weights: list[float]
    row_masks: list[int]  # per example pattern row: patterns seen there
    row_weights: list[list[float]]  # per example pattern row: how often each pattern occurs there
    compat: list[list[int]]  # [dir][pattern] -> mask of patterns allowed at that neighbour
    tables: list[list[list[int]]] = field(default_factory=list)  # [dir][chunk][byte] -> union
    example_height: int = 0
    symmetry: int = 1
    _has: dict[tuple[int, int, int], int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.weights)

    @classmethod
    def learn(cls, example: np.ndarray, n: int = 3, symmetry: int = 1) -> OverlapModel:
        ex = np.ascontiguousarray(example, dtype=np.uint8)
        h, w = ex.shape
        if h < n or w < n:
            raise UserError(f"the example map ({w}x{h}) is smaller than the pattern size {n}")
        variants = [ex]
        if symmetry >= 2:
            variants.append(ex[:, ::-1])
        if symmetry >= 8:
            variants = []
            for k in range(4):
                r = np.rot90(ex, k)
                variants += [r, r[:, ::-1]]
        patches, rows = [], []
        for k, v in enumerate(variants):  # variant 0 is the example as given
            win = np.lib.stride_tricks.sliding_window_view(v, (n, n))
            ph = win.shape[0]
            patches.append(win.reshape(-1, n * n))
            rows.append(np.repeat(np.arange(ph), win.shape[1]) if k == 0 else
                        np.full(win.shape[0] * win.shape[1], -1))
        flat = np.concatenate(patches)
        row_of = np.concatenate(rows)
        uniq, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        p_count = len(uniq)
        pats = uniq.reshape(p_count, n, n)
        ph = h - n + 1
        row_masks, row_weights = [], []
        for r in range(ph):
            seen = np.bincount(inverse[row_of == r], minlength=p_count)
            row_masks.append(_mask_of(seen > 0))
            row_weights.append([float(v) for v in seen])
        compat: list[list[int]] = []
        for dy, dx in DIRS:
            # q at offset (dy, dx) from p agrees where they overlap
            a = pats[:, max(0, dy):n + min(0, dy), max(0, dx):n + min(0, dx)]
            b = pats[:, max(0, -dy):n + min(0, -dy), max(0, -dx):n + min(0, -dx)]
            a2 = a.reshape(p_count, -1)
            b2 = b.reshape(p_count, -1)
            agree = (a2[:, None, :] == b2[None, :, :]).all(axis=2)
            compat.append([_mask_of(agree[p]) for p in range(p_count)])
        model = cls(n, pats, [float(c) for c in counts], row_masks, row_weights, compat,
                    example_height=h, symmetry=symmetry)
        model.tables = [model._byte_tables(compat[d]) for d in range(4)]
        return model

    @staticmethod
    def _byte_tables(masks: list[int]) -> list[list[int]]:
        tables = []
        for k in range(0, len(masks), 8):
            table = [0] * 256
            for b in range(1, 256):
                low = (b & -b).bit_length() - 1
                m = masks[k + low] if k + low < len(masks) else 0
                table[b] = table[b & (b - 1)] | m
            tables.append(table)
        return tables

    def has_tile(self, oy: int, ox: int, code: int) -> int:
        """Mask of patterns whose tile at offset ``(oy, ox)`` is ``code``."""
        key = (oy, ox, code)
        m = self._has.get(key)
        if m is None:
            m = self._has[key] = _mask_of(self.patterns[:, oy, ox] == code)
        return m


@lru_cache(maxsize=8)
def _cached_model(data: bytes, shape: tuple[int, int], n: int, symmetry: int) -> OverlapModel:
    return OverlapModel.learn(np.frombuffer(data, dtype=np.uint8).reshape(shape), n, symmetry)


def learn(example: np.ndarray, n: int = 3, symmetry: int = 1) -> OverlapModel:
    """:meth:`OverlapModel.learn`, cached: live previews re-learn nothing."""
    ex = np.ascontiguousarray(example, dtype=np.uint8)
    return _cached_model(ex.tobytes(), ex.shape, n, symmetry)


@dataclass
class WfcStats:
    attempts: int = 0
    backtracks: int = 0
    decisions: int = 0


def generate(model: OverlapModel, width: int, height: int, seed: int, *,
             pins: dict[tuple[int, int], int] | None = None, anchor: str = "auto",
             max_backtracks: int = 2000, restarts: int = 20, trail_depth: int = 256,
             check: Callable[[], None] | None = None,
             progress: Callable[[int, int], None] | None = None,
             stats: WfcStats | None = None) -> np.ndarray:
    """A ``(height, width)`` grid of tile codes in which every overlap agrees.

    Args:
        pins: ``{(x, y): code}`` tiles that must appear exactly there.
        anchor: ``"rows"``, ``"edges"``, ``"none"`` or ``"auto"`` (rows when the output is as tall
            as the example, else edges; none for rotated/mirrored pattern sets).
        check: called now and then; raise from it to cancel.
        progress: called now and then with ``(decided cells, cells)``.
    Raises:
        WfcError: every restart ran out of backtracks.
    """
    n = model.n
    if width < n or height < n:
        raise UserError(f"WFC output must be at least {n}x{n} tiles")
    ph, pw = height - n + 1, width - n + 1
    cells = ph * pw
    full = (1 << model.count) - 1
    if anchor == "auto":  # rotated patterns have no "up": anchor only plain examples
        anchor = ("none" if model.symmetry > 1 else
                  "rows" if height == model.example_height else "edges")
    base = [full] * cells
    # patterns allowed, and their frequencies, per output pattern row: a row anchored to an
    # example row draws from what that row of the example holds (ground stays at the bottom)
    row_weights: list[list[float]] = [model.weights] * ph
    if anchor in ("rows", "edges"):
        ex_rows = len(model.row_masks)
        for r in range(ph):
            if anchor == "rows" and ph == ex_rows:
                src = r
            elif r == 0:
                src = 0
            elif r == ph - 1:
                src = ex_rows - 1
            else:
                continue
            row_weights[r] = model.row_weights[src]
            m = model.row_masks[src]
            for c in range(r * pw, (r + 1) * pw):
                base[c] &= m
    pinned_cells: list[int] = []
    for (x, y), code in (pins or {}).items():
        if not (0 <= x < width and 0 <= y < height):
            continue
        for py in range(max(0, y - n + 1), min(ph - 1, y) + 1):
            for px in range(max(0, x - n + 1), min(pw - 1, x) + 1):
                c = py * pw + px
                base[c] &= model.has_tile(y - py, x - px, int(code))
                pinned_cells.append(c)
    st = stats or WfcStats()
    rng = random.Random(seed)
    tables = model.tables
    compat = model.compat
    nbr = _neighbours(ph, pw)

    memo: list[dict[int, int]] = [{}, {}, {}, {}]  # the same sets recur: remember unions

    def union(s: int, d: int) -> int:
        cache = memo[d]
        r = 0
        if s.bit_count() <= 12:
            masks = compat[d]
            t = s
            while t:
                low = t & -t
                r |= masks[low.bit_length() - 1]
                t ^= low
        else:
            k = 0
            tab = tables[d]
            t = s
            while t:
                b = t & 255
                if b:
                    r |= tab[k][b]
                t >>= 8
                k += 1
        if len(cache) > 200_000:
            cache.clear()
        cache[s] = r
        return r

    def propagate(wave: list[int], stack: list[int], heap: list[tuple[int, float, int]]) -> bool:
        while stack:
            c = stack.pop()
            s = wave[c]
            for d, nb in nbr[c]:
                old = wave[nb]
                if not old & (old - 1):  # a decided neighbour: one test, no union
                    if not s & compat[(d + 2) % 4][old.bit_length() - 1]:
                        return False
                    continue
                allowed = memo[d].get(s)
                if allowed is None:
                    allowed = union(s, d)
                new = old & allowed
                if new != old:
                    if not new:
                        return False
                    wave[nb] = new
                    stack.append(nb)
                    cnt = new.bit_count()
                    if cnt > 1:
                        heapq.heappush(heap, (cnt, rng.random(), nb))
        return True

    def fresh_heap(wave: list[int]) -> list[tuple[int, float, int]]:
        heap = [(s.bit_count(), rng.random(), c) for c, s in enumerate(wave) if s & (s - 1)]
        heapq.heapify(heap)
        return heap

    for _attempt in range(restarts):
        st.attempts += 1
        wave = list(base)
        if any(s == 0 for s in wave):
            raise WfcError("the pinned tiles cannot all be matched by patterns of the example "
                           "(a pinned tile sits where the example never shows it)")
        if not propagate(wave, list(range(cells)), []):
            if pinned_cells:
                raise WfcError("the pinned tiles cannot be reconciled with the example map: "
                               "remove some pins or paint tiles the example uses together")
            raise WfcError("the example's patterns cannot fill a map of this size")
        heap = fresh_heap(wave)
        # (wave before, cell, chosen pattern); bounded so big maps stay small in memory
        depth = max(8, min(trail_depth, 4_000_000 // max(1, cells)))  # bounded memory
        trail: deque[tuple[list[int], int, int]] = deque(maxlen=depth)
        backtracks = 0
        ok = True
        while True:
            # pick the most constrained undecided cell
            cell = -1
            while heap:
                cnt, _, c = heapq.heappop(heap)
                s = wave[c]
                if s & (s - 1) and s.bit_count() == cnt:
                    cell = c
                    break
            if cell < 0:
                break  # every cell decided
            st.decisions += 1
            if st.decisions % 256 == 0:
                if check is not None:
                    check()
                if progress is not None:
                    progress(sum(1 for v in wave if not v & (v - 1)), cells)
            s = wave[cell]
            weights = row_weights[cell // pw]
            # weighted choice among the set bits
            bits = []
            total = 0.0
            t = s
            while t:
                low = t & -t
                p = low.bit_length() - 1
                bits.append(p)
                total += weights[p]
                t ^= low
            r = rng.random() * total
            choice = bits[-1]
            for p in bits:
                r -= weights[p]
                if r <= 0:
                    choice = p
                    break
            trail.append((list(wave), cell, choice))
            wave[cell] = 1 << choice
            if propagate(wave, [cell], heap):
                continue
            # contradiction: undo choices until a banned alternative survives propagation
            while True:
                backtracks += 1
                st.backtracks += 1
                if not trail or backtracks > max_backtracks:
                    ok = False
                    break
                saved, c, p = trail.pop()
                wave = saved
                wave[c] &= ~(1 << p)
                if wave[c] and propagate(wave, [c], []):
                    heap = fresh_heap(wave)
                    break
            if not ok:
                break
        if ok:
            return _render(model, wave, ph, pw, height, width)
        rng = random.Random(rng.getrandbits(64))
    raise WfcError(f"WFC found no consistent map in {restarts} attempts of up to "
                   f"{max_backtracks} backtracks: try another seed, a larger pattern example, "
                   "or fewer pinned tiles")


def _neighbours(ph: int, pw: int) -> list[list[tuple[int, int]]]:
    out = []
    for c in range(ph * pw):
        y, x = divmod(c, pw)
        lst = []
        for d, (dy, dx) in enumerate(DIRS):
            ny, nx = y + dy, x + dx
            if 0 <= ny < ph and 0 <= nx < pw:
                lst.append((d, ny * pw + nx))
        out.append(lst)
    return out


def _render(model: OverlapModel, wave: list[int], ph: int, pw: int, height: int, width: int
            ) -> np.ndarray:
    chosen = np.array([s.bit_length() - 1 for s in wave], dtype=np.int64).reshape(ph, pw)
    ys = np.arange(height)
    xs = np.arange(width)
    py = np.minimum(ys, ph - 1)
    px = np.minimum(xs, pw - 1)
    pat = chosen[py[:, None], px[None, :]]
    return model.patterns[pat, (ys - py)[:, None], (xs - px)[None, :]]


def is_consistent(model: OverlapModel, grid: np.ndarray) -> bool:
    """True when every ``N x N`` window of ``grid`` is a pattern of the model (what the tests
    check: the output contains no contradiction)."""
    n = model.n
    win = np.lib.stride_tricks.sliding_window_view(grid, (n, n)).reshape(-1, n * n)
    known = {p.tobytes() for p in model.patterns.reshape(model.count, -1)}
    return all(w.tobytes() in known for w in win)
