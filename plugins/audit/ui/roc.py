"""The membership attacks' ROC curves on log-log axes (pyqtgraph).

Log axes because what matters is the low false-alarm end: an attack that finds 10% of the
training examples while flagging 0.1% of the held-out ones is a real leak even when its AUC
looks modest (Carlini et al. 2022). The dotted lines mark 0.1% and 1% false alarms, the rates
the headline reports. Points at zero cannot be drawn on a log axis and are left out; the chance
line starts at one held-out example.

The curves are created when a result is shown and deleted explicitly on the GUI thread when the
next one replaces them (pyqtgraph items hold reference cycles; see ``studio.plots``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from .words import attack_name

COLOURS = ("#4a7bb7", "#e07b39", "#3ca46f", "#9b59b6", "#d64545", "#8c8c3c")
MARKS = (0.001, 0.01)


class RocPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setLogMode(x=True, y=True)
        self.plot.setLabel("bottom", "false alarms (share of held-out examples flagged)")
        self.plot.setLabel("left", "training examples found")
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.legend = self.plot.addLegend(offset=(-6, -6), labelTextSize="8pt")
        self.plot.setMinimumSize(200, 120)
        self.items: list[Any] = []
        self.curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)

    def clear(self) -> None:
        import shiboken6

        for item in self.items:
            self.plot.removeItem(item)
            if shiboken6.isValid(item):
                shiboken6.delete(item)
        self.items = []
        self.curves = {}

    def set_attacks(self, attacks: Sequence[dict[str, Any]]) -> None:
        """One curve per attack (named with its AUC), the chance line and the two marks."""
        self.clear()
        if not attacks:
            return
        nonmembers = min(int(a.get("nonmembers", 0)) for a in attacks)
        lo = 1.0 / max(2, nonmembers)
        for i, a in enumerate(attacks):
            fpr = np.asarray(a["roc"]["fpr"], dtype=float)
            tpr = np.asarray(a["roc"]["tpr"], dtype=float)
            keep = (fpr > 0) & (tpr > 0)
            name = f"{attack_name(a['attack'])} (AUC {a['auc']:.2f})"
            pen = pg.mkPen(COLOURS[i % len(COLOURS)], width=2 if i == 0 else 1)
            curve = self.plot.plot(fpr[keep], tpr[keep], pen=pen, name=name)
            self.items.append(curve)
            self.curves[a["attack"]] = (fpr[keep], tpr[keep])
        chance = self.plot.plot([lo, 1.0], [lo, 1.0], name="chance",
                                pen=pg.mkPen((140, 140, 140), width=1,
                                             style=Qt.PenStyle.DashLine))
        self.items.append(chance)
        for mark in MARKS:
            if mark < lo:  # too few held-out examples to reach this rate
                continue
            line = pg.InfiniteLine(math.log10(mark), angle=90, movable=False,
                                   pen=pg.mkPen((140, 140, 140), style=Qt.PenStyle.DotLine),
                                   label=f"{mark:.1%}",
                                   labelOpts={"position": 0.95, "color": (140, 140, 140)})
            self.plot.addItem(line)
            self.items.append(line)
        ticks = _ticks(lo)
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).setTicks([ticks, []])
        self.plot.setXRange(math.log10(lo), 0.0, padding=0.02)
        self.plot.setYRange(math.log10(lo), math.log10(1.05), padding=0.02)


def _ticks(lo: float) -> list[tuple[float, str]]:
    """Rates as percentages at 1, 2 and 5 of each decade from ``lo`` to 100% (pyqtgraph's own
    log ticks label every minor step on a short range, and they overlap)."""
    out = []
    for e in range(-6, 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** e
            if lo * 0.999 <= v <= 1.0:
                out.append((math.log10(v), f"{100 * v:g}%"))
    return out
