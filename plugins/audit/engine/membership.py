"""Membership inference: can someone tell, from the model alone, which examples trained it?

Every attack turns per-example losses into a *membership score* (higher: more likely a
training example) and is judged the way the literature judges them (Carlini et al. 2022, "the
first principles" paper): the ROC curve on log axes, its AUC, and the true-positive rate at a
low false-positive rate (0.1% and 1%), because an attack that confidently identifies a few
examples matters more than one that is slightly better than chance on average. Each figure
carries the number of members and non-members it was measured on; a TPR at 0.1% FPR measured
on fewer than 1,000 non-members cannot resolve that rate and says so.

The attacks:

- :func:`loss_attack` (Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the
  Connection to Overfitting"): a training example has a lower loss. One global threshold, so
  examples that are simply easy look like members: the baseline.
- :func:`lira` (Carlini, Chien, Nasr, Song, Terzis, Tramèr 2022, "Membership Inference Attacks
  From First Principles", IEEE S&P): per example, fit Gaussians to the statistic of reference
  models trained *with* it (IN) and *without* it (OUT), and score the audited model's value by
  the likelihood ratio (online) or by how far above the OUT distribution it lies (offline,
  OUT models only). With few reference models the variance is one global value per side, as
  the paper recommends (its "fixed variance" variant). The reference code (tensorflow/privacy
  ``research/mi_lira_2021``) uses the median as the mean estimate; so do we.
- :func:`rmia` (Zarifzadeh, Liu, Shokri 2024, "Low-Cost High-Power Membership Inference
  Attacks", ICML): the likelihood ratio ``Pr(x|model) / Pr(x)`` with ``Pr(x)`` averaged over
  reference models, compared against the same ratio of population examples ``z``: the score is
  the share of ``z`` that ``x`` dominates by a factor ``gamma``. Offline (OUT models only), the
  paper's linear correction ``Pr(x) = (1+a)/2 Pr_OUT(x) + (1-a)/2`` stands in for the missing
  IN models, with ``a`` chosen by attacking one reference model with the others
  (:func:`tune_offline_a`, as ML Privacy Meter does).

The statistic all attacks read is the probe's per-example loss: LiRA fits Gaussians to
``-loss`` (a per-unit negative log-likelihood averaged over many tokens or pixels is close to
Gaussian, so the paper's logit scaling of a single softmax confidence is not needed), RMIA uses
``exp(-loss)`` as ``Pr(x|model)``. Everything is numpy; no torch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.special import logsumexp
from sklearn.metrics import roc_auc_score, roc_curve

from studio.errors import UserError

from .stats import Share, auc_interval, wilson

LOW_FPRS = (0.001, 0.01)
#: with fewer reference models than this, LiRA uses one variance per side for all examples
PER_EXAMPLE_VARIANCE_FROM = 16

METHODS = {
    "loss": "Loss threshold (Yeom et al. 2018): a lower loss on the audited model means member.",
    "lira-online": ("LiRA online (Carlini et al. 2022): per-example Gaussians fitted to "
                    "reference models trained with and without the example; likelihood ratio."),
    "lira-offline": ("LiRA offline (Carlini et al. 2022): per-example Gaussian of reference "
                     "models trained without the example; one-sided test of the audited value."),
    "rmia": ("RMIA (Zarifzadeh et al. 2024): likelihood ratio against reference models, "
             "compared pairwise with population examples."),
    "rmia-offline": ("RMIA offline (Zarifzadeh et al. 2024): as RMIA with reference models "
                     "trained without the example only, and the paper's linear correction."),
}


# ----------------------------------------------------------------------------------------------
# Judging an attack
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RatePoint:
    """The true-positive rate an attack reaches while keeping false positives at or under
    ``target`` (measured on ``n_nonmembers``; ``resolvable`` is False when one false positive
    already exceeds ``target``, and then ``tpr`` is the rate at zero false positives)."""

    target: float
    tpr: Share
    fpr: float
    resolvable: bool

    def to_json(self) -> dict[str, Any]:
        return {"target_fpr": self.target, "tpr": self.tpr.to_json(), "fpr": self.fpr,
                "resolvable": self.resolvable}


@dataclass
class AttackResult:
    """One attack on one model: scores per example and how well they separate members."""

    name: str
    ids: list[str]
    scores: np.ndarray  # higher: more likely a member
    members: np.ndarray  # bool, the truth from the run's manifest
    auc: float
    auc_ci: tuple[float, float]
    fpr: np.ndarray
    tpr: np.ndarray
    at: list[RatePoint]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return METHODS.get(self.name, self.name)

    @property
    def n_members(self) -> int:
        return int(self.members.sum())

    @property
    def n_nonmembers(self) -> int:
        return int((~self.members).sum())

    def most_exposed(self, k: int = 10) -> list[tuple[str, float]]:
        """The training examples the attack is surest about (the most exposed), best first."""
        idx = np.flatnonzero(self.members)
        order = idx[np.argsort(-self.scores[idx], kind="stable")][:k]
        return [(self.ids[i], float(self.scores[i])) for i in order]

    def to_json(self, curve_points: int = 400, exposed: int = 20) -> dict[str, Any]:
        fpr, tpr = thin_curve(self.fpr, self.tpr, curve_points)
        return {
            "attack": self.name, "method": self.method, "auc": self.auc,
            "auc_ci": list(self.auc_ci), "members": self.n_members,
            "nonmembers": self.n_nonmembers, "at": [p.to_json() for p in self.at],
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
            "most_exposed": [{"id": i, "score": s} for i, s in self.most_exposed(exposed)],
            "info": self.info,
        }


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points of a ROC curve, spaced evenly on a log FPR axis (the low-FPR end is
    what a log plot shows), keeping both ends."""
    if len(fpr) <= n:
        return fpr, tpr
    pos = fpr[fpr > 0]
    lo = pos.min() if len(pos) else 1e-6
    grid = np.concatenate([[0.0], np.geomspace(lo, 1.0, n - 1)])
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return fpr[idx], tpr[idx]


