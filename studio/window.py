"""The main window: plugin navigator, the selected plugin's panel, and the Jobs / Plots / Log docks.

Panels are built the first time their plugin is selected, so start-up costs only what the first
panel needs; torch is imported by jobs on the worker, never here.
"""

from __future__ import annotations

import logging
import threading
import traceback
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QStackedWidget,
    QSystemTrayIcon,
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
from studio.settings import PluginStore, Settings
from studio.widgets.jobs_dock import JobsWidget, set_progress
from studio.widgets.log_dock import LogWidget
from studio.widgets.panelarea import PanelArea

log = logging.getLogger(__name__)
RESOURCES = Path(__file__).parent / "resources"
DEFAULT_SIZE = (1400, 900)  # shrunk to the screen's free area (a 1366x768 laptop)
PLOTS_WIDTH = 380  # the plots dock's width when it first opens
BOTTOM_HEIGHT = 120  # the Jobs / Log tab area's height when it first opens
LONG_JOB_S = 60.0  # a job this long that ends unseen earns a desktop notification
WELCOME = "__welcome__"  # the welcome page's key in the stack


def _set_text(label: QLabel, text: str) -> None:
    """A status-bar label's text, set only when it changes (a new text can re-lay out and
    repaint the whole status bar)."""
    if label.text() != text:
        label.setText(text)


def default_size(available: QSize | None) -> QSize:
    """The first window size: 1400x900, or the screen's free area less a margin."""
    w, h = DEFAULT_SIZE
    if available is None or available.isEmpty():
        return QSize(w, h)
    return QSize(min(w, available.width() - 16), min(h, available.height() - 40))


