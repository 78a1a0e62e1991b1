"""The resume check's comparison of curves: measured metrics (speed) compare by points only."""

from __future__ import annotations

import pytest
from resume_check import compare_metrics


def test_measured_metrics_compare_by_points_not_values() -> None:
    whole = [("loss", 10.0, 1.5), ("tokens_per_s", 10.0, 900.0)]
    parts = [("loss", 10.0, 1.5), ("tokens_per_s", 10.0, 1200.0)]
    compare_metrics(whole, parts, measured=("tokens_per_s",))
    with pytest.raises(AssertionError):
        compare_metrics(whole, parts)
    with pytest.raises(AssertionError, match="points"):
        compare_metrics(whole, parts[:1], measured=("tokens_per_s",))
    with pytest.raises(AssertionError, match="duplicated"):
        compare_metrics(whole, [*parts, parts[0]], measured=("tokens_per_s",))