def evaluate(name: str, ids: Sequence[str], scores: np.ndarray, members: np.ndarray,
             **info: Any) -> AttackResult:
    """ROC, AUC (with its interval) and TPR at low FPR of ``scores`` against the truth."""
    scores = np.asarray(scores, dtype=np.float64)
    members = np.asarray(members, dtype=bool)
    if scores.shape != members.shape:
        raise ValueError("one score per example")
    n_pos, n_neg = int(members.sum()), int((~members).sum())
    if n_pos == 0 or n_neg == 0:
        raise UserError("a membership attack needs both training and held-out examples: "
                        f"this run has {n_pos} trained and {n_neg} held out. Train it with a "
                        "held-out fraction above 0 to audit it")
    finite = np.where(np.isfinite(scores), scores, np.nanmin(scores[np.isfinite(scores)])
                      if np.isfinite(scores).any() else 0.0)
    fpr, tpr, _ = roc_curve(members, finite)
    auc = float(roc_auc_score(members, finite))
    at = []
    for target in LOW_FPRS:
        ok = fpr <= target + 1e-12
        i = int(np.flatnonzero(ok)[np.argmax(tpr[ok])])
        at.append(RatePoint(target, wilson(round(tpr[i] * n_pos), n_pos), float(fpr[i]),
                            resolvable=n_neg * target >= 1.0))
    return AttackResult(name, list(ids), finite, members, auc, auc_interval(auc, n_pos, n_neg),
                        fpr, tpr, at, dict(info))


# ----------------------------------------------------------------------------------------------
# The attacks
# ----------------------------------------------------------------------------------------------
def loss_attack(losses: np.ndarray) -> np.ndarray:
    """Yeom et al. 2018: the score is minus the loss."""
    return -np.asarray(losses, dtype=np.float64)


