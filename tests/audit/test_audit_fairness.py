"""Fairness figures against hand-computed ones; clear messages for bad CSVs."""

from __future__ import annotations

import json

import pytest
from audit_helpers import run_job

from plugins.audit.engine import fairness as F
from studio.errors import UserError

CSV = "y,yhat,sex\n" + "".join(f"{a},{b},{g}\n" for a, b, g in [
    (1, 1, "f"), (0, 1, "f"), (1, 0, "f"), (0, 0, "f"),
    (1, 1, "m"), (1, 1, "m"), (0, 0, "m"), (0, 1, "m"), (1, 1, "m")])


@pytest.fixture
def preds(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text(CSV)
    return f


def test_figures_match_the_hand_computed_ones(preds):
    r = F.classifier_fairness(F.read_predictions(preds, "y", "yhat", "sex"))
    g = {x.group: x for x in r.groups}
    # selection rates: f 2/4, m 4/5; TPR: f 1/2, m 3/3; FPR: f 1/2, m 1/2
    assert g["f"].selection_rate["value"] == pytest.approx(0.5)
    assert g["m"].selection_rate["value"] == pytest.approx(0.8)
    assert r.demographic_parity_difference == pytest.approx(0.3)
    assert r.demographic_parity_ratio == pytest.approx(0.5 / 0.8)
    assert r.equalized_odds_difference == pytest.approx(0.5)  # max(|1/2 - 1|, |1/2 - 1/2|)
    assert g["m"].true_positive_rate["n"] == 3
    lo, hi = g["f"].selection_rate["lo"], g["f"].selection_rate["hi"]
    assert lo < 0.5 < hi and hi - lo > 0.5  # four rows: a wide interval
    assert any("only 4 rows" in n for n in r.notes)


def test_missing_columns_are_named(preds):
    with pytest.raises(UserError) as e:
        F.read_predictions(preds, "label", "yhat", "group")
    msg = str(e.value)
    assert "'label' (--label)" in msg and "'group' (--group)" in msg
    assert "its columns are: y, yhat, sex" in msg


def test_outcomes_that_are_not_yes_no_need_a_positive_value(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("y,yhat,g\nhired,hired,a\nrejected,hired,b\nhired,rejected,a\n")
    with pytest.raises(UserError, match="--positive"):
        F.read_predictions(f, "y", "yhat", "g")
    p = F.read_predictions(f, "y", "yhat", "g", positive="hired")
    assert p.y_true.tolist() == [1, 0, 1] and p.y_pred.tolist() == [1, 1, 0]


def test_representation_with_intervals():
    r = F.representation(["a"] * 70 + ["b"] * 30, ["a"] * 50 + ["b"] * 50)
    a = r["classes"][0]
    assert a["class"] == "a" and a["generated"]["value"] == 0.7
    assert a["difference"] == pytest.approx(0.2)
    assert r["p_value"] < 0.001
    r = F.representation(["a"] * 50 + ["b"] * 50, ["a"] * 50 + ["b"] * 50 + ["c"] * 5)
    assert r["missing_in_generated"] == ["c"]


def test_fairness_job(tmp_path, preds):
    rec = run_job("audit", "fairness", {"predictions": preds, "label": "y",
                                        "prediction": "yhat", "group": "sex"},
                  out=tmp_path / "fair")
    assert rec.state == "done", rec.error
    doc = json.loads((tmp_path / "fair" / "audit.json").read_text())["result"]
    assert doc["demographic_parity_difference"] == pytest.approx(0.3)
    rec = run_job("audit", "fairness", {"predictions": preds, "label": "y",
                                        "prediction": "pred", "group": "sex"},
                  out=tmp_path / "bad")
    assert rec.state == "failed" and "'pred' (--prediction)" in rec.error
