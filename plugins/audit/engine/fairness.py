"""Bias: how a classifier's errors fall on groups, and whom generated samples leave out.

- :func:`classifier_fairness` reads a predictions CSV (a label, a prediction and a sensitive
  group column) and computes, with Fairlearn's ``MetricFrame``, each group's selection rate,
  true- and false-positive rates and accuracy, plus ``demographic_parity_difference`` (the
  largest gap in selection rate between groups) and ``equalized_odds_difference`` (the larger
  of the largest gaps in true- and false-positive rate). Every per-group rate carries its count
  and a 95% Wilson interval: a gap between two groups of twelve people each is mostly noise.
- :func:`representation` compares the share of each class among generated samples with its
  share in the training data (Wilson intervals on both, and a chi-square goodness-of-fit test
  of the generated counts against the training shares).

No torch; pandas (Fairlearn needs it), Fairlearn, scipy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import UserError

from .stats import wilson

_TRUE = {"1", "1.0", "true", "yes", "y", "t", "positive", "pos"}
_FALSE = {"0", "0.0", "false", "no", "n", "f", "negative", "neg"}


@dataclass
class Predictions:
    y_true: np.ndarray  # 0/1
    y_pred: np.ndarray  # 0/1
    groups: np.ndarray  # str
    positive: str
    rows: int
    dropped: int  # rows with an empty cell in one of the three columns


def _binarise(values: Sequence[str], positive: str | None, column: str,
              flag: str) -> tuple[np.ndarray, str]:
    vals = [v.strip() for v in values]
    distinct = sorted(set(vals))
    if positive is not None:
        if positive not in distinct and len(distinct) > 0:
            raise UserError(f"{flag}: the column {column!r} never holds {positive!r} (it holds "
                            f"{', '.join(distinct[:10])})")
        return np.array([v == positive for v in vals], dtype=np.int64), positive
    low = {v.casefold() for v in distinct}
    if low <= _TRUE | _FALSE:
        pos = next((v for v in distinct if v.casefold() in _TRUE), "1")
        return np.array([v.casefold() in _TRUE for v in vals], dtype=np.int64), pos
    if len(distinct) <= 2:
        raise UserError(f"the column {column!r} holds {', '.join(distinct)}: say which value is "
                        "the positive outcome with --positive VALUE")
    raise UserError(f"the column {column!r} holds {len(distinct)} different values; these "
                    "fairness metrics are for yes/no outcomes: say which value is the positive "
                    "outcome with --positive VALUE (every other value counts as negative)")


def read_predictions(path: Path, label: str, prediction: str, group: str,
                     positive: str | None = None) -> Predictions:
    """The three columns of a predictions CSV, the outcome columns as 0/1. Missing columns
    raise a ``UserError`` naming them and listing the columns the file has."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path.name or path} is not a file: give a predictions CSV")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise UserError(f"cannot read {path.name} as CSV: {exc}") from exc
    wanted = {"--label": label, "--prediction": prediction, "--group": group}
    missing = [f"{col!r} ({flag})" for flag, col in wanted.items() if col not in df.columns]
    if missing:
        raise UserError(f"{path.name} has no column {', '.join(missing)}; its columns are: "
                        f"{', '.join(map(str, df.columns)) or 'none'}")
    cols = df[[label, prediction, group]]
    keep = (cols != "").all(axis=1)
    df2 = cols[keep]
    if len(df2) == 0:
        raise UserError(f"{path.name} has no row with all of {label}, {prediction}, {group}")
    # one positive value shared by both outcome columns
    y, pos = _binarise(df2[label].tolist(), positive, label, "--positive")
    yhat, _ = _binarise(df2[prediction].tolist(), pos if positive is None and
                        pos in set(df2[prediction]) else positive, prediction, "--positive")
    return Predictions(y, yhat, df2[group].astype(str).to_numpy(), pos, len(df),
                       int((~keep).sum()))


@dataclass
class GroupRates:
    group: str
    count: int
    positives: int  # true label positive
    negatives: int
    selection_rate: dict[str, float]
    true_positive_rate: dict[str, float]
    false_positive_rate: dict[str, float]
    accuracy: dict[str, float]


