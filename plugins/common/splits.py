"""Which examples a run holds out: chosen from the examples' ids, so the choice is stable.

A held-out set serves the validation curves and, later, the audit's membership tests (a model
should not recognise what it never saw). The audit's reference models need *random halves* of
the data: the same function with ``fraction=0.5`` and another ``seed``.

The choice ranks examples by a hash of (seed, id) and holds out the lowest ``round(fraction *
n)``: the same data and seed give the same split on any machine and in any file order, and an
example keeps its side when unrelated files are added (its rank among the others barely moves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def held_out(ids: Sequence[str], fraction: float, seed: int = 0) -> set[str]:
    """The ids to hold out: ``round(fraction * n)`` of them, at least one when ``fraction > 0``
    and there are two or more examples, never all of them."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError("the held-out fraction must be at least 0 and below 1")
    n = len(ids)
    if fraction == 0.0 or n < 2:
        return set()
    k = min(n - 1, max(1, round(fraction * n)))
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
    return set(ranked[:k])
