"""The Jobs dock: one row per job with state, progress, rate/ETA, elapsed time and Cancel.

Honest progress: a job's title names its plugin ("Image GAN · Train GAN"); a count that
starts again (reading 1,797 images, then 400 training steps) is a new *phase*, shown as
"Phase 2: 40/400" with its own rate and ETA, never as the first phase's full bar; a job
that gives no total shows a busy bar. Rates read the same everywhere (``studio.fmt.rate``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio import fmt, theme
from studio import params as params_mod
from studio.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    FINAL_STATES,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    JobRecord,
)
from studio.qtjobs import JobManager

COL_JOB, COL_STATE, COL_PROGRESS, COL_RATE, COL_ELAPSED, COL_MESSAGE, COL_CANCEL = range(7)
STATE_COLOURS = {QUEUED: "muted", RUNNING: "info", DONE: "success", FAILED: "error",
                 CANCELLED: "warning", INTERRUPTED: "warning"}  # theme.colour names


def state_colour(state: str) -> QColor:
    return QColor(theme.colour(STATE_COLOURS.get(state, "muted")))



def set_progress(bar: QProgressBar, fraction: float | None) -> None:
    """Show ``fraction`` (None: busy) on a 0-1000 bar, touching it only when what it shows
    changes: a progress bar repaints itself and what lies under it at once, and on a small
    machine every repaint is taken from a running job's threads."""
    lo, hi = (0, 0) if fraction is None else (0, 1000)
    if (bar.minimum(), bar.maximum()) != (lo, hi):
        bar.setRange(lo, hi)
    if fraction is not None:
        value = int(1000 * min(1.0, max(0.0, fraction)))
        if bar.value() != value:
            bar.setValue(value)

