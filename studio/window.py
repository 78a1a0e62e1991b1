"""The main window: plugin navigator, the selected plugin's panel, and the Jobs / Plots / Log docks.

Panels are built the first time their plugin is selected, so start-up costs only what the first
panel needs; torch is imported by jobs on the worker, never here.
"""

from __future__ import annotations

import logging
import threading
import traceback
import types
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio import __version__, fmt, registry, runs, theme
from studio import settings as settings_mod
from studio.host import PanelHost
from studio.jobs import FINAL_STATES, RUNNING, Event, JobRecord
from studio.plots import PlotsWidget
from studio.qtjobs import JobManager
from studio.registry import PluginRecord
from studio.settings import Settings
from studio.widgets.jobs_dock import JobsWidget
from studio.widgets.log_dock import LogWidget

log = logging.getLogger(__name__)
RESOURCES = Path(__file__).parent / "resources"


class _DeviceProbe(QObject):
    """Finds the compute device on a background thread (importing torch takes seconds)."""

    found = Signal(str, str)  # status text, tooltip

    def start(self, settings: Settings, sync: bool = False) -> None:
        def probe() -> None:
            try:
                from studio import device

                info = device.resolve(settings.device, settings.cpu_threads)
                self.found.emit(info.describe(), f"Jobs run on {info.torch_device}")
            except Exception as exc:  # shown in the status bar, not hidden
                self.found.emit(f"Device: {exc}", traceback.format_exc())

        if sync:
            probe()
        else:
            threading.Thread(target=probe, name="studio-device-probe", daemon=True).start()


