"""Representation: does a model generate each class as often as it saw it in training?

A generative model trained on labelled data (image folders whose sub-folders are classes, and
any plugin whose examples sit in class folders) can drop or shrink a class: a GAN's mode
collapse, a diffusion model that rarely draws the class it saw least. This module compares each
class's share of the training examples with its share of N generated samples.

- **Training classes** come from the run manifest's examples (the probe's optional
  ``labels(examples)``, else the example's first folder): every example the model trained on
  counts, so the training shares are exact counts of the run's data.
- **Generated classes** come from the probe's own ``classify(items)`` when it has one (a
  conditional model's condition, or the plugin's classifier); otherwise from a k-nearest-
  neighbour vote (k = :data:`K`, cosine distance) in the probe's ``embed`` space among (a
  seeded subset of) the training examples, labelled by their class. The classifier is only as
  good as that space, so its accuracy is measured on the run's held-out examples (or, when none
  were held out, leave-one-out on the training examples) and reported per class beside the
  shares: a class the classifier rarely recognises looks under-generated whatever the model does.
- **Conditional models** whose probe offers ``sample_with_labels(n, seed)`` also get, per class
  asked for, the share of samples the classifier recognises as that class (fidelity).
- **Figures**: each share with a 95% Wilson interval; per class the ratio generated/training
  with a 95% bootstrap interval (both the training examples and the samples resampled,
  :data:`BOOTSTRAP` times), a class "differs" when that interval excludes 1; the total
  variation distance ``0.5 * sum |p_gen - p_train|`` with a bootstrap interval; and a
  chi-square test of homogeneity (scipy's ``chi2_contingency`` on the 2 x classes table).

No Qt, no torch: the job hands in labels and features it read through the probe.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plugins.common.probes import ProbeExample
from studio.errors import UserError

from .stats import Share, wilson

#: neighbours that vote on a generated item's class
K = 5
#: bootstrap resamples for the ratio and total-variation intervals
BOOTSTRAP = 2000
#: at most this many training examples are embedded as the classifier's references
MAX_REFERENCES = 5000
#: a class that appears less (or more) often than this many times its training share is named
NOTABLE_RATIO = 1.5


# ----------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------
def folder_label(example: ProbeExample) -> str | None:
    """An example's class: the first folder of its path inside the dataset (None at the top)."""
    parts = [p for p in example.path.split("/") if p]
    return parts[0] if len(parts) > 1 else None


def example_labels(probe: Any, examples: Sequence[ProbeExample]) -> list[str]:
    """The class of every example: the probe's ``labels(examples)`` when it has one, else the
    first folder. A ``UserError`` when the data has no classes to compare."""
    if hasattr(probe, "labels"):
        labels = [str(x) for x in probe.labels(list(examples))]
        if len(labels) != len(examples):
            raise UserError("the audit probe gave a wrong number of labels: the plugin's probe "
                            "needs fixing")
    else:
        found = [folder_label(e) for e in examples]
        if any(x is None for x in found):
            loose = sum(1 for x in found if x is None)
            raise UserError(
                f"{loose} of {len(examples)} training examples are not in a class folder, so "
                "the training data has no classes to compare: put each class's files in a "
                "sub-folder of the data folder (cats/, dogs/...) and train again")
        labels = [str(x) for x in found]
    if len(set(labels)) < 2:
        only = labels[0] if labels else "none"
        raise UserError(f"the training data has one class only ({only}): representation "
                        "compares the shares of two classes or more")
    return labels


