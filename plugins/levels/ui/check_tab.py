"""The Check tab: is the edited level playable, and how does it measure? Repair it with the
fewest tile changes.

The agent and the "compare with" folder are ``CheckParams`` fields in a form; the level is the
document's (a copy, passed as an object). The report is shown as a verdict and a two-column
table in plain words (``LevelReport.readable``), not as the command line's JSON.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from plugins.levels.engine.report import LevelReport
from plugins.levels.params import CheckParams, RepairParams
from studio import theme
from studio.host import PanelHost
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import primary
from studio.widgets.settingsarea import advanced_toggle, settings_scroll

from .document import LevelDocument


class CheckTab(QWidget):
    def __init__(self, host: PanelHost, document: LevelDocument,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host, self.document = host, document
        self.form = Form(CheckParams, self, host.recall("check", CheckParams))
        self._handle: JobHandle | None = None

        rows = QFormLayout()
        rows.setContentsMargins(0, 0, 0, 0)
        self.form.add_rows(rows, "mode")
        self.auto = QCheckBox("Check after every change")
        self.auto.setChecked(bool(host.recall_value("auto_check", True)))
        self.auto.toggled.connect(lambda on: host.remember_value("auto_check", on))
        rows.addRow(self.auto)
        # who plays and how: the agent guesses well from the tiles; the rest is folded
        self.advanced = QWidget()
        adv = QFormLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        self.form.add_rows(adv, "direction", "jump", "run", "calibrate", "data")
        settings = QWidget()
        sl = QVBoxLayout(settings)
        sl.setContentsMargins(0, 0, 4, 0)
        sl.addLayout(rows)
        sl.addWidget(advanced_toggle(self.advanced))
        sl.addWidget(self.advanced)
        sl.addStretch(1)
        buttons = QHBoxLayout()
        self.check_button = primary(QPushButton("Check"))
        self.check_button.setToolTip("Can the level be played through? (Ctrl+Enter)")
        self.check_button.clicked.connect(self.run_check)
        self.repair_button = QPushButton("Repair (fewest changes)")
        self.repair_button.setToolTip("Change as few tiles as possible to make it playable")
        self.repair_button.clicked.connect(self.run_repair)
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.repair_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(settings_scroll(settings), 1)
        lay.addLayout(buttons)
        self.verdict = QLabel("")
        self.verdict.setObjectName("pluginTitle")
        lay.addWidget(self.verdict)
        self.table = QTableWidget(0, 2)
        self.table.setAccessibleName("Check report")
        self.table.horizontalHeader().setVisible(False)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)  # sentences wrap, not "..."
        self.table.horizontalHeader().sectionResized.connect(
            lambda *_: self.table.resizeRowsToContents())
        self.table.setShowGrid(False)
        lay.addWidget(self.table, 2)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        document.report_changed.connect(self.show_report)

    # -- jobs -----------------------------------------------------------------------------------
    def run_check(self) -> JobHandle | None:
        level = self.document.snapshot()
        if level is None:
            return None
        p = self.form.checked(self.message, level=[level])
        if p is None:
            return None
        if self._handle is not None and not self._handle.is_finished:
            self._handle.cancel()
        grid = level.grid.copy()
        handle = self.host.submit("check", p, title="Check level", show_plots=False)
        self._handle = handle
        handle.finished.connect(lambda rec: self._checked(rec, grid))
        return handle

    def _checked(self, rec: Any, grid: Any) -> None:
        if rec.state == "done":
            lv = self.document.level
            if lv is not None and lv.grid.shape == grid.shape and (lv.grid == grid).all():
                self.document.set_report(rec.result.reports[0])  # still the same tiles
            self.message.setText("")
        elif rec.state == "failed":
            self.verdict.setText("Check failed")
            self.verdict.setStyleSheet(f"color: {theme.colour('error')};")
            self.message.setText(rec.error or "")

    def run_repair(self) -> JobHandle | None:
        level = self.document.snapshot()
        if level is None:
            return None
        p = RepairParams(level=level, mode=self.form.p.mode, save=False)
        handle = self.host.submit("repair", p, title="Repair level", show_plots=False)
        self.message.setText("Repairing…")
        handle.finished.connect(self._repaired)
        return handle

    def _repaired(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.verdict.setText("Repair failed")
                self.verdict.setStyleSheet(f"color: {theme.colour('error')};")
                self.message.setText(rec.error or "")
            return
        batch = rec.result
        fixed = batch.levels[0]
        fixed.meta = dict(self.document.level.meta if self.document.level else {},
                          repaired=True)
        rep = batch.report(0)
        n = rep.changes if rep is not None and rep.changes is not None else 0
        self.document.set_level(fixed, f"Repair ({n} tiles)")
        self.document.set_report(rep)
        self.message.setText("")
        self.host.notify(f"Repaired with {n} tile change(s)")

    def showEvent(self, event: Any) -> None:
        """A report that arrived while the tab was hidden was laid out for no width: the
        sentences wrap again now that the table has one."""
        super().showEvent(event)
        QTimer.singleShot(0, self.table.resizeRowsToContents)

    # -- the report -----------------------------------------------------------------------------
    def show_report(self) -> None:
        rep: LevelReport | None = self.document.report
        if rep is None:
            if self.document.level is None:
                self.verdict.setText("")
                self.table.setRowCount(0)
            return  # an edit made the report stale: keep showing it until the next check
        ok = rep.playable
        self.verdict.setText("Playable ✓" if ok else "Not playable ✗")
        self.verdict.setStyleSheet(f"color: {theme.colour('success' if ok else 'error')};")
        rows = [r for r in rep.readable() if r[0] != "Verdict"]
        self.table.setRowCount(len(rows))
        for i, (what, value) in enumerate(rows):
            for col, text in enumerate((what, value)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(i, col, item)
        self.table.resizeRowsToContents()