class _DeviceProbe(QObject):
    """Finds the compute device on a background thread (importing torch takes seconds)."""

    found = Signal(str, str)  # status text, tooltip

    def start(self, settings: Settings, sync: bool = False) -> None:
        def probe() -> None:
            try:
                from studio import device

                info = device.resolve(settings.device, settings.cpu_threads)
                text, tip = info.describe(), f"Jobs run on {info.torch_device}"
            except Exception as exc:  # shown in the status bar, not hidden
                text, tip = f"Device: {exc}", traceback.format_exc()
            try:
                self.found.emit(text, tip)
            except RuntimeError:  # the window closed while torch was importing
                pass

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
    """The studio's window. The work area comes first: the plots dock opens when the open
    plugin's job reports its first metric and follows that plugin's latest job (unless
    pinned); Jobs and Log share a short tab area that opens with the first job; the size,
    place and dock layout come back next time."""

    def __init__(self, settings: Settings | None = None,
                 records: list[PluginRecord] | None = None) -> None:
        super().__init__()
        self.settings = settings or settings_mod.load()
        self.setWindowTitle("Generative Studio")
        self.setWindowIcon(QIcon(str(RESOURCES / "studio.svg")))
        screen = QApplication.primaryScreen()
        self.resize(default_size(screen.availableGeometry().size() if screen else None))
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
        self._shown_once = False
        self.store = PluginStore("studio")
        self.tray: QSystemTrayIcon | None = None
        self.notifications: list[tuple[str, str]] = []  # (title, text) shown this session
        names = {r.id: r.name for r in self.records}

        # navigator + centre
        self.navigator = QListWidget()
        self.navigator.setObjectName("navigator")
        self.navigator.setAccessibleName("Plugins")
        self.navigator.setIconSize(QSize(28, 28))
        self.navigator.setFixedWidth(190)
        self.stack = QStackedWidget()
        central = QWidget()
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
            item.setIcon(self.icon_for(rec))
            if rec.ok:
                item.setToolTip(rec.plugin.description if rec.plugin else "")
            else:
                item.setToolTip(f"Disabled: {rec.error}")
                item.setForeground(Qt.GlobalColor.gray)
            self.navigator.addItem(item)
        self.navigator.currentRowChanged.connect(self._on_nav)

        # docks
        self.jobs_widget = JobsWidget(self.manager, plugin_names=names)
        self.plots_widget = PlotsWidget(self.manager.metrics, labels_for=self._metric_labels)
        self.plots_widget.workspace_for_dialog = lambda: self.settings.workspace_path()
        self.log_widget = LogWidget()
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.jobs_dock = self._dock("Jobs", self.jobs_widget, bottom)
        self.log_dock = self._dock("Log", self.log_widget, bottom)
        self.plots_dock = self._dock("Live plots", self.plots_widget,
                                     Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.jobs_dock, self.log_dock)
        self.jobs_dock.raise_()
        self._restored = self._restore_layout()
        # nothing to show yet: the work area gets the room (see _reveal)
        for dock in (self.plots_dock, self.jobs_dock, self.log_dock):
            dock.hide()
        revealed = self.store.get("window", "revealed", [])
        self._revealed: set[str] = set(revealed if isinstance(revealed, list) else [])
        self.manager.log_message.connect(self.log_widget.append)
        self.manager.event.connect(self._on_event)
        self.manager.job_added.connect(self._on_job_added)
        self.manager.job_forgotten.connect(self._on_job_forgotten)
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
        self._status_timer.setInterval(1000)  # each repaint is taken from a job's threads
        self._status_timer.timeout.connect(self._refresh_job_status)
        self._status_timer.start()

        from studio.widgets.welcome import WelcomePage

        self.welcome = WelcomePage(self.records, self.icon_for, self.start_job)
        self.welcome.opened.connect(self.select_plugin)
        self._containers[WELCOME] = self.welcome
        self.stack.addWidget(self.welcome)

        self._build_menus()
        self.apply_theme()
        self.notice: QWidget | None = None
        self._offer_interrupted_runs()
        start = self._initial_plugin()
        if start == WELCOME:
            self.show_welcome()
        elif start is not None:
            self.select_plugin(start)

    def icon_for(self, rec: PluginRecord) -> QIcon:
        icon_path = rec.plugin.icon_path() if rec.plugin else None
        return QIcon(str(icon_path)) if icon_path else QIcon(str(RESOURCES / "plugin.svg"))

    def _metric_labels(self, plugin_id: str) -> Mapping[str, Any] | None:
        rec = next((r for r in self.records if r.id == plugin_id), None)
        labels = getattr(rec.plugin, "metric_labels", None) if rec and rec.plugin else None
        return labels if isinstance(labels, Mapping) else None

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
        """The keyboard starts in the page (a navigator focused first would select its
        first plugin and hide the welcome page)."""
        super().showEvent(event)  # type: ignore[arg-type]
        if not self._shown_once:
            self._shown_once = True
            self.focus_panel()

    def _reveal(self, dock: QDockWidget) -> None:
        """Open a dock that now has something to show, at a modest size the first time
        (later, at the size the user gave it: the saved layout keeps it)."""
        if dock.isVisible():
            return
        dock.show()
        if dock is self.jobs_dock:
            self.log_dock.show()
            self.tabifyDockWidget(self.jobs_dock, self.log_dock)
            self.jobs_dock.raise_()
        first = dock.objectName() not in self._revealed
        self._revealed.add(dock.objectName())
        if first:
            if dock is self.plots_dock:
                self.resizeDocks([dock], [min(PLOTS_WIDTH, max(310, self.width() // 4))],
                                 Qt.Orientation.Horizontal)
            else:
                self.resizeDocks([dock], [BOTTOM_HEIGHT], Qt.Orientation.Vertical)

    # -- the layout remembered between sessions --------------------------------------------------
    def _restore_layout(self) -> bool:
        """The window's size, place and dock layout as the user left them (False: none)."""
        geometry = self.store.get("window", "geometry")
        state = self.store.get("window", "state")
        restored = False
        if isinstance(geometry, str) and geometry:
            restored = self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        if isinstance(state, str) and state:
            restored = self.restoreState(QByteArray.fromBase64(state.encode("ascii"))) \
                or restored
        return restored

    def save_layout(self) -> None:
        """Remember size, place and dock layout (on close)."""
        visible = {d: d.isVisible() for d in (self.plots_dock, self.jobs_dock, self.log_dock)}
        self.store.put("window", "geometry",
                       bytes(self.saveGeometry().toBase64().data()).decode("ascii"))
        self.store.put("window", "state",
                       bytes(self.saveState().toBase64().data()).decode("ascii"))
        self.store.put("window", "revealed", sorted(self._revealed))
        for dock, shown in visible.items():
            dock.setVisible(shown)

    # -- construction helpers -------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "") + "Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu: QMenu, text: str, slot: Callable[[], object],
                shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.addAction(action)  # shortcuts work with the menu bar hidden too
        return action

    def _build_menus(self) -> None:
        """Menus with mnemonics and explicit shortcuts (the platform's "Preferences" and
        "Quit" keys are empty on Linux desktops): Ctrl+Q, Ctrl+, for Settings, Ctrl+1..9 for
        the plugins, Ctrl+Enter for the open panel's main action, Esc to stop the running
        job (after asking), F1 for the shortcuts sheet."""
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open run…", self._ask_open_run, "Ctrl+O",
                     "Show the curves and settings of an earlier run")
        self.recent_menu = file_menu.addMenu("&Recent runs")
        self.recent_menu.aboutToShow.connect(self._fill_recent_runs)
        self._action(file_menu, "Show &workspace folder", lambda: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(self.settings.workspace_path()))))
        file_menu.addSeparator()
        self.settings_action = self._action(file_menu, "&Settings…", self.open_settings,
                                            "Ctrl+,")
        file_menu.addSeparator()
        self.quit_action = self._action(file_menu, "&Quit", self.close, "Ctrl+Q")

        view_menu = self.menuBar().addMenu("&View")
        self.plugin_actions: list[QAction] = []
        for i, rec in enumerate(self.records):
            keys = f"Ctrl+{i + 1}" if i < 9 else None
            action = self._action(view_menu, f"&{i + 1} {rec.name}" if i < 9 else rec.name,
                                  self._go_to_slot(rec.id), keys)
            self.plugin_actions.append(action)
        view_menu.addSeparator()
        for dock, text in ((self.jobs_dock, "&Jobs"), (self.plots_dock, "Live &plots"),
                           (self.log_dock, "&Log")):
            toggle = dock.toggleViewAction()
            toggle.setText(text)
            view_menu.addAction(toggle)

        run_menu = self.menuBar().addMenu("&Run")
        self.primary_action = self._action(
            run_menu, "Run the panel's &main action", self.trigger_primary, "Ctrl+Return",
            "Train, Generate or the open panel's other main button")
        self.addAction(self._hidden_action("Ctrl+Enter", self.trigger_primary))
        self.stop_action = self._action(run_menu, "&Stop the running job…", self.ask_stop,
                                        "Esc", "Stop the running job (asks first)")
        self.stop_action.setEnabled(False)  # Esc reaches widgets while nothing runs

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Welcome page", self.show_welcome, tip="One-click examples")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        help_menu.addSeparator()
        self._action(help_menu, "&About Generative Studio", lambda: QMessageBox.about(
            self, "Generative Studio",
            f"Generative Studio {__version__}\nTrain and run generative models on your own "
            "machine and your own data. Offline: no account, no cloud."))

    def _hidden_action(self, keys: str, slot: object) -> QAction:
        action = QAction(self)
        action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        return action

    def shortcuts(self) -> list[tuple[str, str]]:
        """(keys, what they do), as the shortcuts sheet lists them."""
        rows: list[tuple[str, str]] = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            for action in (menu.actions() if isinstance(menu, QMenu) else []):
                keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                if keys:
                    rows.append((keys, action.text().replace("&", "").rstrip("…")))
        return rows

    def show_shortcuts(self) -> None:
        from studio.widgets.shortcuts import ShortcutsDialog

        ShortcutsDialog(self.shortcuts(), self).open()

    def _initial_plugin(self) -> str | None:
        """The plugin open last time; the welcome page on a first start."""
        ids = [r.id for r in self.records]
        if self.settings.last_plugin in ids:
            return self.settings.last_plugin
        if any(r.ok for r in self.records):
            return WELCOME
        return ids[0] if ids else None

    # -- plugins --------------------------------------------------------------------------------
    def select_plugin(self, plugin_id: str) -> QWidget:
        """Show ``plugin_id``'s panel (built on first use) and return it."""
        for row in range(self.navigator.count()):
            if self.navigator.item(row).data(Qt.ItemDataRole.UserRole) == plugin_id:
                if self.navigator.currentRow() == row:
                    self._on_nav(row)  # from the welcome page back to the same plugin
                self.navigator.setCurrentRow(row)
                return self.panel(plugin_id)
        raise KeyError(plugin_id)

    def _go_to_slot(self, plugin_id: str) -> Callable[[], None]:
        return lambda: self._go_to(plugin_id)

    def _go_to(self, plugin_id: str) -> None:
        """Ctrl+N: open the plugin and put the keyboard in its panel."""
        self.select_plugin(plugin_id)
        self.focus_panel()

    def current_plugin(self) -> str | None:
        if self.stack.currentWidget() is self.welcome:
            return None
        item = self.navigator.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def show_welcome(self) -> None:
        self.stack.setCurrentWidget(self.welcome)
        self._follow_plugin(None)

    def _on_nav(self, row: int) -> None:
        if row < 0:
            return
        plugin_id = self.navigator.item(row).data(Qt.ItemDataRole.UserRole)
        self.panel(plugin_id)
        self.stack.setCurrentWidget(self._containers[plugin_id])
        self._follow_plugin(plugin_id)
        if self.settings.last_plugin != plugin_id:
            self.settings.last_plugin = plugin_id
            self._save_settings_quietly()

    def _follow_plugin(self, plugin_id: str | None) -> None:
        """Unless pinned, the plots dock shows the open plugin's latest job (or reopened run)
        and folds away when that plugin has none: never another plugin's curves beside it."""
        if self.plots_widget.pinned:
            return
        latest = self.plots_widget.latest_source(plugin_id) if plugin_id else None
        if latest is not None:
            self.plots_widget.show_source(latest)
            self._reveal(self.plots_dock)
        elif self.plots_dock.isVisible():
            self.plots_dock.hide()

    def start_job(self, plugin_id: str, job: str, params: object) -> object:
        """Run one of a plugin's jobs for the user (the welcome page): its panel opens, the
        job goes through the panel's host like its own, and the panel may adopt it
        (``PanelHost.job_started``)."""
        self.select_plugin(plugin_id)
        host = self.hosts[plugin_id]
        handle = host.submit(job, params)
        host.job_started.emit(job, params, handle)
        return handle

    def focus_panel(self) -> bool:
        """Put the keyboard focus on the open panel's first control."""
        page = self.stack.currentWidget()
        if page is None:
            return False
        w = page.nextInFocusChain()
        for _ in range(2000):
            if w is page or w is None:
                break
            if (page.isAncestorOf(w) and w.isVisibleTo(page) and w.isEnabled()
                    and w.focusPolicy() & Qt.FocusPolicy.TabFocus):
                w.setFocus(Qt.FocusReason.TabFocusReason)
                return True
            w = w.nextInFocusChain()
        return False

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab from the navigator goes into the panel, before any dock."""
        if next and self.navigator.hasFocus() and self.focus_panel():
            return True
        return super().focusNextPrevChild(next)

    def trigger_primary(self) -> bool:
        """Ctrl+Enter: the open panel's main action. A panel names it with a
        ``primary_action()`` method, or by the object name "primary" on its main button."""
        panel = self.panels.get(self.current_plugin() or "")
        if panel is None:
            return False
        fn = getattr(panel, "primary_action", None)
        if callable(fn):
            fn()
            return True
        for button in panel.findChildren(QAbstractButton, "primary"):
            if button.isVisible() and button.isEnabled():
                button.click()
                return True
        self.statusBar().showMessage("This panel has no main action for Ctrl+Enter", 4000)
        return False

    def running_job(self) -> JobRecord | None:
        """The job Esc stops: the open plugin's running long job, else any running one."""
        running = [r for r in self.manager.active() if r.state == RUNNING
                   and r.lane != "interactive"]
        mine = [r for r in running if r.plugin == self.current_plugin()]
        chosen = mine or running
        return chosen[0] if chosen else None

    def _bring_to_front(self) -> None:
        self.showNormal()
        self.activateWindow()

    def ask_stop(self) -> bool:
        """Esc: stop the running job, after asking (a training run keeps its checkpoint)."""
        rec = self.running_job()
        if rec is None:
            return False
        answer = QMessageBox.question(
            self, "Stop the job?",
            f"Stop {self.jobs_widget.title(rec)}? A training run keeps its last checkpoint "
            "and can be resumed.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.manager.cancel(rec.id)
        return True

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
        # screen (a 1366-px laptop); scroll bars appear only when the panel does not fit
        # its minimum size, and otherwise the panel gets exactly the room there is.
        area = PanelArea(widget)
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
        if ev.kind != "metrics" or ev.job_id in self._plotted:
            return
        rec = self.manager.runner.find(ev.job_id)
        if rec is None:
            return
        self._plotted.add(ev.job_id)
        mine = rec.plugin == self.current_plugin()
        select = not self.plots_widget.pinned and (mine or ev.job_id in self._follow
                                                   or self.plots_widget.current_source is None)
        self.plots_widget.add_job(ev.job_id, f"{self.jobs_widget.title(rec)} #{rec.id}",
                                  select=select, plugin=rec.plugin)
        if select and (mine or self.current_plugin() is None):
            self._reveal(self.plots_dock)

    def _on_job_forgotten(self, job_id: int) -> None:
        self._plotted.discard(job_id)
        self._follow.discard(job_id)
        self.plots_widget.remove_job(job_id)

    def _on_job_added(self, rec: JobRecord) -> None:
        """A long job opens the Jobs strip; quick previews (hidden in the list) do not."""
        if rec.lane != "interactive":
            self._reveal(self.jobs_dock)

    def _on_job_changed(self, rec: JobRecord) -> None:
        self.stop_action.setEnabled(self.running_job() is not None)
        if rec.state in FINAL_STATES:
            self._refresh_job_status()
            self._notify_if_unseen(rec)
        if rec.state == "failed":
            self._reveal(self.jobs_dock)

    def _notify_if_unseen(self, rec: JobRecord) -> None:
        """A long job that ended while the user was elsewhere: a desktop notification (the
        tray's message, or the taskbar's attention flag where there is no tray)."""
        if (not self.settings.notify_when_done or rec.elapsed < LONG_JOB_S
                or rec.lane == "interactive" or self.isActiveWindow()):
            return
        title = f"{self.jobs_widget.title(rec)}: {rec.state}"
        text = {"done": "Finished. Open the studio to see the result.",
                "failed": f"It failed: {rec.error or 'see the Log'}",
                }.get(rec.state, "It stopped.")
        self.notify(title, text)

    def notify(self, title: str, text: str) -> None:
        self.notifications.append((title, text))
        if QSystemTrayIcon.isSystemTrayAvailable():
            if self.tray is None:
                self.tray = QSystemTrayIcon(self.windowIcon(), self)
                self.tray.setToolTip("Generative Studio")
                self.tray.activated.connect(lambda _reason: self._bring_to_front())
            self.tray.show()
            self.tray.showMessage(title, text, self.windowIcon(), 10000)
        else:
            QApplication.alert(self)

    def _refresh_job_status(self) -> None:
        running = [r for r in self.manager.active() if r.state == RUNNING]
        queued = len(self.manager.active()) - len(running)
        if not running:
            _set_text(self.job_label, f"{queued} queued" if queued else "Idle")
            self.job_bar.hide()
            return
        if self.jobs_dock.isVisible():  # the Jobs strip shows each job's progress and rate:
            n = len(running)  # no second bar repainting every second beside it
            _set_text(self.job_label, f"{n} job{'s' if n != 1 else ''} running"
                      + (f", {queued} queued" if queued else ""))
            self.job_bar.hide()
            return
        rec = running[0]
        extra = f" (+{len(running) - 1 + queued} more)" if len(running) - 1 + queued else ""
        eta = f", ETA {fmt.duration(rec.eta)}" if rec.eta is not None else ""
        _set_text(self.job_label, f"{self.jobs_widget.title(rec)}: {fmt.rate(rec.rate)}{eta}"
                                  f"{extra}")
        frac = rec.fraction
        self.job_bar.setVisible(True)
        set_progress(self.job_bar, frac)

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
        title = f"{m.title or m.job} · {fmt.when(m.started)}" if m is not None else None
        n = self.plots_widget.open_run(run_dir, label=title)
        self._reveal(self.plots_dock)
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
        self.save_layout()
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
