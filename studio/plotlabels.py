"""Words for the live plots: metric keys as people read them.

Jobs name their metrics for code (``loss/D``, ``tokens_per_s``, ``bits_per_char/val``); the
plots dock shows titles, axis names and legend entries from this table instead, orders the
plots (the main loss first, whatever arrives first) and keeps ML internals (learning rate,
β, discriminator outputs, gradient penalty) behind the dock's "Advanced" toggle.

A name with a slash is a curve of a plot: the part before the first slash is the plot
(``loss``), the whole name is the curve (``loss/D``). A plugin may add or override entries
with its ``metric_labels`` class attribute (same keys, a ``MetricLabel`` or just a title).
No Qt here: the table is read by the window and by tests alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricLabel:
    """How one plot (a group key such as ``loss``) or one curve (``loss/D``) is shown.

    ``title``: the plot title, or the curve's legend entry. ``axis``: the value axis's name
    (plots only; empty: none). ``advanced``: shown only with "Advanced" ticked. ``rank``:
    order of plots in the dock and of curves in a legend (lower first; ties by key).
    """

    title: str
    axis: str = ""
    advanced: bool = False
    rank: int = 50


LabelTable = Mapping[str, "MetricLabel | str"]

#: plots (the part of a metric name before the first slash, or the whole name)
GROUPS: dict[str, MetricLabel] = {
    "loss": MetricLabel("Loss", "lower is better", rank=0),
    "bits_per_char": MetricLabel("Validation loss (bits per character)", "bits per character",
                                 rank=1),
    "accuracy": MetricLabel("Accuracy", "share correct", rank=2),
    "quality": MetricLabel("Level quality", "score", rank=2),
    "mel_error_db": MetricLabel("Sound error (held-out)", "decibels", rank=3),
    "diversity": MetricLabel("Sample variety", "vs real images", rank=4),
    "perplexity": MetricLabel("Perplexity (held-out text)", "perplexity", rank=5),
    "privacy spent (ε)": MetricLabel("Privacy spent (ε)", "ε", rank=6),
    "auc": MetricLabel("Membership inference", "AUC", rank=0),
    "copied": MetricLabel("Copied samples", "share copied", rank=1),
    "representation": MetricLabel("Representation gap", "total variation", rank=2),
    "bias": MetricLabel("Bias between groups", "gap", rank=3),
    "tokens_per_s": MetricLabel("Tokens per second", "tokens/s", advanced=True,
                                rank=20),
    "lr": MetricLabel("Learning rate", "learning rate", advanced=True, rank=21),
    "beta": MetricLabel("KL weight (β)", "β", advanced=True, rank=22),
    "gp": MetricLabel("Gradient penalty", "penalty", advanced=True, rank=23),
    "D": MetricLabel("Discriminator outputs", "P(real)", advanced=True,
                     rank=24),
    "reward": MetricLabel("Preference reward", "reward", advanced=True, rank=25),
}

#: curves (whole metric names): the legend entries
CURVES: dict[str, MetricLabel] = {
    "loss/G": MetricLabel("generator", rank=0),
    "loss/D": MetricLabel("discriminator", rank=1),
    "loss/train": MetricLabel("training", rank=0),
    "loss/smoothed": MetricLabel("training (smoothed)", rank=1),
    "loss/val": MetricLabel("held-out", rank=2),
    "loss/held_out": MetricLabel("held-out", rank=2),
    "loss/recon": MetricLabel("reconstruction", rank=0),
    "loss/reconstruction": MetricLabel("reconstruction", rank=0),
    "loss/kl": MetricLabel("KL divergence", rank=1),
    "loss/KL": MetricLabel("KL divergence", rank=1),
    "loss/sft": MetricLabel("learning the answers", rank=0),
    "loss/dpo": MetricLabel("preferences", rank=1),
    "bits_per_char/val": MetricLabel("held-out"),
    "perplexity/val": MetricLabel("held-out"),
    "accuracy/train": MetricLabel("training", rank=0),
    "accuracy/train_f1": MetricLabel("training (F1)", rank=1),
    "accuracy/val": MetricLabel("held-out", rank=2),
    "accuracy/val_sampled": MetricLabel("held-out, played freely", rank=3),
    "accuracy/val_onsets": MetricLabel("held-out note onsets", rank=4),
    "accuracy/val_f1": MetricLabel("held-out (F1)", rank=5),
    "mel_error_db/val": MetricLabel("held-out"),
    "quality/score": MetricLabel("overall score", rank=0),
    "quality/playable": MetricLabel("playable share", rank=1),
    "quality/diversity": MetricLabel("variety", rank=2),
    "quality/novelty": MetricLabel("novelty", rank=3),
    "quality/tile_js": MetricLabel("tile mix difference", rank=4),
    "quality/held_out_tile_js": MetricLabel("tile mix difference (held-out)", rank=5),
    "D/real": MetricLabel("on real images", rank=0),
    "D/fake": MetricLabel("on generated images", rank=1),
    "D/trained": MetricLabel("on training images", rank=2),
    "D/held_out": MetricLabel("on held-out images", rank=3),
    "reward/margin": MetricLabel("margin", rank=0),
    "reward/accuracy": MetricLabel("share preferred", rank=1),
    "representation/total_variation": MetricLabel("total variation"),
}


def group_of(name: str) -> str:
    """The plot a metric belongs to: ``loss/D`` -> ``loss``."""
    return name.split("/", 1)[0] if "/" in name else name


def humanise(key: str) -> str:
    """A readable fallback for a key nobody described: ``val_sampled`` -> ``Val sampled``,
    ``tokens_per_s`` -> ``Tokens per s``, ``regard_gap/music`` -> ``Regard gap: music``."""
    text = re.sub(r"[_]+", " ", key).replace("/", ": ").strip()
    return text[:1].upper() + text[1:] if text else key


def _get(table: LabelTable | None, key: str) -> MetricLabel | None:
    if not table or key not in table:
        return None
    v = table[key]
    return v if isinstance(v, MetricLabel) else MetricLabel(str(v))


def plot_label(group: str, extra: LabelTable | None = None) -> MetricLabel:
    """Title, axis and place of the plot ``group`` (a plugin's ``extra`` entries first)."""
    found = _get(extra, group) or GROUPS.get(group)
    if found is not None:
        base = GROUPS.get(group)
        if base is not None and found is not base and not found.axis:
            # a plugin renaming a known plot keeps its axis, place and Advanced flag
            return MetricLabel(found.title, base.axis, base.advanced, base.rank)
        return found
    return MetricLabel(humanise(group))


def curve_label(name: str, extra: LabelTable | None = None) -> MetricLabel:
    """The legend entry of curve ``name``: ``loss/D`` -> "discriminator"."""
    found = _get(extra, name) or CURVES.get(name)
    if found is not None:
        return found
    rest = name.split("/", 1)[1] if "/" in name else name
    return MetricLabel(humanise(rest).lower() if "/" in name else humanise(rest))


def plot_order(groups: list[str], extra: LabelTable | None = None) -> list[str]:
    """Plots in a stable order: by rank (the main loss first), then by key. The same for a
    live run, whatever metric arrived first, and for the run reopened later."""
    return sorted(groups, key=lambda g: (plot_label(g, extra).rank, g))


def curve_order(names: list[str], extra: LabelTable | None = None) -> list[str]:
    return sorted(names, key=lambda n: (curve_label(n, extra).rank, n))