class JobsWidget(QWidget):
    job_selected = Signal(int)

    def __init__(self, manager: JobManager, parent: QWidget | None = None,
                 plugin_names: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        self.plugin_names = plugin_names or {}
        self.phases: dict[int, int] = {}  # job id -> phase number (1: the first count)
        self._last_done: dict[int, float] = {}
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Job", "State", "Progress", "Rate · ETA", "Elapsed", "Message",
                                   ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_JOB, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_MESSAGE, QHeaderView.ResizeMode.Stretch)
        self.tree.setColumnWidth(COL_JOB, 200)
        self.tree.setColumnWidth(COL_STATE, 80)
        self.tree.setColumnWidth(COL_PROGRESS, 160)
        self.tree.setColumnWidth(COL_RATE, 150)
        self.tree.setColumnWidth(COL_ELAPSED, 70)
        self.tree.setColumnWidth(COL_CANCEL, 70)
        self.tree.itemSelectionChanged.connect(self._on_select)
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self.show_quick = QCheckBox("Show finished quick jobs")
        self.show_quick.setToolTip("Previews and quick generations that finished without error "
                                   "are hidden to keep the list short")
        self.show_quick.toggled.connect(self._refilter)
        clear = QPushButton("C&lear finished")
        clear.clicked.connect(self.clear_finished)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(self.show_quick)
        bar.addStretch(1)
        bar.addWidget(clear)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.tree)
        self.items: dict[int, QTreeWidgetItem] = {}
        self.bars: dict[int, QProgressBar] = {}
        self.cancel_buttons: dict[int, QToolButton] = {}
        manager.job_added.connect(self.add_job)
        manager.job_changed.connect(self.update_job)
        manager.job_forgotten.connect(self.remove_job)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_elapsed)
        self._tick.start()

    def title(self, rec: JobRecord) -> str:
        """"Image GAN · Train GAN": two plugins' "Train" jobs never read the same."""
        plugin = self.plugin_names.get(rec.plugin, rec.plugin)
        return f"{plugin} · {rec.title}" if plugin and plugin not in rec.title else rec.title

    def add_job(self, rec: JobRecord) -> None:
        title = self.title(rec)
        item = QTreeWidgetItem([title, rec.state, "", "", "", ""])
        item.setData(COL_JOB, Qt.ItemDataRole.UserRole, rec.id)
        item.setToolTip(COL_JOB, title + "\n" + "\n".join(
            f"{label}: {text}" for label, text in params_mod.readable(rec.params)))
        self.tree.insertTopLevelItem(0, item)
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setValue(0)
        bar.setTextVisible(True)
        bar.setFormat("queued")
        bar.setMaximumHeight(18)
        self.tree.setItemWidget(item, COL_PROGRESS, bar)
        btn = QToolButton()
        btn.setText("Cancel")
        btn.setToolTip("Stop this job (a training run keeps its last checkpoint)")
        btn.setAccessibleName(f"Cancel {title}")
        btn.clicked.connect(lambda _=False, jid=rec.id: self.manager.cancel(jid))
        self.tree.setItemWidget(item, COL_CANCEL, btn)
        self.items[rec.id] = item
        self.bars[rec.id] = bar
        self.cancel_buttons[rec.id] = btn
        self.update_job(rec)

    def update_job(self, rec: JobRecord) -> None:
        item = self.items.get(rec.id)
        if item is None or rec.id not in self.bars:
            return
        item.setText(COL_STATE, rec.state)
        item.setForeground(COL_STATE, state_colour(rec.state))
        phase = self._phase(rec)
        bar = self.bars[rec.id]
        frac = rec.fraction
        # a busy indicator when the job (or this phase) gave no total
        set_progress(bar, frac if frac is not None or rec.state == RUNNING else
                     (1.0 if rec.state == DONE else 0.0))
        if rec.state == RUNNING:
            bar.setFormat(progress_text(rec, phase))
        else:
            bar.setFormat(rec.state)
        if rec.state == RUNNING:
            eta = f" · ETA {fmt.duration(rec.eta)}" if rec.eta is not None else ""
            item.setText(COL_RATE, f"{fmt.rate(rec.rate)}{eta}")
        elif rec.state in FINAL_STATES:
            item.setText(COL_RATE, "")
        message = rec.error if rec.state == FAILED else rec.message
        if rec.state == DONE and rec.result is not None and not rec.message:
            message = f"→ {rec.result}"
        item.setText(COL_MESSAGE, message or "")
        item.setToolTip(COL_MESSAGE, (rec.error or message or "") +
                        ("\n(double-click for details)" if rec.traceback else ""))
        if rec.state == FAILED:
            item.setForeground(COL_MESSAGE, state_colour(FAILED))
        item.setText(COL_ELAPSED, fmt.duration(rec.elapsed) if rec.started else "")
        btn = self.cancel_buttons[rec.id]
        btn.setEnabled(rec.state not in FINAL_STATES)
        item.setHidden(self._hide(rec))

    def _phase(self, rec: JobRecord) -> int:
        """The job's phase: a count that went down started a new one."""
        last = self._last_done.get(rec.id)
        if last is not None and rec.done < last:
            self.phases[rec.id] = self.phases.get(rec.id, 1) + 1
        self._last_done[rec.id] = rec.done
        return self.phases.get(rec.id, 1)

    def _hide(self, rec: JobRecord) -> bool:
        """Successful quick (interactive-lane) jobs are noise once done, unless asked for."""
        return rec.lane == "interactive" and rec.state == DONE and not self.show_quick.isChecked()

    def _refilter(self) -> None:
        for job_id, item in self.items.items():
            rec = self.manager.runner.find(job_id)
            item.setHidden(rec is None or self._hide(rec))

    def clear_finished(self) -> None:
        """Remove finished jobs from the list (their run folders stay on disk)."""
        for job_id in list(self.items):
            rec = self.manager.runner.find(job_id)
            if rec is None or rec.state in FINAL_STATES:
                self.remove_job(job_id)

    def remove_job(self, job_id: int) -> None:
        """Drop a job's row (cleared, or out of the session's kept history)."""
        item = self.items.pop(job_id, None)
        self.bars.pop(job_id, None)
        self.cancel_buttons.pop(job_id, None)
        self.phases.pop(job_id, None)
        self._last_done.pop(job_id, None)
        if item is not None:
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))

    def _update_elapsed(self) -> None:
        for rec in self.manager.active():
            item = self.items.get(rec.id)
            if item is not None and rec.started:
                item.setText(COL_ELAPSED, fmt.duration(rec.elapsed))

    def _on_select(self) -> None:
        items = self.tree.selectedItems()
        if items:
            self.job_selected.emit(int(items[0].data(COL_JOB, Qt.ItemDataRole.UserRole)))

    def _on_double_click(self, item: QTreeWidgetItem, _col: int) -> None:
        job_id = int(item.data(COL_JOB, Qt.ItemDataRole.UserRole))
        rec = self.manager.runner.find(job_id)
        if rec is None or rec.state != FAILED:
            return
        box = QMessageBox(QMessageBox.Icon.Critical, f"{self.title(rec)} failed", rec.error or "",
                          parent=self)
        if rec.traceback:
            box.setDetailedText(rec.traceback)
        box.open()


def progress_text(rec: JobRecord, phase: int = 1) -> str:
    """The bar's words: ``40/400  10%``, ``Phase 2: 40/400  10%``, ``Phase 2: 40`` (no
    total), ``working`` (nothing counted yet)."""
    if not rec.done and not rec.total:
        text = "working"
    else:
        total = f"/{rec.total:,.0f}" if rec.total else ""
        frac = rec.fraction
        text = f"{rec.done:,.0f}{total}" + (f"  {frac:.0%}" if frac is not None else "")
    return f"Phase {phase}: {text}" if phase > 1 else text
