"""Live metric plots (pyqtgraph), fed from job metric events or a run's metrics.jsonl.

Curves are created once and updated with ``setData`` from a timer only when new points
arrived (at most 20 redraws per second however fast a job logs). The rate also adapts to what a
redraw costs: the plots may use about 1% of one core (``PLOT_CPU_BUDGET``), and between
redraws the timer sleeps until the budget allows the next (nothing new: it looks 5 times a
second). On a 2-core machine
a GUI thread redrawing 20 times a second (8 ms each) preempted the job's torch threads often
enough to halve training throughput (bench/ui_latency.py); a few redraws a second look as live.
Long runs stay cheap through peak downsampling and clip-to-view, as in pyqtgraph's
scrollingPlots example. Metric names with a
slash share a plot: ``loss/D`` and ``loss/G`` are two curves on the "loss" plot.

What people read comes from ``studio.plotlabels``: plot titles and axis names in words, a
stable order (the main loss first, the same live and reopened), legends in the title row
(never on the curves), markers while a curve has few points (a lone first point on a line
plot draws nothing), and ML internals only with "Advanced" ticked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio import plotlabels, runs
from studio.plotlabels import LabelTable
from studio.qtjobs import MetricStore

REDRAW_MS = 50
IDLE_MS = 200  # how often a plot with nothing new looks again
PLOT_CPU_BUDGET = 0.01  # share of one core the live plots may use while points stream in
PALETTE = ["#4C9BE8", "#E8744C", "#58B368", "#C65AD6", "#E8C14C", "#4CD6D0", "#E84C7D", "#8C8C8C"]

MARKER_POINTS = 30  # curves with fewer points show a marker at each one
ONE_COLUMN_BELOW = 560  # dock width (px) under which plots stack in one column

Series = dict[str, tuple[list[float], list[float]]]
group_of = plotlabels.group_of


def smooth(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average (debiased), as TensorBoard's smoothing slider does."""
    if alpha <= 0 or values.size == 0:
        return values
    out = np.empty_like(values, dtype=float)
    acc, weight = 0.0, 0.0
    for i, v in enumerate(values):
        acc = alpha * acc + (1 - alpha) * v
        weight = alpha * weight + (1 - alpha)
        out[i] = acc / weight
    return out


def _delete_now(plot: pg.PlotItem) -> None:
    """Destroy a removed plot's Qt objects now, on the GUI thread.

    Why: a pyqtgraph PlotItem, its view box, menus and option widgets (about a hundred Qt
    objects) hold each other in reference cycles, so only Python's cyclic garbage collector
    frees them, and it runs in whichever thread happens to allocate: often a job's worker
    thread. Qt objects destroyed from a worker thread crashed the app ("shared QObject was
    deleted directly", then a segfault) a few jobs into a session. Deleted here, what the
    collector later finds are empty Python wrappers, which are safe to free anywhere.
    """
    import shiboken6

    form = plot.ctrl.transformGroup.parentWidget()
    # the parentless ones: menus, the option form, the widget groups that track their state;
    # the plot takes its child items (view box, axes, curves, legend) with it
    owned = [*plot.vb.menu.widgetGroups, plot.stateGroup, plot.vb.menu, plot.ctrlMenu,
             form.window() if form else None, plot]
    for obj in owned:
        if obj is not None and shiboken6.isValid(obj):
            shiboken6.delete(obj)


class TickGrid(pg.GridItem):
    """Grid lines at the plot's labelled (major) ticks, drawn as an item of the view.

    Why not ``PlotItem.showGrid``: an axis grid makes each axis span the whole view, so every
    curve update repainted both axes with their tick text (20 ms a redraw for the GAN's four
    plots on a 2-core machine, 9-15 ms with this; bench/plot_cost.py). The spacing comes from
    the axes themselves, so lines and labels agree.
    """

    def __init__(self, plot: pg.PlotItem) -> None:
        super().__init__(textPen=None)  # the theme's foreground, faded by GridItem
        self._plot = plot

    def generatePicture(self) -> None:
        spacing = []
        for name in ("bottom", "left"):
            axis = self._plot.getAxis(name)
            lo, hi = sorted(axis.range)
            length = axis.geometry().width() if name == "bottom" else axis.geometry().height()
            levels = axis.tickSpacing(lo, hi, max(length, 1.0)) if hi > lo else []
            spacing.append([levels[0][0]] if levels else [None])
        # set directly: setTickSpacing() would schedule another paint from inside this one
        self.opts["tickSpacing"] = tuple(spacing)
        self.grid_depth = 1
        super().generatePicture()


