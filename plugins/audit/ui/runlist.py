"""The Model box: every run of every plugin, grouped by plugin, to choose the one to audit.

Runs come from the run index (``studio.runindex.scan``) and whether each can be audited from
the audit engine's own rules (``engine.targets.list_targets``), so the panel and
``studio run audit targets`` agree. A run that cannot be audited is listed greyed with the
reason (a plugin without an audit probe: "not auditable yet"), never hidden: its data can
still be checked. The list is read off the GUI thread (it opens every run's ``run.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio import fmt
from studio.manifest import TRAIN, Dataset
from studio.widgets.background import Background, Failed

from .words import plural, unit_plural

PATH_ROLE = Qt.ItemDataRole.UserRole


@dataclass
class RunChoice:
    """One run as the panel shows it."""

    path: Path
    plugin: str
    plugin_name: str
    job: str
    title: str
    started: float | None
    state: str
    auditable: bool
    reason: str  # why it cannot be audited, in words ("" when it can)
    seconds: float  # time spent training
    datasets: list[Dataset] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    has_probe: bool = False

    @property
    def train_data(self) -> Dataset | None:
        return next((d for d in self.datasets if d.role == TRAIN), None)

    @property
    def label(self) -> str:
        return f"{self.title} · {fmt.when(self.started)}"

    def data_text(self) -> str:
        """``Trained on digits: 1,438 images, 359 more held out.``"""
        d = self.train_data
        if d is None:
            return "The run did not record the data it was trained on."
        text = (f"Trained on <b>{_esc(d.name)}</b>: {unit_plural(d.unit, d.train)} trained "
                f"it, {d.held_out:,} held out" +
                (" (none held out, so membership cannot be measured)" if not d.held_out else "")
                + ".")
        others = [o for o in self.datasets if o.role != TRAIN]
        for o in others:
            text += (f" {o.role.capitalize()} data: {_esc(o.name)}, "
                     f"{unit_plural(o.unit, o.examples)}.")
        return text

    @property
    def why_not(self) -> str:
        """Why the audit cannot read this run's model, in words ("" when it can)."""
        if self.auditable:
            return ""
        if not self.has_probe and "not installed" not in self.reason:
            return f"the {self.plugin_name} plugin does not let the audit read its models yet"
        return self.reason

    def summary(self) -> str:
        """The rich text under the list for the chosen run."""
        lines = [f"<b>{_esc(self.title)}</b> ({_esc(self.plugin_name)}), "
                 f"{fmt.when(self.started)} · {self.state}", self.data_text()]
        if self.seconds >= 1:
            lines.append(f"Training took {fmt.duration(self.seconds)}.")
        if not self.auditable:
            why = self.why_not
            lines.append(f"⚠ Not auditable yet: {_esc(why)}. The data checks still work.")
        return "<br>".join(lines)


@dataclass
class RunGroup:
    plugin: str
    name: str
    has_probe: bool
    runs: list[RunChoice]


def _esc(text: str) -> str:
    import html

    return html.escape(str(text))


@dataclass
class Scan:
    groups: list[RunGroup]
    problem: str = ""  # why the runs could not be read


def scan(workspace: Path) -> Scan:
    """Every run of every plugin except the audit's own, grouped by plugin in navigator order,
    newest first (file reading: call it off the GUI thread)."""
    from studio import registry, runindex

    from ..engine import targets

    records = {r.id: r for r in registry.discover()}
    manifests = {r.path: r.manifest for r in runindex.scan(workspace)}
    groups: dict[str, RunGroup] = {}
    for t in targets.list_targets(workspace):
        m = manifests.get(t.run)
        if m is None:  # removed between the two reads
            continue
        rec = records.get(t.plugin)
        plugin = rec.plugin if rec is not None else None
        title = m.title
        if not title and plugin is not None:
            title = next((s.title for s in plugin.jobs if s.name == m.job), "")
        has_probe = bool(plugin is not None and plugin.audit_probe)
        group = groups.setdefault(t.plugin, RunGroup(
            t.plugin, rec.name if rec is not None else t.plugin, has_probe, []))
        group.runs.append(RunChoice(
            t.run, t.plugin, group.name, m.job, title or m.job, m.started, t.state,
            t.auditable, t.reason, float(m.seconds or 0.0), list(m.datasets), dict(m.params),
            has_probe))
    order = {rid: (r.order, i) for i, (rid, r) in enumerate(records.items())}
    return Scan(sorted(groups.values(), key=lambda g: order.get(g.plugin, (10_000, 0))))


