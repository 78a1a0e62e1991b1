"""Confidence intervals the audit puts beside every rate it reports.

A share measured on 40 samples is not the same number as one measured on 40,000; every figure
the audit shows carries its sample size and a 95% interval so the reader can tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Share:
    """``k`` of ``n``, with its Wilson score interval (95%)."""

    k: int
    n: int
    lo: float
    hi: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def to_json(self) -> dict[str, float | int]:
        return {"k": self.k, "n": self.n, "value": self.value, "lo": self.lo, "hi": self.hi}

    def text(self, digits: int = 1) -> str:
        if not self.n:
            return "n/a (no data)"
        return (f"{100 * self.value:.{digits}f}% ({self.k} of {self.n}; 95% CI "
                f"{100 * self.lo:.{digits}f}-{100 * self.hi:.{digits}f}%)")


def wilson(k: int, n: int, z: float = Z95) -> Share:
    """The Wilson score interval: well behaved at 0 and n, unlike the normal approximation
    (Wilson 1927; Brown, Cai and DasGupta 2001 recommend it for small n)."""
    k, n = int(k), int(n)
    if n <= 0:
        return Share(k, n, float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Share(k, n, max(0.0, centre - half), min(1.0, centre + half))


def auc_interval(auc: float, n_pos: int, n_neg: int, z: float = Z95) -> tuple[float, float]:
    """A 95% interval for an ROC AUC from its standard error (Hanley and McNeil 1982)."""
    if n_pos <= 0 or n_neg <= 0 or not math.isfinite(auc):
        return float("nan"), float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc)
           + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    se = math.sqrt(max(var, 0.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)
