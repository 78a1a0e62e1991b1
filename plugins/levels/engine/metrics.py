"""Level metrics: how close to the training set, how new, how varied, how hard.

* tile-distribution distance: Jensen-Shannon divergence (base 2, in [0, 1]) between the tile
  histogram of the generated levels and that of the training set (KL is reported too, smoothed).
* novelty: for each generated segment, the fraction of tiles that differ from the *nearest*
  training window of the same size (0: a copy of training data, 1: nothing alike).
* diversity: mean pairwise fraction of differing tiles within a batch.
* features: enemies, gaps (runs of bottom-row columns with no floor), solidity, and so on, which
  the latent search aims at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .level import Legend, Level


def histogram(levels: Sequence[Level], legend: Legend) -> np.ndarray:
    """Normalised tile counts in ``legend`` order."""
    lut = legend.index_lut()
    counts = np.zeros(len(legend), dtype=np.float64)
    for lv in levels:
        idx = lut[lv.grid]
        counts += np.bincount(idx[idx >= 0].ravel(), minlength=len(legend))[:len(legend)]
    total = counts.sum()
    return counts / total if total else counts


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum() if p.sum() else p
    q = q / q.sum() if q.sum() else q
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-6) -> float:
    """KL(p || q) in bits, with ``eps`` smoothing so unseen tiles do not make it infinite."""
    p = np.asarray(p, dtype=np.float64) + eps
    q = np.asarray(q, dtype=np.float64) + eps
    p /= p.sum()
    q /= q.sum()
    return float(np.sum(p * np.log2(p / q)))


def windows(levels: Sequence[Level], height: int, width: int, stride: int = 1) -> np.ndarray:
    """Every ``height x width`` window of every level, as ``(N, height, width)`` char codes."""
    out = []
    for lv in levels:
        g = lv.grid
        if g.shape[0] < height or g.shape[1] < width:
            continue
        v = np.lib.stride_tricks.sliding_window_view(g, (height, width))
        out.append(v[::stride, ::stride].reshape(-1, height, width))
    if not out:
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate(out))


def nearest_distance(samples: np.ndarray, reference: np.ndarray, chunk: int = 64
                     ) -> np.ndarray:
    """For each sample ``(N, h, w)``, the smallest fraction of differing tiles to any reference
    window ``(M, h, w)``."""
    s = samples.reshape(len(samples), -1)
    r = reference.reshape(len(reference), -1)
    out = np.empty(len(s))
    for a in range(0, len(s), chunk):
        block = s[a:a + chunk]
        diff = (block[:, None, :] != r[None, :, :]).mean(axis=2)
        out[a:a + chunk] = diff.min(axis=1)
    return out


def novelty(levels: Sequence[Level], train: Sequence[Level], seg_width: int | None = None
            ) -> float:
    """Mean distance of each level (or of each of its ``seg_width`` columns wide segments) to its
    nearest training window: 0 means copied, higher means new."""
    if not levels or not train:
        return float("nan")
    h = min(lv.height for lv in levels)
    w = seg_width or min(lv.width for lv in levels)
    ref = windows(train, h, w, stride=1)
    if not len(ref):
        return float("nan")
    segs = []
    for lv in levels:
        for x in range(0, lv.width - w + 1, w):
            segs.append(lv.grid[:h, x:x + w])
    if not segs:
        return float("nan")
    return float(nearest_distance(np.stack(segs), ref).mean())


def diversity(levels: Sequence[Level]) -> float:
    """Mean pairwise fraction of differing tiles (levels cropped to a common size)."""
    if len(levels) < 2:
        return 0.0
    h = min(lv.height for lv in levels)
    w = min(lv.width for lv in levels)
    flat = np.stack([lv.grid[:h, :w].ravel() for lv in levels])
    total, pairs = 0.0, 0
    for i in range(len(flat) - 1):
        d = (flat[i + 1:] != flat[i]).mean(axis=1)
        total += float(d.sum())
        pairs += len(d)
    return total / pairs


def features(level: Level) -> dict[str, float]:
    """Counts a designer steers by: enemies, gaps, coins, solid fraction."""
    solid = level.mask("solid")
    feats: dict[str, float] = {
        "enemies": float(level.mask("enemy").sum()),
        "solid_fraction": round(float(solid.mean()), 4),
        "collectables": float((level.mask("collectable") | level.mask("coin") |
                               level.mask("gold")).sum()),
    }
    if level.legend.guess_view() == "platformer":
        floor = solid[-1]
        holes = ~floor
        starts = holes & np.concatenate(([True], ~holes[:-1]))
        feats["gaps"] = float(starts.sum())
        feats["gap_tiles"] = float(holes.sum())
    return feats


def level_report(level: Level, train: Sequence[Level] | None = None,
                 train_hist: np.ndarray | None = None) -> dict[str, Any]:
    """Distribution distance and novelty of one level against a training set."""
    out: dict[str, Any] = {}
    if train:
        legend = level.legend
        for t in train:
            legend = legend.merged(t.legend)
        p = histogram([level], legend)
        q = train_hist if train_hist is not None and len(train_hist) == len(legend) else \
            histogram(train, legend)
        out["tile_js"] = round(js_divergence(p, q), 5)
        out["tile_kl"] = round(kl_divergence(p, q), 5)
        seg = min(level.width, min(t.width for t in train), 28)
        out["novelty"] = round(novelty([level], train, seg), 5)
    return out
