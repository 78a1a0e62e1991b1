"""What a plugin panel may ask of the studio: run jobs, show plots, log, know the workspace.

Each panel gets its own :class:`PanelHost` (it knows the plugin id), so panels never reach into
the window. Tests build a PanelHost around a bare :class:`~studio.qtjobs.JobManager` and exercise a
panel without any main window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from studio import params as params_mod
from studio.plugin import Plugin
from studio.qtjobs import JobHandle, JobManager
from studio.settings import PluginStore, Settings

P = TypeVar("P")


class PanelHost(QObject):
    """The studio as seen from one plugin's panel."""

    #: the user changed Settings (theme, device, workspace); panels may refresh
    settings_changed = Signal(object)
    #: the user reopened one of this plugin's runs: (job name, its params object)
    run_reopened = Signal(str, object, object)
    #: the studio started one of this plugin's jobs for the user (the welcome page's one-click
    #: examples): (job name, its params object, the JobHandle). A panel may adopt the
    #: handle to show its previews and result as if its own button had started it.
    job_started = Signal(str, object, object)

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
        self.store = PluginStore(plugin.id)

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

    def submit(self, job: str, params: Any = None, *, title: str | None = None,
               show_plots: bool = True, out: str | Path | None = None,
               remember: bool = True) -> JobHandle:
        """Queue one of this plugin's jobs with its params object (remembered as the job's
        last values unless ``remember=False``: live previews that submit on every slider
        move). Watch the returned handle's signals for results."""
        spec = self.plugin.job(job)
        if remember and dataclasses.is_dataclass(params) and not isinstance(params, type):
            self.remember(job, params)
        handle = self.manager.submit(self.plugin.id, spec, params, title=title, out=out)
        if show_plots and self._show_plots is not None:
            self._show_plots(handle.id)
        return handle

    # -- memory between sessions ----------------------------------------------------------------
    def recall(self, job: str, cls: type[P]) -> P:
        """The values ``job`` was last submitted with (defaults the first time)."""
        return params_mod.from_json(cls, self.store.get("params", job))  # type: ignore[no-any-return,unused-ignore]

    def remember(self, job: str, params: Any) -> None:
        """Keep ``params`` as ``job``'s last values (in-memory objects are not kept)."""
        self.store.put("params", job, params_mod.to_json(params))

    def recall_value(self, key: str, default: Any = None) -> Any:
        return self.store.get("ui", key, default)

    def remember_value(self, key: str, value: Any) -> None:
        self.store.put("ui", key, value)

    def reopen(self, run_dir: Path) -> bool:
        """Tell the panel a run of this plugin was reopened, with the settings it ran with
        (the panel puts them back in its form). False when the run is not this plugin's."""
        from studio import manifest

        m = manifest.read(run_dir)
        if m is None or m.plugin != self.plugin.id:
            return False
        try:
            cls = params_mod.job_params(self.plugin.job(m.job).load())
        except Exception:  # a job that no longer exists or fails to import: curves still open
            return False
        if cls is None:
            return False
        self.run_reopened.emit(m.job, params_mod.from_json(cls, m.params), Path(run_dir))
        return True

    def resume(self, run_dir: Path) -> JobHandle | None:
        """Continue one of this plugin's runs with the settings it was started with (the
        interrupted-runs notice, and any panel's Resume). None when it cannot be resumed."""
        from studio import manifest

        m = manifest.read(run_dir)
        if m is None or m.plugin != self.plugin.id:
            return None
        try:
            cls = params_mod.params_of(self.plugin.job(m.job).load())
        except Exception:  # a job that no longer exists: nothing to resume it with
            return None
        p = params_mod.from_json(cls, m.params)
        if not hasattr(p, "resume"):
            return None
        p.resume = True
        return self.submit(m.job, p, out=Path(run_dir), remember=False)

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