class PlotsWidget(QWidget):
    """The Live plots dock's content.

    Sources are jobs of this session (by id) and reopened runs (by folder), each with the
    plugin it belongs to (whose ``metric_labels`` add to the words). ``pinned`` keeps the
    shown source when the user switches panels; the window reads it.
    """

    #: the source shown changed (job id or run folder)
    source_changed = Signal(object)

    def __init__(self, store: MetricStore, parent: QWidget | None = None,
                 labels_for: Callable[[str], LabelTable | None] | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.labels_for = labels_for or (lambda _plugin: None)
        self._sources: list[tuple[str, int | Path, str]] = []  # (label, job id or dir, plugin)
        self._static: dict[Path, Series] = {}
        self._current: int | Path | None = None
        self._drawn_version = -1
        self._plots: dict[str, pg.PlotItem] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._marked: dict[str, bool] = {}  # curve -> drawn with markers
        self._layout_key: tuple[tuple[str, ...], int] = ((), 0)
        self.redraws = 0  # counted for tests and the latency bench

        self.source_box = QComboBox()
        self.source_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_box.setMinimumContentsLength(10)
        self.source_box.setAccessibleName("Curves to show")
        self.source_box.currentIndexChanged.connect(self._on_source_changed)
        self.pin = QToolButton()
        self.pin.setText("Pin")
        self.pin.setCheckable(True)
        self.pin.setToolTip("Keep showing these curves when you switch to another plugin "
                            "(unpinned, the plots follow the open plugin's latest job)")
        self.advanced = QCheckBox("Advanced")
        self.advanced.setToolTip("Also show the training internals: learning rate, KL weight, "
                                 "discriminator outputs, gradient penalty, speed")
        self.advanced.toggled.connect(self._force_redraw)
        self.smoothing = QDoubleSpinBox()
        self.smoothing.setRange(0.0, 0.99)
        self.smoothing.setSingleStep(0.1)
        self.smoothing.setValue(0.0)
        self.smoothing.setToolTip("Exponential smoothing of the curves (0 = raw)")
        self.smoothing.setAccessibleName("Smoothing")
        self.smoothing.valueChanged.connect(self._force_redraw)
        open_btn = QPushButton("Open run…")
        open_btn.setToolTip("Show the curves of a finished or earlier run")
        open_btn.clicked.connect(self._ask_open_run)
        # two short rows: the dock stays narrow (one row needed 506 px of the work area)
        top = QHBoxLayout()
        top.addWidget(self.source_box, 1)
        top.addWidget(self.pin)
        second = QHBoxLayout()
        second.addWidget(self.advanced)
        second.addStretch(1)
        self.smoothing.setPrefix("smooth ")
        second.addWidget(self.smoothing)
        second.addWidget(open_btn)

        self.graphics = pg.GraphicsLayoutWidget()
        self._next_redraw = 0.0  # monotonic time before which streaming redraws wait
        self._cost_since: float | None = None  # GUI-thread CPU clock when the last redraw began
        self._redrawn_at = 0.0
        self.empty_label = QLabel("No curves yet: start a training job, or open an earlier run.")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setObjectName("placeholder")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addLayout(second)
        lay.addWidget(self.empty_label, 1)
        lay.addWidget(self.graphics, 1)
        self.graphics.hide()

        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._maybe_redraw)
        self._timer.start()
        self.workspace_for_dialog: Callable[[], Path] | None = None

    # -- sources --------------------------------------------------------------------------------
    def add_job(self, job_id: int, label: str, select: bool = True, plugin: str = "") -> None:
        if any(src == job_id for _, src, _ in self._sources):
            if select:
                self.show_source(job_id)
            return
        self._sources.append((label, job_id, plugin))
        self.source_box.addItem(label, job_id)
        if select:
            self.show_source(job_id)

    def remove_job(self, job_id: int) -> None:
        """Forget a job of this session (out of the kept history) and its curves, unless it is
        the one on show."""
        if job_id == self._current:
            return
        for i, (_, src, _) in enumerate(self._sources):
            if src == job_id:
                del self._sources[i]
                self.source_box.blockSignals(True)
                self.source_box.removeItem(i)
                self.source_box.blockSignals(False)
                break
        self.store.forget(job_id)

    def open_run(self, run_dir: Path, label: str | None = None) -> int:
        """Load a run's metrics.jsonl and show it; returns the number of points loaded."""
        run_dir = Path(run_dir)
        data = runs.read_metrics(run_dir)
        self._static[run_dir] = data
        manifest = runs.read_manifest(run_dir) or {}
        plugin = str(manifest.get("plugin") or "")
        if label is None:
            what = manifest.get("title") or manifest.get("job") or ""
            label = f"{what} · {run_dir.name}" if what else run_dir.name
        if not any(src == run_dir for _, src, _ in self._sources):
            self._sources.append((label, run_dir, plugin))
            self.source_box.addItem(label, str(run_dir))
        self.show_source(run_dir)
        return sum(len(s) for s, _ in data.values())

    def show_source(self, source: int | Path) -> None:
        for i, (_, src, _) in enumerate(self._sources):
            if src == source:
                if self.source_box.currentIndex() != i:
                    self.source_box.setCurrentIndex(i)  # triggers _on_source_changed
                else:
                    self._set_current(src)
                return

    def latest_source(self, plugin: str) -> int | Path | None:
        """The newest source of ``plugin`` (a job of this session or a reopened run)."""
        for _, src, owner in reversed(self._sources):
            if owner == plugin:
                return src
        return None

    def source_plugin(self, source: int | Path | None) -> str:
        return next((owner for _, src, owner in self._sources if src == source), "")

    @property
    def current_source(self) -> int | Path | None:
        return self._current

    @property
    def pinned(self) -> bool:
        return self.pin.isChecked()

    def _on_source_changed(self, index: int) -> None:
        if 0 <= index < len(self._sources):
            self._set_current(self._sources[index][1])

    def _set_current(self, source: int | Path) -> None:
        self._current = source
        self._reset_plots()
        self._force_redraw()
        self.source_changed.emit(source)

    def _ask_open_run(self) -> None:
        start = str(self.workspace_for_dialog()) if self.workspace_for_dialog else ""
        folder = QFileDialog.getExistingDirectory(self, "Open run folder", start)
        if folder:
            self.open_run(Path(folder))

    # -- drawing --------------------------------------------------------------------------------
    def _series(self) -> Series:
        if isinstance(self._current, int):
            return self.store.of(self._current)
        if isinstance(self._current, Path):
            return self._static.get(self._current, {})
        return {}

    def _version(self) -> int:
        if isinstance(self._current, int):
            return self.store.version[self._current]
        return 0

    def _labels(self) -> LabelTable | None:
        return self.labels_for(self.source_plugin(self._current))

    def _force_redraw(self) -> None:
        self._drawn_version = -1
        self._maybe_redraw()

    def _reset_plots(self) -> None:
        plots = list(self._plots.values())
        self.graphics.clear()  # out of the layout and the scene first
        self._plots.clear()
        self._curves.clear()
        self._marked.clear()
        self._layout_key = ((), 0)
        for plot in plots:
            _delete_now(plot)

    def showEvent(self, event: Any) -> None:
        """Hidden plots skip redraws; catch up as soon as the dock is shown again."""
        super().showEvent(event)
        self._drawn_version = -1

    def resizeEvent(self, event: Any) -> None:
        """One column in a narrow dock, two in a wide one (titles and legends stay legible)."""
        super().resizeEvent(event)
        if self._plots and self._columns() != self._layout_key[1]:
            self._relayout()

    def _columns(self) -> int:
        return 1 if self.width() < ONE_COLUMN_BELOW or len(self._plots) < 2 else 2

    def _maybe_redraw(self) -> None:
        now = time.monotonic()
        if self._cost_since is not None:
            # what the last redraw really cost, read on the tick after it: its setData and the
            # paint that followed in the event loop (and whatever else the GUI thread did in
            # between: an overestimate)
            cost = time.thread_time() - self._cost_since
            self._cost_since = None
            self._next_redraw = max(self._next_redraw, self._redrawn_at + cost / PLOT_CPU_BUDGET)
        version = self._version()
        if version == self._drawn_version or not self.isVisible():
            self._pace(IDLE_MS)
            return
        if now < self._next_redraw and self._drawn_version != -1:
            # streaming points wait for the budget (a forced redraw, -1, never does); the
            # timer sleeps until then rather than waking the GUI thread 20 times a second
            self._pace(int((self._next_redraw - now) * 1000) + 1)
            return
        self._drawn_version = version
        self._cost_since = time.thread_time()
        self._redrawn_at = now
        self._next_redraw = now + REDRAW_MS / 1000.0
        self._redraw()
        self._pace(REDRAW_MS)  # soon again: that tick reads what the redraw cost

    def _pace(self, ms: int) -> None:
        ms = max(REDRAW_MS, ms)
        if self._timer.interval() != ms or not self._timer.isActive():
            self._timer.start(ms)

    def _visible_names(self, series: Series) -> list[str]:
        """The curves to draw: all of them with Advanced ticked, else the plain ones."""
        labels = self._labels()
        show_all = self.advanced.isChecked()
        return [n for n in series
                if show_all or not plotlabels.plot_label(group_of(n), labels).advanced]

    def _redraw(self) -> None:
        series = self._series()
        names = self._visible_names(series)
        if set(self._curves) - set(names):  # Advanced was unticked: start the plots afresh
            self._reset_plots()
        has_data = bool(names)
        self.graphics.setVisible(has_data)
        self.empty_label.setVisible(not has_data)
        if not has_data:
            self.empty_label.setText(
                "Only training internals so far: tick Advanced to see them." if series else
                "No curves yet: start a training job, or open an earlier run.")
            return
        new = [n for n in names if n not in self._curves]
        for name in new:
            self._make_curve(name)
        if new:
            self._relayout()
        alpha = float(self.smoothing.value())
        for name in names:
            curve = self._curves[name]
            steps, values = series[name]
            x = np.asarray(steps, dtype=float)
            y = smooth(np.asarray(values, dtype=float), alpha)
            few = len(x) < MARKER_POINTS
            if few != self._marked.get(name):
                self._marked[name] = few
                colour = curve.opts["pen"].color()
                curve.setSymbol("o" if few else None)
                curve.setSymbolSize(5)
                curve.setSymbolPen(None)
                curve.setSymbolBrush(colour)
            curve.setData(x, y)
        self.redraws += 1

    def _make_curve(self, name: str) -> pg.PlotDataItem:
        group = group_of(name)
        plot = self._plots.get(group)
        if plot is None:
            plot = pg.PlotItem()
            plot.addItem(TickGrid(plot), ignoreBounds=True)  # not showGrid: see TickGrid
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            plot.setLabel("bottom", "training step")
            axis = plotlabels.plot_label(group, self._labels()).axis
            for side in ("left", "bottom"):  # "0.2", never "200 (x0.001)"
                plot.getAxis(side).enableAutoSIPrefix(False)
            if axis:
                plot.setLabel("left", axis)
            self._plots[group] = plot
        # width 1: wider pens take Qt's slow path for antialiased polylines
        curve = plot.plot(pen=pg.mkPen(PALETTE[0], width=1))
        self._curves[name] = curve
        return curve

    def _relayout(self) -> None:
        """Place the plots in their stable order; colour each plot's curves by their order
        and write the legend into the title row, where it never covers a curve."""
        labels = self._labels()
        order = plotlabels.plot_order(list(self._plots), labels)
        cols = self._columns()
        key = (tuple(order), cols)
        if key != self._layout_key:
            layout = self.graphics.ci
            for plot in self._plots.values():
                if plot in layout.items:
                    layout.removeItem(plot)
            for i, group in enumerate(order):
                layout.addItem(self._plots[group], row=i // cols, col=i % cols)
            self._layout_key = key
        for group in order:
            plot = self._plots[group]
            names = plotlabels.curve_order(
                [n for n in self._curves if group_of(n) == group], labels)
            keys = []
            for i, name in enumerate(names):
                colour = PALETTE[i % len(PALETTE)]
                curve = self._curves[name]
                curve.setPen(pg.mkPen(colour, width=1))
                if self._marked.get(name):
                    curve.setSymbolBrush(colour)
                if len(names) > 1:
                    keys.append(f'<span style="color:{colour}">━ '
                                f"{plotlabels.curve_label(name, labels).title}</span>")
            title = plotlabels.plot_label(group, labels).title
            plot.setTitle(f"<b>{title}</b>" + ("<br>" + " &nbsp;".join(keys) if keys else ""),
                          size="9pt")

    def plot_titles(self) -> list[str]:
        """The plain titles of the shown plots, in their order (tests, accessibility)."""
        labels = self._labels()
        return [plotlabels.plot_label(g, labels).title
                for g in plotlabels.plot_order(list(self._plots), labels)]

    def curve_names(self) -> list[str]:
        return sorted(self._curves)

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._curves[name].getData()
        return (np.asarray(x if x is not None else []), np.asarray(y if y is not None else []))