def _check_refs(target: np.ndarray, ref_losses: np.ndarray, ref_in: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    target = np.asarray(target, dtype=np.float64)
    ref = np.atleast_2d(np.asarray(ref_losses, dtype=np.float64))
    ins = np.atleast_2d(np.asarray(ref_in, dtype=bool))
    if ref.shape != ins.shape or ref.shape[1] != target.shape[0]:
        raise ValueError("reference losses and memberships must be (models, examples)")
    return target, ref, ins


def _masked_median(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-column median over the rows where ``mask`` holds (NaN for an empty column)."""
    if not mask.any():
        return np.full(x.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty column is expected
        return np.asarray(np.nanmedian(np.where(mask, x, np.nan), axis=0))


def _masked_std(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = mask.sum(axis=0)
    mean = np.where(n > 0, (x * mask).sum(axis=0) / np.maximum(n, 1), np.nan)
    var = np.where(n > 1, ((x - mean) ** 2 * mask).sum(axis=0) / np.maximum(n - 1, 1), np.nan)
    return np.sqrt(var)


def _pooled_std(x: np.ndarray, mask: np.ndarray, centre: np.ndarray) -> float:
    """One standard deviation for all examples: the spread of each value around its own
    example's centre, pooled (the paper's fixed variance)."""
    dev = (x - centre[None, :])[mask & np.isfinite(centre)[None, :]]
    return float(np.sqrt(np.mean(dev ** 2))) if dev.size > 1 else float("nan")


@dataclass(frozen=True)
class GaussianFit:
    """Per-example IN and OUT Gaussians of the statistic ``-loss``."""

    mu_in: np.ndarray
    mu_out: np.ndarray
    sd_in: np.ndarray
    sd_out: np.ndarray
    per_example_variance: bool
    filled_in: int  # examples with no IN model, given the mean IN-OUT gap
    filled_out: int


def fit_gaussians(ref_losses: np.ndarray, ref_in: np.ndarray,
                  per_example_variance: bool | None = None) -> GaussianFit:
    """Fit LiRA's IN and OUT Gaussians per example from reference models.

    An example that no reference model happened to include (or exclude) gets the other side's
    median shifted by the average IN-OUT gap of the examples that have both: with ``K`` models
    on random halves that is about ``2**-K`` of them."""
    stat = -np.atleast_2d(np.asarray(ref_losses, dtype=np.float64))
    ins = np.atleast_2d(np.asarray(ref_in, dtype=bool))
    outs = ~ins
    mu_in, mu_out = _masked_median(stat, ins), _masked_median(stat, outs)
    both = np.isfinite(mu_in) & np.isfinite(mu_out)
    gap = float(np.mean(mu_in[both] - mu_out[both])) if both.any() else 0.0
    miss_in, miss_out = ~np.isfinite(mu_in), ~np.isfinite(mu_out)
    mu_in = np.where(miss_in, mu_out + gap, mu_in)
    mu_out = np.where(miss_out, mu_in - gap, mu_out)
    k = stat.shape[0]
    per_ex = k >= PER_EXAMPLE_VARIANCE_FROM if per_example_variance is None else \
        per_example_variance
    g_in = _pooled_std(stat, ins, mu_in)
    g_out = _pooled_std(stat, outs, mu_out)
    if not math.isfinite(g_out):
        g_out = g_in
    if not math.isfinite(g_in):
        g_in = g_out
    floor = 1e-6 * max(1.0, float(np.nanstd(stat)))
    if per_ex:
        sd_in = np.where(ins.sum(0) > 1, _masked_std(stat, ins), g_in)
        sd_out = np.where(outs.sum(0) > 1, _masked_std(stat, outs), g_out)
    else:
        sd_in = np.full(stat.shape[1], g_in)
        sd_out = np.full(stat.shape[1], g_out)
    sd_in = np.maximum(np.nan_to_num(sd_in, nan=floor), floor)
    sd_out = np.maximum(np.nan_to_num(sd_out, nan=floor), floor)
    return GaussianFit(mu_in, mu_out, sd_in, sd_out, per_ex, int(miss_in.sum()),
                       int(miss_out.sum()))


def lira(target_losses: np.ndarray, ref_losses: np.ndarray, ref_in: np.ndarray, *,
         online: bool = True, per_example_variance: bool | None = None
         ) -> tuple[np.ndarray, GaussianFit]:
    """LiRA scores (Carlini et al. 2022) for each example of the audited model.

    ``ref_losses[k, i]`` is reference model ``k``'s loss on example ``i`` and ``ref_in[k, i]``
    whether ``k`` trained on it. Online: ``log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out)``
    with ``s = -loss`` of the audited model. Offline: ``log Phi((s - mu_out) / sd_out)``, the
    one-sided test the paper describes (a member's confidence lies *above* the OUT
    distribution), so an unusually bad fit never looks like membership."""
    target, ref, ins = _check_refs(target_losses, ref_losses, ref_in)
    fit = fit_gaussians(ref, ins, per_example_variance)
    s = -target
    if online:
        scores = (sps.norm.logpdf(s, fit.mu_in, fit.sd_in)
                  - sps.norm.logpdf(s, fit.mu_out, fit.sd_out))
    else:
        scores = sps.norm.logcdf(s, fit.mu_out, fit.sd_out)
    return np.asarray(scores, dtype=np.float64), fit


def _log_pr_x(ref: np.ndarray, ins: np.ndarray, a: float | None) -> np.ndarray:
    """``log Pr(x)`` from reference models: the mean likelihood over all of them (online), or
    the offline correction from the OUT ones (``a``); an example no OUT model saw is recovered
    from the IN ones by inverting the same relation, as ML Privacy Meter does with one model."""
    logp = -ref  # log Pr(x | reference model)
    if a is None:
        return np.asarray(logsumexp(logp, axis=0) - math.log(ref.shape[0]))
    outs = ~ins
    n_out = outs.sum(axis=0)
    with np.errstate(divide="ignore"):
        mean_out = np.exp(logsumexp(np.where(outs, logp, -np.inf), axis=0)) / np.maximum(n_out, 1)
        mean_in = np.exp(logsumexp(np.where(ins, logp, -np.inf), axis=0)) / np.maximum(
            ins.sum(axis=0), 1)
    recovered = np.clip((mean_in + a - 1) / a, 1e-300, None) if a > 0 else mean_in
    p_out = np.where(n_out > 0, mean_out, recovered)
    pr = (1 + a) / 2 * p_out + (1 - a) / 2
    return np.log(np.clip(pr, 1e-300, None))


def rmia(target_losses: np.ndarray, ref_losses: np.ndarray, ref_in: np.ndarray,
         population: np.ndarray, *, offline_a: float | None = None, gamma: float = 1.0
         ) -> np.ndarray:
    """RMIA scores (Zarifzadeh et al. 2024).

    ``population`` are indices of the examples used as ``z`` (population data the audited model
    did not train on: its held-out examples). ``offline_a=None`` is the online attack (``Pr(x)``
    the mean over every reference model); a number is the offline attack with that ``a``.
    The score of ``x`` is the share of ``z`` with ``ratio(x) / ratio(z) > gamma``, where
    ``ratio = Pr(.|audited model) / Pr(.)``; ``x`` is never compared with itself."""
    target, ref, ins = _check_refs(target_losses, ref_losses, ref_in)
    if gamma < 1:
        raise ValueError("gamma must be at least 1")
    log_ratio = -target - _log_pr_x(ref, ins, offline_a)
    pop = np.asarray(population, dtype=np.int64)
    if pop.size == 0:
        raise UserError("RMIA needs population examples (held-out examples of the run)")
    z = np.sort(log_ratio[pop])
    # ratio(x)/ratio(z) > gamma  <=>  log_ratio(z) < log_ratio(x) - log(gamma)
    counts = np.searchsorted(z, log_ratio - math.log(gamma), side="left").astype(np.float64)
    in_pop = np.zeros(len(target), dtype=bool)
    in_pop[pop] = True
    # with gamma >= 1 a point never dominates itself, so only the denominator changes
    denom = np.where(in_pop, len(pop) - 1, len(pop)).astype(np.float64)
    return counts / np.maximum(denom, 1.0)


def tune_offline_a(ref_losses: np.ndarray, ref_in: np.ndarray,
                   grid: Sequence[float] = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))
                   ) -> tuple[float, dict[float, float]]:
    """Choose RMIA's offline ``a`` by attacking each reference model with the others (their
    memberships are known) and keeping the ``a`` with the best mean AUC. Needs two or more
    reference models; returns ``(a, {a: mean AUC})``."""
    ref = np.atleast_2d(np.asarray(ref_losses, dtype=np.float64))
    ins = np.atleast_2d(np.asarray(ref_in, dtype=bool))
    k = ref.shape[0]
    if k < 2:
        return 0.3, {}
    aucs: dict[float, list[float]] = {float(a): [] for a in grid}
    for t in range(k):
        others = [j for j in range(k) if j != t]
        truth = ins[t]
        pop = np.flatnonzero(~truth)
        if truth.all() or not truth.any():
            continue
        for a in grid:
            s = rmia(ref[t], ref[others], ins[others], pop, offline_a=float(a))
            aucs[float(a)].append(float(roc_auc_score(truth, s)))
    means = {a: float(np.mean(v)) for a, v in aucs.items() if v}
    if not means:
        return 0.3, {}
    best = max(means, key=lambda a: (means[a], -abs(a - 0.3)))
    return best, means


# ----------------------------------------------------------------------------------------------
# Everything at once
# ----------------------------------------------------------------------------------------------
def attack_all(ids: Sequence[str], members: np.ndarray, target_losses: np.ndarray,
               ref_losses: np.ndarray | None = None, ref_in: np.ndarray | None = None
               ) -> list[AttackResult]:
    """Every attack the data allows: the loss attack always; LiRA (online and offline) and
    RMIA (online and offline) when reference models are given."""
    members = np.asarray(members, dtype=bool)
    target = np.asarray(target_losses, dtype=np.float64)
    out = [evaluate("loss", ids, loss_attack(target), members)]
    if ref_losses is None or ref_in is None or np.atleast_2d(ref_losses).shape[0] == 0:
        return out
    ref = np.atleast_2d(np.asarray(ref_losses, dtype=np.float64))
    ins = np.atleast_2d(np.asarray(ref_in, dtype=bool))
    k = ref.shape[0]
    for online in (True, False):
        scores, fit = lira(target, ref, ins, online=online)
        out.append(evaluate("lira-online" if online else "lira-offline", ids, scores, members,
                            reference_models=k, per_example_variance=fit.per_example_variance,
                            examples_without_in_model=fit.filled_in,
                            examples_without_out_model=fit.filled_out))
    population = np.flatnonzero(~members)
    out.append(evaluate("rmia", ids, rmia(target, ref, ins, population), members,
                        reference_models=k, population=len(population), gamma=1.0))
    a, curve = tune_offline_a(ref, ins)
    out.append(evaluate("rmia-offline", ids,
                        rmia(target, ref, ins, population, offline_a=a), members,
                        reference_models=k, population=len(population), gamma=1.0,
                        offline_a=a, tuning={str(k_): v for k_, v in curve.items()}))
    return out


def reference_matrix(ids: Sequence[str], memberships: Sequence[dict[str, str]]) -> np.ndarray:
    """``(models, examples)`` booleans: did reference model ``k`` train on example ``i``
    (``memberships[k]`` is that run's ``{id: "train" | "held_out"}``)? An example a reference
    run did not record counts as OUT."""
    return np.array([[m.get(i) == "train" for i in ids] for m in memberships], dtype=bool)