@dataclass
class FairnessReport:
    groups: list[GroupRates]
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    overall: dict[str, float]
    rows: int
    dropped: int
    positive: str
    notes: list[str] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["groups"] = [g.__dict__ for g in self.groups]
        return d


def classifier_fairness(p: Predictions, min_group: int = 30) -> FairnessReport:
    """Per-group rates (Fairlearn ``MetricFrame``) with Wilson intervals from the counts, and
    Fairlearn's demographic parity and equalized odds differences."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    mf = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                              "fpr": false_positive_rate, "accuracy": accuracy_score},
                     y_true=p.y_true, y_pred=p.y_pred, sensitive_features=p.groups)
    by = mf.by_group
    groups = []
    notes = []
    for g in sorted(set(p.groups.tolist())):
        m = p.groups == g
        yt, yp = p.y_true[m], p.y_pred[m]
        n, pos = int(m.sum()), int(yt.sum())
        neg = n - pos
        row = by.loc[g]

        def ci(k: int, total: int, value: float) -> dict[str, float]:
            s = wilson(k, total)
            return {"value": float(value), "lo": s.lo, "hi": s.hi, "n": total}

        groups.append(GroupRates(
            g, n, pos, neg,
            ci(int(yp.sum()), n, row["selection_rate"]),
            ci(int((yp[yt == 1]).sum()), pos, row["tpr"]),
            ci(int((yp[yt == 0]).sum()), neg, row["fpr"]),
            ci(int((yp == yt).sum()), n, row["accuracy"])))
        if n < min_group:
            notes.append(f"the group {g!r} has only {n} rows: its rates are very uncertain")
        if pos == 0 or neg == 0:
            notes.append(f"the group {g!r} has no {'positive' if pos == 0 else 'negative'} "
                         "labels: its true- or false-positive rate is undefined")
    return FairnessReport(
        groups,
        float(demographic_parity_difference(p.y_true, p.y_pred, sensitive_features=p.groups)),
        float(demographic_parity_ratio(p.y_true, p.y_pred, sensitive_features=p.groups)),
        float(equalized_odds_difference(p.y_true, p.y_pred, sensitive_features=p.groups)),
        {k: float(v) for k, v in mf.overall.items()}, p.rows, p.dropped, p.positive, notes,
        {"per-group rates": "Fairlearn MetricFrame; 95% Wilson intervals from the counts",
         "demographic parity difference": "largest minus smallest selection rate over groups "
                                          "(Fairlearn)",
         "equalized odds difference": "the larger of the largest gaps in true-positive rate "
                                      "and in false-positive rate between groups (Fairlearn)"})


def representation(generated: Sequence[str], training: Sequence[str]) -> dict[str, Any]:
    """Each class's share among generated samples against its share in the training data,
    with Wilson intervals and a chi-square test of the generated counts against the training
    shares (classes the model never produced included)."""
    from scipy import stats

    g, t = Counter(generated), Counter(training)
    ng, nt = sum(g.values()), sum(t.values())
    if not ng or not nt:
        raise UserError("representation needs generated samples and training examples with "
                        "classes")
    classes = sorted(set(t) | set(g))
    rows = []
    for c in classes:
        gs, ts = wilson(g[c], ng), wilson(t[c], nt)
        rows.append({"class": c, "generated": gs.to_json(), "training": ts.to_json(),
                     "difference": gs.value - ts.value})
    expected = np.array([t[c] / nt * ng for c in classes])
    observed = np.array([g[c] for c in classes], dtype=np.float64)
    unseen = [c for c in g if c not in t]
    ok = expected > 0
    chi = stats.chisquare(observed[ok], expected[ok] * observed[ok].sum() / expected[ok].sum()) \
        if ok.sum() > 1 else None
    return {"classes": rows, "generated": ng, "training": nt,
            "chi_square": float(chi.statistic) if chi is not None else None,
            "p_value": float(chi.pvalue) if chi is not None else None,
            "classes_not_in_training": unseen,
            "missing_in_generated": [c for c in t if g[c] == 0],
            "method": "share of each class with 95% Wilson intervals; chi-square goodness of "
                      "fit of the generated counts against the training shares"}
