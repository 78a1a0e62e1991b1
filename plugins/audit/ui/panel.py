"""The audit's panel: choose a model, run a check, read what it found.

Left, the **Model** box (every run of every plugin, grouped by plugin; those that cannot be
audited greyed with the reason) and the **Check** box (one page per audit job, a ``Form`` over
its typed params; Run, Stop and progress through the usual job handle). Right, the
**Results**: a headline in words, the evidence, and the check's HTML report.

Thin on purpose: every check is a job submitted through ``host.submit``; the panel reads
files (run lists, results, thumbnails) off the GUI thread and only formats what it reads.
Reopening an audit run (``host.run_reopened``) shows its result again from its
``audit.json`` and puts its settings back in the form.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio import fmt
from studio.qtjobs import JobHandle
from studio.widgets.background import Background, Failed
from studio.widgets.panelparts import header, primary
from studio.widgets.vscroll import vertical_scroll

from . import words
from .checks import PAGES, CheckPage
from .results import ResultsView, Shown, load, report_written
from .runlist import RunChoice, RunList
from .verify import VerifyButton


def describe(run: RunChoice, workspace: Path) -> dict[str, Any]:
    """What the panel needs to know about a chosen run beyond its manifest (any thread): what
    its model makes (from its probe class, imported here, never on the GUI thread) and the
    audits already run on it (from the workspace's audit log)."""
    from studio import registry

    from ..engine import report

    kind, text_model, problem = "", False, ""
    if run.has_probe:
        try:
            cls = registry.get(run.plugin).load_audit_probe()
            kind = str(getattr(cls, "item_kind", ""))
            text_model = kind == "text" and hasattr(cls, "log_perplexity") \
                and hasattr(cls, "corpus_job")
        except Exception as exc:  # a broken probe: say so, keep the panel working
            problem = f"its plugin's audit probe failed to load ({type(exc).__name__}: {exc})"
    return {"kind": kind, "text_model": text_model, "problem": problem,
            "audits": report.audits_of(workspace, run.path)}


class AuditPanel(QWidget):
    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.handle: JobHandle | None = None
        self._handle_page: CheckPage | None = None
        self.bg = Background(self)
        self.described: dict[str, Any] = {}
        self._status_is_problem = False
        self._stopped_mia: dict[str, Path] = {}  # model -> a stopped check's folder

        head = header("Privacy & bias audit",
                      "What did your model memorise, and whom does it leave out?")

        # Model ---------------------------------------------------------------------------------
        self.runs = RunList(lambda: self.host.workspace)
        self.run_info = QLabel("")
        self.run_info.setWordWrap(True)
        self.run_info.setTextFormat(Qt.TextFormat.RichText)
        refresh = QToolButton()
        refresh.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        refresh.setAutoRaise(True)
        refresh.setToolTip("Look again for runs (a model trained a minute ago)")
        refresh.setAccessibleName("Look again for runs")
        refresh.clicked.connect(lambda: self.runs.refresh())
        model_box = QGroupBox("Model")
        ml = QVBoxLayout(model_box)
        ml.setContentsMargins(6, 4, 6, 4)
        ml.addWidget(self.runs, 1)
        info_row = QHBoxLayout()
        info_row.addWidget(self.run_info, 1)
        info_row.addWidget(refresh, 0, Qt.AlignmentFlag.AlignTop)
        ml.addLayout(info_row)

        # Checks --------------------------------------------------------------------------------
        self.pages: dict[str, CheckPage] = {}
        self.check = QComboBox()
        self.check.setAccessibleName("Check")
        self.stack = QStackedWidget()
        for cls in PAGES:
            page = cls(host)
            self.pages[page.job] = page
            self.check.addItem(page.title, page.job)
            self.stack.addWidget(page)
            page.form.changed.connect(lambda _n: self._refresh())
        self.check.currentIndexChanged.connect(self._check_picked)
        self.run_btn = primary(QPushButton("Run the check"))
        self.run_btn.setDefault(True)
        self.stop_btn = QPushButton("Stop")
        self.run_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        check_box = QGroupBox("Check")
        cl = QVBoxLayout(check_box)
        cl.setContentsMargins(6, 4, 6, 4)
        pick = QFormLayout()
        pick.addRow("Check:", self.check)
        cl.addLayout(pick)
        cl.addWidget(self.stack)

        settings = QWidget()
        sl = QVBoxLayout(settings)
        sl.setContentsMargins(0, 0, 4, 0)
        sl.addWidget(model_box)
        sl.addWidget(check_box, 1)
        # Run, Stop and progress stay in view below the settings, which scroll
        actions = QWidget()
        al = QVBoxLayout(actions)
        al.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.stop_btn)
        buttons.addStretch(1)
        self.verify_btn = VerifyButton(host, self.status)
        buttons.addWidget(self.verify_btn)
        al.addLayout(buttons)
        al.addWidget(self.progress)
        al.addWidget(self.status)
        self.left = QWidget()
        left_lay = QVBoxLayout(self.left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.addWidget(vertical_scroll(settings, min_width=300), 1)
        left_lay.addWidget(actions)

        # Results -------------------------------------------------------------------------------
        self.results = ResultsView()
        self.results.earlier_chosen.connect(self.show_folder)
        results_box = QGroupBox()
        rl = QVBoxLayout(results_box)
        rl.addWidget(self.results)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.left)
        split.addWidget(results_box)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(split, 1)

        self.runs.chosen.connect(self._run_chosen)
        self.runs.listed.connect(self._listed)
        host.run_reopened.connect(self._reopened)
        host.settings_changed.connect(lambda _s: self.runs.refresh())
        last = host.recall_value("check")
        i = self.check.findData(last)
        self.check.setCurrentIndex(max(0, i))
        self._check_picked()
        self._run_chosen(None)
        self.runs.select(host.recall_value("run"))
        self.runs.refresh()

    # -- model ----------------------------------------------------------------------------------
    @property
    def page(self) -> CheckPage:
        return self.pages[self.check.currentData()]

    def _listed(self) -> None:
        if not self.runs.groups:
            self.run_info.setText("Train a model in another plugin, then come back to audit "
                                  "it. The data checks (Dataset, Private information, "
                                  "Fairness) work without one.")
        self._refresh()

    def _run_chosen(self, run: RunChoice | None) -> None:
        self.described = {}
        for page in self.pages.values():
            page.set_run(run)
        if run is None:
            self.run_info.setText("Choose the model to audit. Runs of every plugin are listed; "
                                  "those that cannot be audited yet say why.")
            self.results.set_earlier([])
        else:
            self.host.remember_value("run", str(run.path))
            self.run_info.setText(run.summary())
            self._describe(run, show_newest=True)
        self._refresh()

    def _describe(self, run: RunChoice, show_newest: bool = False) -> None:
        """Read what the panel shows about ``run`` beyond its manifest (off the GUI thread)."""
        workspace = self.host.workspace

        def done(d: dict[str, Any] | Failed) -> None:
            self._described(run, d, show_newest)

        self.bg.run("describe", lambda: describe(run, workspace), done)

    def _described(self, run: RunChoice, d: dict[str, Any] | Failed,
                   show_newest: bool = False) -> None:
        current = self.runs.current()
        if current is None or current.path != run.path:
            return
        if isinstance(d, Failed):
            self.results.set_earlier([])
            self.status.setText(f"⚠ The earlier checks of this model could not be read: "
                                f"{d.error}")
            return
        self.described = d
        for page in self.pages.values():
            page.set_run(run, d["kind"], d["text_model"])
        if d["problem"]:
            self.run_info.setText(run.summary() + f"<br>⚠ {html.escape(d['problem'])}")
        self.results.set_earlier(d["audits"])
        shown = self.results.current
        target = (shown.doc.get("target") or {}).get("path") if shown else None
        if show_newest and not self.bg.busy("result") and \
                target != str(run.path.resolve()):  # the chosen model's latest result
            if d["audits"]:
                newest = max(d["audits"], key=lambda a: a.get("created") or 0)
                self.show_folder(Path(newest["_folder"]))
            elif shown is None or target:
                self.results.show_message("No check has been run on this model yet: choose "
                                          "one on the left.")
        self._refresh()

    # -- checks ---------------------------------------------------------------------------------
    def _check_picked(self, *_: Any) -> None:
        self.stack.setCurrentWidget(self.page)
        for page in self.pages.values():  # the box as tall as this page, not the tallest one
            ignored = QSizePolicy.Policy.Ignored
            page.setSizePolicy(QSizePolicy.Policy.Preferred,
                               QSizePolicy.Policy.Preferred if page is self.page else ignored)
        self.stack.adjustSize()
        self.run_btn.setText(self.page.action)
        self.host.remember_value("check", self.page.job)
        if not self.busy:
            self.status.setText("")
        self._refresh()

    @property
    def busy(self) -> bool:
        return self.handle is not None and not self.handle.is_finished

    def _refresh(self) -> None:
        why = self.page.problem()
        self.run_btn.setEnabled(not self.busy and not why)
        self.run_btn.setToolTip(why)
        self.stop_btn.setEnabled(self.busy)
        if self.busy:
            return
        self.progress.setVisible(False)
        if why:
            self.status.setText(why)
            self._status_is_problem = True
        elif self._status_is_problem:
            self.status.setText("")
            self._status_is_problem = False

    def start(self) -> JobHandle | None:
        """Submit the chosen check (None when it cannot run; the status says why)."""
        if self.busy:
            return None
        page = self.page
        why = page.problem()
        if why:
            self.status.setText(f"⚠ {why}")
            return None
        params = page.params(self.status)
        if params is None:
            self.status.setText(words.gui_message(self.status.text(), page.labels()))
            return None
        out = page.out()
        if out is not None:
            out = _free(out)
        if page.job == "mia":  # continue a stopped one: its finished reference models count
            out = self._stopped_mia.pop(str(params.run), None)
            out = out if out is not None and out.exists() else None
        self.handle = self.host.submit(page.job, params, out=out, show_plots=page.plots)
        self._handle_page = page
        page.submitted()
        self.handle.progress.connect(self._progress)
        self.handle.finished.connect(self._finished)
        self._status_is_problem = False
        self.status.setText(f"{page.title}: starting…")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._refresh()
        return self.handle

    def stop(self) -> None:
        if self.busy and self.handle is not None:
            self.handle.cancel()
            self.status.setText("Stopping…")

    def _progress(self, d: dict[str, Any]) -> None:
        total, done = d.get("total"), d.get("done") or 0
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(1.0, done / total)))
        eta = d.get("eta")
        msg = d.get("message") or "working"
        page = self._handle_page
        self.status.setText(f"{page.title if page else ''}: {msg}"
                            + (f" · about {fmt.duration(eta)} left" if eta else ""))

    def _finished(self, rec: Any) -> None:
        page = self._handle_page
        self.progress.setVisible(False)
        title = page.title if page else "The check"
        if rec.state == "done":
            self.status.setText(f"{title}: done.")
            if rec.job == "report":
                workspace, card = self.host.workspace, bool(getattr(rec.params, "card", False))
                target, written = Path(rec.params.run), Path(rec.result)
                chosen = self.runs.run_at(target)
                model = chosen.title if chosen is not None else target.name

                def read() -> Shown:
                    from ..engine import report

                    return report_written(written, report.audits_of(workspace, target), card,
                                          model)

                self.bg.run("result", read, self._show)
            else:
                self.show_folder(Path(rec.run_dir or rec.result))
            current = self.runs.current()
            if current is not None:  # its earlier checks now include this one
                self._describe(current)
        elif rec.state == "cancelled":
            text = f"{title}: stopped."
            if rec.job == "mia" and rec.run_dir is not None:
                self._stopped_mia[str(rec.params.run)] = Path(rec.run_dir)
                text += (" Run it again to continue: the reference models it finished are "
                         "kept.")
            self.status.setText(text)
        else:
            labels = page.labels() if page else {}
            self.status.setText(f"⚠ {words.gui_message(rec.error or 'the check failed', labels)}")
        self._refresh()

    # -- results --------------------------------------------------------------------------------
    def show_folder(self, folder: Path, wait: bool = False) -> None:
        """Show the result an audit run folder holds (read off the GUI thread)."""
        self.bg.run("result", lambda: load(Path(folder)), self._show, wait=wait)

    def _show(self, s: Shown | Failed) -> None:
        if isinstance(s, Failed):
            msg = str(s.error) if isinstance(s.error, ValueError) else \
                f"The result could not be read: {type(s.error).__name__}: {s.error}"
            self.results.show_message(msg)
            return
        self.results.show_result(s)

    def _reopened(self, job: str, params: Any, run_dir: Path) -> None:
        """An audit run reopened from the window: its result and its settings again."""
        page = self.pages.get(job)
        if page is not None:
            page.show_params(params)
            self.check.setCurrentIndex(self.check.findData(job))
            run = getattr(params, "run", None)
            if run:
                self.runs.select(Path(run))
        self.show_folder(Path(run_dir))

    def heightForWidth(self, width: int) -> int:
        """The panel's minimum height: a layout holding wrapped labels reports a height for
        width computed from its children's size *hints* (the whole check column unscrolled,
        1,150 px), and the window's scroll area would make the panel that tall."""
        return self.minimumSizeHint().height()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self.runs.scanning and self.runs.groups:
            self.runs.refresh()  # a model trained in another plugin meanwhile

    def shutdown(self) -> None:
        """Nothing of the panel's own keeps running: jobs belong to the window's runner."""


def _free(folder: Path) -> Path:
    """``folder``, or ``folder 2``, ``folder 3``... when it exists (a new check never writes
    into an earlier one's folder)."""
    if not folder.exists():
        return folder
    n = 2
    while (folder.parent / f"{folder.name} {n}").exists():
        n += 1
    return folder.parent / f"{folder.name} {n}"