# ----------------------------------------------------------------------------------------------
# The classifier: k nearest neighbours in the probe's feature space
# ----------------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_labels(queries: np.ndarray, refs: np.ndarray, ref_labels: Sequence[str], k: int = K,
               exclude_self: bool = False) -> list[str]:
    """The majority class of each query's ``k`` nearest references by cosine distance (ties
    go to the class of the nearer neighbours: votes weighted ``1 + 1e-6 * similarity``).
    ``exclude_self``: queries are the references themselves (leave-one-out)."""
    q, r = _unit(queries), _unit(refs)
    labels = np.asarray(list(ref_labels))
    k = max(1, min(k, len(r) - (1 if exclude_self else 0)))
    out: list[str] = []
    for s in range(0, len(q), 512):
        sim = q[s:s + 512] @ r.T
        if exclude_self:
            idx = np.arange(s, min(s + 512, len(q)))
            sim[np.arange(len(idx)), idx] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        for row, cand in enumerate(top):
            votes: dict[str, float] = {}
            for j in cand:
                votes[labels[j]] = votes.get(labels[j], 0.0) + 1.0 + 1e-6 * float(sim[row, j])
            out.append(max(votes.items(), key=lambda kv: (kv[1], kv[0]))[0])
    return out


@dataclass
class ClassifierCheck:
    """How well the classifier recognises real examples of each class."""

    method: str  # "held-out examples" | "leave-one-out on training examples" | "the probe's"
    accuracy: Share
    recall: dict[str, Share]

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "accuracy": self.accuracy.to_json(),
                "recall": {c: s.to_json() for c, s in self.recall.items()}}


def check_classifier(true: Sequence[str], predicted: Sequence[str], method: str
                     ) -> ClassifierCheck:
    ok = [a == b for a, b in zip(true, predicted, strict=True)]
    recall = {}
    for c in sorted(set(true)):
        hits = [o for t, o in zip(true, ok, strict=True) if t == c]
        recall[c] = wilson(sum(hits), len(hits))
    return ClassifierCheck(method, wilson(sum(ok), len(ok)), recall)


# ----------------------------------------------------------------------------------------------
# Comparing shares
# ----------------------------------------------------------------------------------------------
@dataclass
class ClassRow:
    name: str
    training: Share
    generated: Share
    ratio: float  # generated share / training share (inf when never in training)
    ratio_lo: float
    ratio_hi: float
    recall: Share | None = None  # the classifier's, on real examples of this class
    fidelity: Share | None = None  # asked for this class, recognised as it (conditional)

    @property
    def differs(self) -> bool:
        """The bootstrap interval of the ratio excludes 1."""
        return self.ratio_hi < 1.0 or self.ratio_lo > 1.0

    def to_json(self) -> dict[str, Any]:
        return {"class": self.name, "training": self.training.to_json(),
                "generated": self.generated.to_json(), "ratio": _num(self.ratio),
                "ratio_lo": _num(self.ratio_lo), "ratio_hi": _num(self.ratio_hi),
                "differs": self.differs,
                "recall": self.recall.to_json() if self.recall else None,
                "fidelity": self.fidelity.to_json() if self.fidelity else None}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass
class RepresentationResult:
    classes: list[ClassRow]
    training: int
    generated: int
    tv: float
    tv_lo: float
    tv_hi: float
    chi_square: float | None
    p_value: float | None
    dof: int
    classifier: str
    check: ClassifierCheck | None
    notes: list[str] = field(default_factory=list)

    def headline(self) -> str:
        return headline(self)

    def to_json(self) -> dict[str, Any]:
        return {"classes": [c.to_json() for c in self.classes], "training": self.training,
                "generated": self.generated, "total_variation": self.tv,
                "total_variation_lo": self.tv_lo, "total_variation_hi": self.tv_hi,
                "chi_square": self.chi_square, "p_value": self.p_value, "dof": self.dof,
                "classifier": self.classifier,
                "classifier_check": self.check.to_json() if self.check else None,
                "headline": self.headline(), "findings": findings(self), "notes": self.notes,
                "method": METHOD}


METHOD = ("training shares: every training example of the run, its class from its folder; "
          "generated shares: N samples classified by the probe's classifier or by a "
          f"{K}-nearest-neighbour vote (cosine) among training examples in the probe's feature "
          "space; 95% Wilson intervals on each share; ratio generated/training with a 95% "
          f"bootstrap interval ({BOOTSTRAP} resamples of both sides); total variation distance "
          "0.5 * sum |p_gen - p_train| with a bootstrap interval; chi-square test of "
          "homogeneity on the 2 x classes table of counts")