class RunList(QWidget):
    """A tree of runs grouped by plugin; ``chosen(RunChoice | None)`` when the choice
    changes."""

    chosen = Signal(object)
    #: the list was (re)filled
    listed = Signal()

    def __init__(self, workspace: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workspace = workspace  # a callable giving the workspace path (settings change)
        self.groups: list[RunGroup] = []
        self._by_path: dict[str, RunChoice] = {}
        self._current: RunChoice | None = None
        self._wanted: Path | None = None
        self._bg = Background(self)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(1)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(14)
        self.tree.setUniformRowHeights(True)
        self.tree.setAccessibleName("Runs to audit")
        self.tree.currentItemChanged.connect(self._picked)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tree)

    # -- value ----------------------------------------------------------------------------------
    def current(self) -> RunChoice | None:
        return self._current

    def run_at(self, path: Path | str) -> RunChoice | None:
        return self._by_path.get(_key(path))

    def select(self, path: Path | str | None) -> bool:
        """Choose the run in ``path`` (kept as wanted until the list has it)."""
        self._wanted = Path(path) if path else None
        if path is None:
            return False
        key = _key(path)
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount() if top is not None else 0):
                item = top.child(j) if top is not None else None
                if item is not None and item.data(0, PATH_ROLE) == key:
                    self.tree.setCurrentItem(item)
                    return True
        return False

    # -- list -----------------------------------------------------------------------------------
    @property
    def scanning(self) -> bool:
        return self._bg.busy("scan")

    def refresh(self, wait: bool = False) -> None:
        """Read the run index again (in a thread; ``wait`` for tests)."""
        workspace = Path(self._workspace())
        self._bg.run("scan", lambda: scan(workspace), self._fill, wait=wait)

    def _fill(self, found: Scan | Failed) -> None:
        if isinstance(found, Failed):
            found = Scan([], f"The runs could not be read: {found.error}")
        groups = found.groups
        keep = self._wanted or (self._current.path if self._current else None)
        self.groups = groups
        self._by_path = {_key(r.path): r for g in groups for r in g.runs}
        self.tree.blockSignals(True)
        self.tree.clear()
        grey = self.palette().color(QPalette.ColorRole.PlaceholderText)
        if not groups:
            item = QTreeWidgetItem([found.problem or "No training runs yet"])
            item.setToolTip(0, item.text(0))
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.tree.addTopLevelItem(item)
        for g in groups:
            top = QTreeWidgetItem([f"{g.name} · {plural(len(g.runs), 'run')}"
                                   + ("" if g.has_probe else " · not auditable yet")])
            font = QFont(top.font(0))
            font.setBold(True)
            top.setFont(0, font)
            top.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if not g.has_probe:
                top.setToolTip(0, f"The {g.name} plugin has no audit probe yet: its models "
                               "cannot be checked for memorisation or membership. Its data "
                               "can.")
            self.tree.addTopLevelItem(top)
            for r in g.runs:
                short = "" if r.auditable or not g.has_probe else f" · {_short(r.reason)}"
                item = QTreeWidgetItem([r.label + short])
                item.setData(0, PATH_ROLE, _key(r.path))
                item.setToolTip(0, r.path.name if r.auditable else f"{r.path.name}: {r.reason}")
                if not r.auditable:
                    item.setForeground(0, grey)
                    f = QFont(item.font(0))
                    f.setItalic(True)
                    item.setFont(0, f)
                top.addChild(item)
            top.setExpanded(True)
        self.tree.blockSignals(False)
        self._fit()
        if keep is None or not self.select(keep):
            if self._current is not None and _key(self._current.path) not in self._by_path:
                self._current = None  # its folder is gone
                self.chosen.emit(None)
            if self._current is None:
                first = next((r for g in groups for r in g.runs if r.auditable), None)
                if first is not None:
                    self.select(first.path)
        self.listed.emit()

    def _fit(self) -> None:
        """As tall as its rows, between 3 and 9 of them (it scrolls beyond)."""
        rows, it = 0, self.tree.topLevelItem(0)
        while it is not None:
            rows += 1
            it = self.tree.itemBelow(it)
        row = max(self.tree.sizeHintForRow(0), 16)
        self.tree.setFixedHeight(min(max(rows, 3), 9) * row + 2 * self.tree.frameWidth() + 4)

    def _picked(self, item: QTreeWidgetItem | None, _prev: Any = None) -> None:
        key = item.data(0, PATH_ROLE) if item is not None else None
        run = self._by_path.get(key) if key else None
        if run is None:
            return
        self._wanted = None
        same = self._current is not None and _key(self._current.path) == _key(run.path)
        self._current = run
        if not same:  # a refresh that keeps the choice says nothing
            self.chosen.emit(run)


def _key(path: Path | str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


def _short(reason: str) -> str:
    if reason.startswith("not auditable yet"):
        return "not auditable yet"
    return reason.removeprefix("the run ")
