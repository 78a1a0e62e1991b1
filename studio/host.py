"""What a plugin panel may ask of the studio: run jobs, show plots, log, know the workspace.

Each panel gets its own :class:`PanelHost` (it knows the plugin id), so panels never reach into
the window. Tests build a PanelHost around a bare :class:`~studio.qtjobs.JobManager` and exercise a
panel without any main window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.plugin import Plugin
from studio.qtjobs import JobHandle, JobManager
from studio.settings import Settings


class PanelHost(QObject):
    """The studio as seen from one plugin's panel."""

    #: the user changed Settings (theme, device, workspace); panels may refresh
    settings_changed = Signal(object)

    def __init__(
        self,
        manager: JobManager,
        plugin: Plugin,
        *,
        show_plots: Callable[[int], None] | None = None,
        open_run: Callable[[Path], None] | None = None,
        status: Callable[[str, int], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.manager = manager
        self.plugin = plugin
        self._show_plots = show_plots
        self._open_run = open_run
        self._status = status

    @property
    def plugin_id(self) -> str:
        return self.plugin.id

    @property
    def settings(self) -> Settings:
        return self.manager.settings

    @property
    def workspace(self) -> Path:
        return self.settings.workspace_path()

    def runs_dir(self) -> Path:
        """Where this plugin's runs go by default (``<workspace>/runs/<plugin>``)."""
        return self.workspace / "runs" / self.plugin.id

    def submit(self, job: str, params: Mapping[str, Any] | None = None, *,
               title: str | None = None, show_plots: bool = True) -> JobHandle:
        """Queue one of this plugin's jobs. Watch the returned handle's signals for results."""
        spec = self.plugin.job(job)
        handle = self.manager.submit(self.plugin.id, spec, params, title=title)
        if show_plots and self._show_plots is not None:
            self._show_plots(handle.id)
        return handle

    def cancel(self, handle: JobHandle | int) -> None:
        self.manager.cancel(handle if isinstance(handle, int) else handle.id)

    def show_run(self, run_dir: Path) -> None:
        """Show a finished run's curves (from its metrics.jsonl) in the Live plots dock."""
        if self._open_run is not None:
            self._open_run(Path(run_dir))

    def log(self, text: str, level: str = "info") -> None:
        self.manager.log_message.emit(level, f"[{self.plugin.id}] {text}", 0)

    def notify(self, text: str, msec: int = 5000) -> None:
        """A short message in the status bar (and the log)."""
        if self._status is not None:
            self._status(text, msec)
        self.log(text)