def compare(training: Sequence[str], generated: Sequence[str], *, seed: int = 0,
            classifier: str = "", check: ClassifierCheck | None = None,
            asked: Sequence[str] | None = None, boot: int = BOOTSTRAP
            ) -> RepresentationResult:
    """Each class's share among ``generated`` labels against its share among ``training``
    labels (see the module docstring for the figures). ``asked``: the class each sample was
    asked for (conditional models), for per-class fidelity."""
    from scipy import stats

    if not training or not generated:
        raise UserError("representation needs training examples with classes and at least one "
                        "generated sample")
    t, g = Counter(training), Counter(generated)
    classes = sorted(set(t) | set(g))
    nt, ng = len(training), len(generated)
    tc = np.array([t[c] for c in classes], dtype=np.float64)
    gc = np.array([g[c] for c in classes], dtype=np.float64)
    pt, pg = tc / nt, gc / ng
    rng = np.random.default_rng(seed)
    bt = rng.multinomial(nt, pt, size=boot) / nt
    bg = rng.multinomial(ng, pg, size=boot) / ng
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pt > 0, pg / np.where(pt > 0, pt, 1), np.inf)
        bratio = np.where(bt > 0, bg / np.where(bt > 0, bt, 1), np.inf)
    lo = np.quantile(bratio, 0.025, axis=0)
    hi = np.quantile(bratio, 0.975, axis=0)
    tv = 0.5 * float(np.abs(pg - pt).sum())
    # the bootstrap distribution of TV is centred above TV itself (noise only adds distance):
    # the basic (reverse percentile) interval corrects for that bias
    btv = 0.5 * np.abs(bg - bt).sum(axis=1)
    tv_lo = max(0.0, 2 * tv - float(np.quantile(btv, 0.975)))
    tv_hi = max(tv_lo, 2 * tv - float(np.quantile(btv, 0.025)))
    chi = p = None
    keep = (tc + gc) > 0
    if keep.sum() > 1:
        res = stats.chi2_contingency(np.vstack([tc[keep], gc[keep]]))
        chi, p = float(res.statistic), float(res.pvalue)
    fidelity: dict[str, Share] = {}
    if asked is not None:
        if len(asked) != ng:
            raise UserError("the probe gave a wrong number of asked-for classes")
        for c in sorted(set(asked)):
            got = [b for a, b in zip(asked, generated, strict=True) if a == c]
            fidelity[c] = wilson(sum(1 for b in got if b == c), len(got))
    rows = [ClassRow(c, wilson(int(tc[i]), nt), wilson(int(gc[i]), ng), float(ratio[i]),
                     float(lo[i]), float(hi[i]),
                     check.recall.get(c) if check else None, fidelity.get(c))
            for i, c in enumerate(classes)]
    notes = []
    if check is not None:
        weak = [c for c, s in check.recall.items() if s.n and s.value < 0.5]
        if weak:
            notes.append("the classifier recognises real examples of " + ", ".join(weak[:6])
                         + " less than half of the time, so their generated shares are "
                         "uncertain beyond the intervals shown")
    unseen = [c for c in g if c not in t]
    if unseen:
        notes.append("generated samples were labelled with classes the training data does not "
                     "have: " + ", ".join(unseen[:6]))
    return RepresentationResult(rows, nt, ng, tv, tv_lo, tv_hi, chi, p,
                                int(keep.sum()) - 1, classifier, check, notes)


def _times(r: float) -> str:
    return f"{r:.1f}x" if r < 10 else f"{r:.0f}x"


def class_words(row: ClassRow) -> str:
    """One class's comparison in plain words."""
    shares = (f"{100 * row.generated.value:.1f}% of samples vs {100 * row.training.value:.1f}% "
              "of training examples")
    if row.generated.k == 0:
        return f"class {row.name} is never generated ({shares})"
    if row.training.k == 0:
        return f"class {row.name} is generated but never appears in training ({shares})"
    if row.ratio >= 1:
        return f"class {row.name} is generated {_times(row.ratio)} more often than it appears " \
               f"in training ({shares})"
    return f"class {row.name} is generated {_times(1 / row.ratio)} less often than it " \
           f"appears in training ({shares})"