class ErrorPage(QWidget):
    """Shown in place of a plugin that failed to load: what broke and the traceback."""

    def __init__(self, rec: PluginRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        title = QLabel(f"{rec.name} is disabled")
        title.setObjectName("pluginTitle")
        msg = QLabel(f"This plugin could not be loaded: {rec.error}\n"
                     "The other plugins keep working. Details:")
        msg.setObjectName("pluginError")
        msg.setWordWrap(True)
        details = QPlainTextEdit(rec.traceback or rec.error or "")
        details.setReadOnly(True)
        lay.addWidget(title)
        lay.addWidget(msg)
        lay.addWidget(details, 1)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None,
                 records: list[PluginRecord] | None = None) -> None:
        super().__init__()
        self.settings = settings or settings_mod.load()
        self.setWindowTitle("Generative Studio")
        self.setWindowIcon(QIcon(str(RESOURCES / "studio.svg")))
        self.resize(1400, 900)
        self.setDockNestingEnabled(True)
        self.manager = JobManager(self.settings, self)
        self.records = records if records is not None else registry.discover()
        self.panels: dict[str, QWidget] = {}
        self._containers: dict[str, QWidget] = {}
        self._follow: set[int] = set()  # jobs whose curves to show once they report metrics
        self._plotted: set[int] = set()  # jobs already listed in the plots dock
        self.hosts: dict[str, PanelHost] = {}
        self._force_close = False
        self._session_ended = False

        # navigator + centre
        self.navigator = QListWidget()
        self.navigator.setObjectName("navigator")
        self.navigator.setIconSize(QSize(28, 28))
        self.navigator.setFixedWidth(190)
        self.stack = QStackedWidget()
        central = QWidget()
        from PySide6.QtWidgets import QHBoxLayout

        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.navigator)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self._placeholder = QLabel("No plugins are installed.")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setObjectName("placeholder")
        self.stack.addWidget(self._placeholder)
        for rec in self.records:
            item = QListWidgetItem(rec.name if rec.ok else f"{rec.name} (disabled)")
            item.setData(Qt.ItemDataRole.UserRole, rec.id)
            icon_path = rec.plugin.icon_path() if rec.plugin else None
            item.setIcon(QIcon(str(icon_path)) if icon_path else
                         QIcon(str(RESOURCES / "plugin.svg")))
            if rec.ok:
                item.setToolTip(rec.plugin.description if rec.plugin else "")
            else:
                item.setToolTip(f"Disabled: {rec.error}")
                item.setForeground(Qt.GlobalColor.gray)
            self.navigator.addItem(item)
        self.navigator.currentRowChanged.connect(self._on_nav)

        # docks
        self.jobs_widget = JobsWidget(self.manager)
        self.plots_widget = PlotsWidget(self.manager.metrics)
        self.plots_widget.workspace_for_dialog = lambda: self.settings.workspace_path()
        self.log_widget = LogWidget()
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.jobs_dock = self._dock("Jobs", self.jobs_widget, bottom)
        self.log_dock = self._dock("Log", self.log_widget, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.plots_dock = self._dock("Live plots", self.plots_widget,
                                     Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.jobs_dock, self.log_dock)
        self.jobs_dock.raise_()
        self._docks_sized = False
        self.manager.log_message.connect(self.log_widget.append)
        self.manager.event.connect(self._on_event)
        self.manager.job_changed.connect(self._on_job_changed)
        self.jobs_widget.job_selected.connect(self.plots_widget.show_source)

        # status bar
        self.device_label = QLabel("Device: detecting…")
        self.job_label = QLabel("Idle")
        self.job_bar = QProgressBar()
        self.job_bar.setMaximumWidth(180)
        self.job_bar.setMaximumHeight(16)
        self.job_bar.setRange(0, 1000)
        self.job_bar.hide()
        self.statusBar().addWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.job_label)
        self.statusBar().addPermanentWidget(self.job_bar)
        self._probe = _DeviceProbe(self)
        self._probe.found.connect(self._on_device)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(500)
        self._status_timer.timeout.connect(self._refresh_job_status)
        self._status_timer.start()

        self._build_menus()
        self.apply_theme()
        self.notice: QWidget | None = None
        self._offer_interrupted_runs()
        start = self._initial_plugin()
        if start is not None:
            self.select_plugin(start)

    def _offer_interrupted_runs(self) -> None:
        """Runs the system stopped since the user last looked get a notice with Resume."""
        from studio import runindex
        from studio.settings import PluginStore
        from studio.widgets.notice import InterruptedNotice

        store = PluginStore("studio")
        dismissed = set(store.get("notices", "dismissed_runs", []) or [])
        runs = [r for r in runindex.interrupted(self.settings.workspace_path())
                if str(r.path) not in dismissed
                and any(rec.id == r.plugin and rec.plugin for rec in self.records)]
        if not runs:
            return

        def dismiss(paths: list[Path]) -> None:
            store.put("notices", "dismissed_runs", sorted(dismissed | {str(p) for p in paths}))

        names = {r.id: r.name for r in self.records}
        self.notice = InterruptedNotice(runs, names, self.resume_run, self.open_run, dismiss)
        central = self.centralWidget()
        assert central is not None
        holder = QWidget()
        lay = QVBoxLayout(holder)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.notice)
        lay.addWidget(central, 1)
        self.setCentralWidget(holder)

    def resume_run(self, run_dir: Path) -> None:
        """Resume a run in its plugin (opening the panel, showing its curves as it goes)."""
        from studio import manifest

        m = manifest.read(run_dir)
        if m is None:
            return
        self.select_plugin(m.plugin)
        host = self.hosts.get(m.plugin)
        handle = host.resume(run_dir) if host is not None else None
        if handle is None:
            self.statusBar().showMessage(f"{run_dir.name} cannot be resumed here", 8000)

    def showEvent(self, event: object) -> None:
        """Size the docks once, when the window first has its real size (resizeDocks before
        the first show is overridden by the layout)."""
        super().showEvent(event)  # type: ignore[arg-type]
        if not self._docks_sized:
            self._docks_sized = True
            self.resizeDocks([self.plots_dock], [380], Qt.Orientation.Horizontal)
            self.resizeDocks([self.jobs_dock], [200], Qt.Orientation.Vertical)

    # -- construction helpers -------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "") + "Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_run = QAction("Open run…", self)
        open_run.triggered.connect(self._ask_open_run)
        file_menu.addAction(open_run)
        self.recent_menu = file_menu.addMenu("Recent runs")
        self.recent_menu.aboutToShow.connect(self._fill_recent_runs)
        open_ws = QAction("Show workspace folder", self)
        open_ws.triggered.connect(lambda: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(self.settings.workspace_path()))))
        file_menu.addAction(open_ws)
        file_menu.addSeparator()
        prefs = QAction("Settings…", self)
        prefs.setShortcut(QKeySequence.StandardKey.Preferences)
        prefs.triggered.connect(self.open_settings)
        file_menu.addAction(prefs)
        file_menu.addSeparator()
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        for dock in (self.jobs_dock, self.plots_dock, self.log_dock):
            view_menu.addAction(dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("About Generative Studio", self)
        about.triggered.connect(lambda: QMessageBox.about(
            self, "Generative Studio",
            f"Generative Studio {__version__}\nTrain and run generative models on your own "
            "machine and your own data. Offline: no account, no cloud."))
        help_menu.addAction(about)

    def _initial_plugin(self) -> str | None:
        ids = [r.id for r in self.records]
        if self.settings.last_plugin in ids:
            return self.settings.last_plugin
        ok = [r.id for r in self.records if r.ok]
        return ok[0] if ok else (ids[0] if ids else None)

    # -- plugins --------------------------------------------------------------------------------
    def select_plugin(self, plugin_id: str) -> QWidget:
        """Show ``plugin_id``'s panel (built on first use) and return it."""
        for row in range(self.navigator.count()):
            if self.navigator.item(row).data(Qt.ItemDataRole.UserRole) == plugin_id:
                self.navigator.setCurrentRow(row)
                return self.panel(plugin_id)
        raise KeyError(plugin_id)

    def _on_nav(self, row: int) -> None:
        if row < 0:
            return
        plugin_id = self.navigator.item(row).data(Qt.ItemDataRole.UserRole)
        self.panel(plugin_id)
        self.stack.setCurrentWidget(self._containers[plugin_id])
        if self.settings.last_plugin != plugin_id:
            self.settings.last_plugin = plugin_id
            self._save_settings_quietly()

    def panel(self, plugin_id: str) -> QWidget:
        """The plugin's panel, built on first use; a panel that fails to build shows its error."""
        if plugin_id in self.panels:
            return self.panels[plugin_id]
        rec = next(r for r in self.records if r.id == plugin_id)
        widget: QWidget
        if rec.plugin is None:
            widget = ErrorPage(rec)
        else:
            host = PanelHost(self.manager, rec.plugin, show_plots=self._follow_job,
                             open_run=self.open_run, status=self.statusBar().showMessage,
                             parent=self)
            self.hosts[plugin_id] = host
            try:
                built = rec.plugin.create_panel(host)
                if built is None:
                    from studio.widgets.jobform import JobFormPanel

                    built = JobFormPanel(rec.plugin, host)
                widget = built
            except Exception as exc:  # the panel is broken, the studio is not
                rec.error = f"its panel failed to open: {type(exc).__name__}: {exc}"
                rec.traceback = traceback.format_exc()
                log.error("plugin %s panel failed:\n%s", plugin_id, rec.traceback)
                widget = ErrorPage(rec)
        self.panels[plugin_id] = widget
        # A scroll area keeps a panel's minimum size from forcing the window wider than the
        # screen (a 1366-px laptop); scroll bars appear only when the panel does not fit.
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setWidget(widget)
        self._containers[plugin_id] = area
        self.stack.addWidget(area)
        return widget

    # -- jobs, plots, status --------------------------------------------------------------------
    def _follow_job(self, job_id: int) -> None:
        """Show this job's curves as soon as it reports a metric. Jobs that never do (a quick
        generation) leave the plot the user is watching alone."""
        self._follow.add(job_id)
        if job_id in self._plotted:
            self.plots_widget.show_source(job_id)

    def _on_event(self, ev: Event) -> None:
        if ev.kind != "metric" or ev.job_id in self._plotted:
            return
        self._plotted.add(ev.job_id)
        rec = self.manager.runner.record(ev.job_id)
        select = ev.job_id in self._follow or self.plots_widget.current_source is None
        self.plots_widget.add_job(ev.job_id, f"#{rec.id} {rec.title}", select=select)

    def _on_job_changed(self, rec: JobRecord) -> None:
        if rec.state in FINAL_STATES:
            self._refresh_job_status()

    def _refresh_job_status(self) -> None:
        running = [r for r in self.manager.active() if r.state == RUNNING]
        queued = len(self.manager.active()) - len(running)
        if not running:
            self.job_label.setText(f"{queued} queued" if queued else "Idle")
            self.job_bar.hide()
            return
        rec = running[0]
        extra = f" (+{len(running) - 1 + queued} more)" if len(running) - 1 + queued else ""
        eta = f", ETA {fmt.duration(rec.eta)}" if rec.eta is not None else ""
        self.job_label.setText(f"{rec.title}: {fmt.rate(rec.rate)}{eta}{extra}")
        frac = rec.fraction
        self.job_bar.setVisible(True)
        if frac is None:
            self.job_bar.setRange(0, 0)
        else:
            self.job_bar.setRange(0, 1000)
            self.job_bar.setValue(int(frac * 1000))

    def detect_device(self, sync: bool = False) -> None:
        """Probe the device (in the background unless ``sync``) and show it in the status bar."""
        self.device_label.setText("Device: detecting…")
        self._probe.start(self.settings, sync=sync)

    def _on_device(self, text: str, tooltip: str) -> None:
        self.device_label.setText(text)
        self.device_label.setToolTip(tooltip)

    def open_run(self, run_dir: Path) -> None:
        """Show a run's curves; its plugin's panel gets the settings it ran with back."""
        from studio import manifest

        m = manifest.read(run_dir)
        if m is not None and any(r.id == m.plugin and r.plugin for r in self.records):
            self.panel(m.plugin)
            host = self.hosts.get(m.plugin)
            if host is not None:
                host.reopen(run_dir)
        n = self.plots_widget.open_run(run_dir)
        self.plots_dock.show()
        self.plots_dock.raise_()
        if n == 0:
            self.statusBar().showMessage(f"{run_dir} has no metrics yet", 5000)

    def _fill_recent_runs(self) -> None:
        """The newest runs of every plugin (the run index: the workspace and runs kept
        elsewhere), named as the Jobs dock names them."""
        from studio import runindex

        self.recent_menu.clear()
        found = runindex.scan(self.settings.workspace_path())[:15]
        if not found:
            self.recent_menu.addAction("(no runs yet)").setEnabled(False)
        names = {r.id: r.name for r in self.records}
        for run in found:
            m = run.manifest
            when = fmt.when(m.started)
            label = (f"{m.title or m.job} ({names.get(m.plugin, m.plugin)}), {when}"
                     f" · {run.state}")
            action = self.recent_menu.addAction(label)
            action.setToolTip(run.path.name)
            action.triggered.connect(lambda _=False, d=run.path: self.open_run(d))

    def report_exception(self, exc_type: type[BaseException], exc: BaseException,
                         tb: object) -> None:
        """sys.excepthook for the GUI: an error in a slot is logged and shown, never fatal."""
        trace = tb if isinstance(tb, types.TracebackType) else None
        text = "".join(traceback.format_exception(exc_type, exc, trace))
        log.error("unexpected error in the window:\n%s", text)
        self.log_widget.append("error", text)
        self.statusBar().showMessage(f"Unexpected error: {exc_type.__name__}: {exc} "
                                     "(details in the Log dock)", 10000)

    def _ask_open_run(self) -> None:
        start = self.settings.workspace_path() / "runs"
        folder = QFileDialog.getExistingDirectory(self, "Open run folder", str(start))
        if folder:
            has_metrics = (Path(folder) / runs.METRICS_FILE).exists()
            if runs.read_manifest(folder) is None and not has_metrics:
                QMessageBox.warning(self, "Open run", f"{folder} is not a studio run folder "
                                    "(it has no run.json or metrics.jsonl).")
                return
            self.open_run(Path(folder))

    # -- settings and theme ---------------------------------------------------------------------
    def open_settings(self) -> None:
        from studio.widgets.settings_dialog import SettingsDialog

        dlg = SettingsDialog(self.settings, self)
        if dlg.exec():
            self.apply_settings(dlg.result_settings())

    def apply_settings(self, new: Settings) -> None:
        settings_mod.save(new)
        device_changed = (new.device, new.cpu_threads) != (self.settings.device,
                                                           self.settings.cpu_threads)
        self.settings = new
        self.manager.set_settings(new)
        from studio import models

        models.library(new).invalidate()  # new folders or workspace: look again
        self.apply_theme()
        for host in self.hosts.values():
            host.settings_changed.emit(new)
        if device_changed:
            self.detect_device()

    def apply_theme(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply(app, self.settings.theme)
        self.plots_widget.graphics.setBackground(theme.plot_background(self.settings.theme))

    def _save_settings_quietly(self) -> None:
        try:
            settings_mod.save(self.settings)
        except (OSError, ValueError) as exc:
            log.warning("could not save settings: %s", exc)

    # -- closing --------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        active = self.manager.active()
        if active and not self._force_close:
            names = "\n".join(f"• {r.title} ({r.state})" for r in active[:8])
            answer = QMessageBox.question(
                self, "Jobs are running",
                f"{len(active)} job(s) are still running or queued:\n{names}\n\n"
                "Stop them and quit? Training runs keep their last checkpoint.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.shutdown()
        event.accept()

    def end_session(self, why: str = "the desktop session is ending", close: bool = True
                    ) -> None:
        """The system is taking the window away (logout, shutdown, a signal): training jobs
        checkpoint, their runs are marked interrupted (the next start offers to resume them),
        and (``close``) the window closes without asking. The session manager's request to
        save comes with ``close=False``: Qt says the application must not quit from it."""
        if not self._session_ended:
            self._session_ended = True
            active = self.manager.active()
            if active:
                log.warning("%s: stopping %d job(s), runs kept to resume", why, len(active))
            self.shutdown(timeout=30.0, interrupted=True)
        if close:
            self._force_close = True
            self.close()

    def shutdown(self, timeout: float = 10.0, *, interrupted: bool = False) -> bool:
        """Stop every job and worker; safe to call twice."""
        for widget in self.panels.values():
            closer = getattr(widget, "shutdown", None)
            if callable(closer):
                try:
                    closer()
                except Exception:  # a panel's own clean-up failing must not block quitting
                    log.exception("panel shutdown failed")
        ok = self.manager.shutdown(timeout, interrupted=interrupted)
        if not ok:
            log.warning("some jobs did not stop within %.0f s; exiting anyway", timeout)
        return ok
