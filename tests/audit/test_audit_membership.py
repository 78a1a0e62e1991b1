"""Membership attacks on synthetic losses with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from plugins.audit.engine import membership as M
from studio.errors import UserError


def world(n=400, k=8, gap=0.5, seed=0):
    """Examples of varied difficulty; a model's loss is lower by ``gap`` on what it trained on."""
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0, 3, n)

    def model(inset):
        return difficulty - gap * inset + rng.normal(0, 0.05, n)

    members = rng.random(n) < 0.5
    ref_in = rng.random((k, n)) < 0.5
    ids = [f"ex{i}" for i in range(n)]
    return ids, members, model(members), np.stack([model(r) for r in ref_in]), ref_in


def by_name(results):
    return {r.name: r for r in results}


def test_a_model_that_memorised_half_its_data_is_found():
    r = by_name(M.attack_all(*world()))
    for name in ("lira-online", "lira-offline", "rmia"):
        assert r[name].auc > 0.98, name
    assert r["rmia-offline"].auc > 0.9
    # examples differ in difficulty: one global threshold is much weaker (Carlini et al. 2022)
    assert 0.55 < r["loss"].auc < 0.8
    assert r["lira-online"].at[1].tpr.value > 0.9  # TPR at 1% FPR


def test_a_model_that_memorised_nothing_is_at_chance():
    runs = [by_name(M.attack_all(*world(gap=0.0, seed=s))) for s in range(4)]
    for name in runs[0]:
        aucs = [r[name].auc for r in runs]
        assert all(abs(a - 0.5) < 0.1 for a in aucs), (name, aucs)
        assert abs(np.mean(aucs) - 0.5) < 0.04, (name, aucs)


def test_loss_attack_alone_on_easy_cases():
    ids, members, _, _, _ = world()
    loss = np.where(members, 0.1, 1.0)
    r = M.evaluate("loss", ids, M.loss_attack(loss), members)
    assert r.auc == 1.0
    assert r.most_exposed(3)[0][0] in {i for i, m in zip(ids, members, strict=True) if m}


def test_low_fpr_figures_say_when_the_sample_cannot_resolve_them():
    ids, members, target, _ref, _ref_in = world(n=400)
    r = M.evaluate("loss", ids, M.loss_attack(target), members)
    n_neg = r.n_nonmembers
    assert n_neg < 1000
    low, one = r.at
    assert low.target == 0.001 and not low.resolvable and low.fpr == 0.0
    assert one.target == 0.01 and one.resolvable
    assert low.tpr.n == r.n_members
    assert r.to_json()["nonmembers"] == n_neg


def test_no_non_members_is_a_clear_error():
    with pytest.raises(UserError, match="held-out"):
        M.evaluate("loss", ["a", "b"], np.array([1.0, 2.0]), np.array([True, True]))


def test_lira_uses_a_fixed_variance_with_few_models_and_per_example_with_many():
    _, _, target, ref, ref_in = world(k=4)
    _, fit = M.lira(target, ref, ref_in)
    assert not fit.per_example_variance
    assert np.all(fit.sd_in == fit.sd_in[0])
    _ids, _members, target, ref, ref_in = world(k=32)
    _, fit = M.lira(target, ref, ref_in)
    assert fit.per_example_variance


def test_lira_fills_examples_no_reference_model_included():
    ref = np.array([[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]])
    ref_in = np.array([[True, False, False], [False, True, False]])
    fit = M.fit_gaussians(ref, ref_in)
    assert fit.filled_in == 1  # example 2 was never IN
    gap = np.mean([(-1.0) - (-1.5), (-2.5) - (-2.0)])
    assert fit.mu_in[2] == pytest.approx(fit.mu_out[2] + gap)


def test_offline_lira_is_one_sided():
    ref = np.zeros((4, 2)) + np.array([[0.0], [0.1], [-0.1], [0.05]])
    ref_in = np.zeros((4, 2), dtype=bool)
    s, _ = M.lira(np.array([-1.0, 1.0]), ref, ref_in, online=False)
    assert s[0] > s[1]  # a lower loss than every OUT model: more likely a member


def test_rmia_never_compares_a_point_with_itself_and_is_a_share():
    _ids, members, target, ref, ref_in = world(n=50)
    pop = np.flatnonzero(~members)
    s = M.rmia(target, ref, ref_in, pop)
    assert np.all((s >= 0) & (s <= 1))
    best = pop[np.argmax(s[pop])]
    assert s[best] == 1.0  # dominates every *other* population point


def test_offline_a_is_tuned_on_reference_models():
    _, _, _, ref, ref_in = world(k=4)
    a, curve = M.tune_offline_a(ref, ref_in)
    assert a in curve and 0.0 <= a <= 1.0
    assert max(curve.values()) > 0.8


def test_reference_matrix_from_memberships():
    m = M.reference_matrix(["a", "b", "c"], [{"a": "train", "b": "held_out"},
                                             {"c": "train"}])
    assert m.tolist() == [[True, False, False], [False, False, True]]


def test_roc_is_thinned_on_a_log_axis_keeping_its_ends():
    fpr = np.linspace(0, 1, 5000)
    tpr = np.sqrt(fpr)
    f, _t = M.thin_curve(fpr, tpr, 100)
    assert len(f) <= 100 and f[0] == 0 and f[-1] == 1
    assert np.sum(f < 0.01) > 20  # most points where a log plot looks