def _strength(row: ClassRow) -> float:
    if row.generated.k == 0 or row.training.k == 0:
        return math.inf
    return abs(math.log(row.ratio))


def findings(r: RepresentationResult) -> list[str]:
    """Every class whose share differs beyond chance and by at least :data:`NOTABLE_RATIO`,
    strongest first, in words."""
    rows = [c for c in r.classes if c.differs and _strength(c) >= math.log(NOTABLE_RATIO)]
    return [class_words(c) for c in sorted(rows, key=_strength, reverse=True)]


def headline(r: RepresentationResult) -> str:
    found = findings(r)
    base = (f"{r.generated} samples, {r.training} training examples, {len(r.classes)} classes; "
            f"total variation {r.tv:.2f}")
    if found:
        more = (f" ({len(found) - 1} more class"
                f"{'es differ' if len(found) > 2 else ' differs'})") if len(found) > 1 else ""
        return f"{found[0][0].upper()}{found[0][1:]}{more}. {base}."
    return f"Every class is generated about as often as it appears in training. {base}."


# ----------------------------------------------------------------------------------------------
# The whole check, through a probe
# ----------------------------------------------------------------------------------------------
def audit(probe: Any, n: int, seed: int, *, read: Callable[[Sequence[ProbeExample]], list[Any]],
          embed: Callable[[Sequence[Any]], np.ndarray],
          sample: Callable[[int, int], list[Any]],
          progress: Callable[[str], None] | None = None,
          max_references: int = MAX_REFERENCES) -> RepresentationResult:
    """Representation of a loaded probe's model: ``read``, ``embed`` and ``sample`` are the
    job's batched, cancellable readers (``plugins.audit.engine.targets``)."""
    say = progress or (lambda _s: None)
    examples = probe.examples()
    labels = example_labels(probe, examples)
    train_ix = [i for i, e in enumerate(examples) if e.member]
    held_ix = [i for i, e in enumerate(examples) if not e.member]
    if not train_ix:
        raise UserError("the run trained on no example it recorded")
    train_labels = [labels[i] for i in train_ix]
    asked: list[str] | None = None
    say("generating samples")
    if hasattr(probe, "sample_with_labels"):
        items, asked_raw = probe.sample_with_labels(n, seed)
        samples, asked = list(items), [str(a) for a in asked_raw]
    else:
        samples = sample(n, seed)
    if hasattr(probe, "classify"):
        say("classifying the samples")
        generated = [str(x) for x in probe.classify(samples)]
        classifier = "the plugin's own classifier"
        check = None
        if held_ix:
            held = [examples[i] for i in held_ix]
            check = check_classifier([labels[i] for i in held_ix],
                                     [str(x) for x in probe.classify(read(held))],
                                     "held-out examples")
    else:
        rng = np.random.default_rng(seed)
        refs = sorted(rng.choice(train_ix, size=min(max_references, len(train_ix)),
                                 replace=False).tolist())
        say("reading and embedding the training examples")
        ref_feats = embed(read([examples[i] for i in refs]))
        ref_labels = [labels[i] for i in refs]
        say("classifying the samples")
        generated = knn_labels(embed(samples), ref_feats, ref_labels)
        classifier = (f"{K} nearest training examples ({len(refs)} of {len(train_ix)}) in the "
                      "plugin's feature space")
        if held_ix:
            held_ix = held_ix[:max_references]
            pred = knn_labels(embed(read([examples[i] for i in held_ix])), ref_feats,
                              ref_labels)
            check = check_classifier([labels[i] for i in held_ix], pred, "held-out examples")
        else:
            pred = knn_labels(ref_feats, ref_feats, ref_labels, exclude_self=True)
            check = check_classifier(ref_labels, pred, "leave-one-out on training examples")
    if len(generated) != len(samples):
        raise UserError("the audit probe classified a wrong number of samples: the plugin's "
                        "probe needs fixing")
    return compare(train_labels, generated, seed=seed, classifier=classifier, check=check,
                   asked=asked)
