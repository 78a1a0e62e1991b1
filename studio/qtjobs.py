"""Bridge from the pure :class:`~studio.jobs.JobRunner` to the GUI thread.

Workers append events to a deque (a lock-free, GIL-atomic append that costs the job about a
microsecond). A 100 ms QTimer on the GUI thread drains it, so widgets are only ever touched on
the GUI thread, redraws are bounded to ~10 per second however fast a job reports (each wake-up
of the GUI thread is taken from a job's threads on a small machine), and the newest
progress/preview of a job replaces older ones that were not yet shown (a slow frame never makes the
UI fall behind a fast job).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from studio.jobs import FINAL_STATES, HISTORY, Event, JobRecord, JobRunner
from studio.plugin import JobSpec
from studio.settings import Settings

DRAIN_MS = 100  # jobs send progress and metric batches at most 10 times a second
PROGRESS_REFRESH_S = 0.5  # Jobs dock refresh for progress alone (state changes: at once)


class JobHandle(QObject):
    """A panel's view of one job it submitted. All signals arrive on the GUI thread."""

    progress = Signal(object)  # {"done", "total", "message", "rate", "eta"}
    # the points the job logged since its last batch: [(name, step, value, time), ...]
    metrics = Signal(object)
    preview = Signal(str, object, object)  # kind, payload, full event data
    log = Signal(str, str)  # level, text
    state = Signal(str)
    finished = Signal(object)  # JobRecord, once, when the job is done / failed / cancelled

    def __init__(self, manager: JobManager, record: JobRecord) -> None:
        super().__init__(manager)
        self.manager = manager
        self.record = record
        self._delivered = False

    @property
    def id(self) -> int:
        return self.record.id

    def cancel(self) -> None:
        self.manager.cancel(self.record.id)

    @property
    def is_finished(self) -> bool:
        """True once ``finished`` has been emitted on the GUI thread (not merely once the
        worker is done), so code that waits on it sees every event the job sent."""
        return self._delivered


class MetricStore:
    """Every metric point of every job this session, kept on the GUI thread for the plot dock."""

    def __init__(self) -> None:
        self.series: dict[int, dict[str, tuple[list[float], list[float]]]] = {}
        self.version: dict[int, int] = collections.defaultdict(int)

    def add(self, job_id: int, name: str, step: float, value: float) -> None:
        steps, values = self.series.setdefault(job_id, {}).setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
        self.version[job_id] += 1

    def add_points(self, job_id: int, points: list[tuple[str, float, float, float]]) -> None:
        """A batch from a ``metrics`` event: ``(name, step, value, time)`` tuples."""
        series = self.series.setdefault(job_id, {})
        for name, step, value, _t in points:
            steps, values = series.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)
        self.version[job_id] += 1

    def of(self, job_id: int) -> dict[str, tuple[list[float], list[float]]]:
        return self.series.get(job_id, {})

    def forget(self, job_id: int) -> None:
        self.series.pop(job_id, None)
        self.version.pop(job_id, None)


class _LogForwarder(logging.Handler):
    """Python logging records (from any thread) into the same GUI queue as job events."""

    def __init__(self, sink: collections.deque[Any]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "studio.jobs":  # job logs already arrive as events
            return
        try:
            text = self.format(record)
        except Exception:  # a bad log format must not break the app
            text = str(record.msg)
        self.sink.append(Event(0, "log", {"level": record.levelname.lower(), "text": text}))


class JobManager(QObject):
    """Owns the runner for the window; re-emits job events on the GUI thread."""

    job_added = Signal(object)  # JobRecord
    job_changed = Signal(object)  # JobRecord: state or progress changed
    job_forgotten = Signal(int)  # job id: out of the kept history (its row and curves go)
    # every Event, after coalescing (a signal attribute, not QObject.event(): PySide only treats
    # Python functions as overrides of C++ virtuals)
    event = Signal(object)  # type: ignore[assignment]
    log_message = Signal(str, str, int)  # level, text, job id (0: not a job)

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: collections.deque[Event] = collections.deque()
        self.runner = JobRunner(self._queue.append, settings=settings)
        self.handles: dict[int, JobHandle] = {}
        self.metrics = MetricStore()
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._progress_shown: dict[int, float] = {}
        self._progress_owed: dict[int, JobRecord] = {}
        self._timer.timeout.connect(self.drain)
        self._timer.start()
        self._log_handler = _LogForwarder(self._queue)
        self._log_handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logging.getLogger().addHandler(self._log_handler)
        root = logging.getLogger()
        if root.level > logging.INFO or root.level == 0:
            root.setLevel(logging.INFO)

    @property
    def settings(self) -> Settings:
        return self.runner.settings

    def set_settings(self, settings: Settings) -> None:
        """New device / threads / workspace apply to jobs started from now on."""
        self.runner.settings = settings

    # -- submit / cancel ------------------------------------------------------------------------
    def submit(self, plugin_id: str, spec: JobSpec, params: Any = None,
               *, title: str | None = None, func: Callable[..., Any] | None = None,
               out: str | Path | None = None) -> JobHandle:
        """Queue a job with its params object; ``func`` overrides ``spec.target`` (benches and
        tests); ``out`` names a run-making job's folder."""
        rec = self.runner.submit(plugin_id, spec, params, title=title, func=func, out=out)
        handle = JobHandle(self, rec)
        self.handles[rec.id] = handle
        self.job_added.emit(rec)
        return handle

    def cancel(self, job_id: int) -> None:
        self.runner.cancel(job_id)

    def active(self) -> list[JobRecord]:
        return self.runner.active()

    def records(self) -> list[JobRecord]:
        return self.runner.records()

    def shutdown(self, timeout: float = 10.0, *, interrupted: bool = False) -> bool:
        """Cancel all jobs and wait for the workers (used when the window closes; at a session
        end the runs are marked ``interrupted``, to be resumed)."""
        ok = self.runner.shutdown(timeout, interrupted=interrupted)
        self.drain()
        self._timer.stop()
        logging.getLogger().removeHandler(self._log_handler)
        return ok

    # -- GUI-thread delivery --------------------------------------------------------------------
    def drain(self) -> None:
        """Deliver queued events; the newest progress/preview per job wins."""
        if not self._queue and not self._progress_owed:
            return
        batch: list[Event] = []
        pop = self._queue.popleft
        try:
            while True:
                batch.append(pop())
        except IndexError:
            pass
        latest: dict[tuple[int, str, str], int] = {}
        for i, ev in enumerate(batch):
            if ev.kind == "progress":
                latest[(ev.job_id, "progress", "")] = i
            elif ev.kind == "preview" and ev.data.get("replace", True):
                latest[(ev.job_id, "preview", str(ev.data.get("kind")))] = i
        changed: dict[int, tuple[JobRecord, bool]] = {}
        for i, ev in enumerate(batch):
            if ev.kind == "progress" and latest[(ev.job_id, "progress", "")] != i:
                continue
            if ev.kind == "preview" and ev.data.get("replace", True) and \
                    latest[(ev.job_id, "preview", str(ev.data.get("kind")))] != i:
                continue
            self._dispatch(ev, changed)
        now = time.monotonic()
        for job_id, (rec, state_changed) in changed.items():
            # progress alone refreshes the Jobs dock at most PROGRESS_REFRESH_S apart: every
            # repaint on the GUI thread competes with the job's threads on small machines
            if state_changed or now - self._progress_shown.get(job_id, 0.0) >= PROGRESS_REFRESH_S:
                self._progress_shown[job_id] = now
                self.job_changed.emit(rec)
            else:
                self._progress_owed[job_id] = rec
        for job_id in [j for j in self._progress_owed if j not in changed]:
            if now - self._progress_shown.get(job_id, 0.0) >= PROGRESS_REFRESH_S:
                self._progress_shown[job_id] = now
                self.job_changed.emit(self._progress_owed.pop(job_id))

    def _dispatch(self, ev: Event, changed: dict[int, tuple[JobRecord, bool]]) -> None:
        handle = self.handles.get(ev.job_id)
        kind, data = ev.kind, ev.data
        if kind == "metrics":
            self.metrics.add_points(ev.job_id, data["points"])
            if handle:
                handle.metrics.emit(data["points"])
        elif kind == "progress":
            if handle:
                changed.setdefault(ev.job_id, (handle.record, False))
                handle.progress.emit(data)
        elif kind == "preview":
            if handle:
                handle.preview.emit(str(data.get("kind")), data.get("payload"), data)
        elif kind == "log":
            self.log_message.emit(data.get("level", "info"), data.get("text", ""), ev.job_id)
            if handle:
                handle.log.emit(data.get("level", "info"), data.get("text", ""))
        elif kind == "state" and handle:
            changed[ev.job_id] = (handle.record, True)
            self._progress_owed.pop(ev.job_id, None)
            handle.state.emit(data["state"])
            if data["state"] in FINAL_STATES:
                handle._delivered = True
                handle.finished.emit(handle.record)
                self._forget_old()
        self.event.emit(ev)

    def _forget_old(self) -> None:
        """Keep the newest ``HISTORY`` finished jobs' handles, curves and rows (the runner
        keeps as many records): a session of a thousand Explore moves grew by 212 MB. A panel
        that still holds a handle keeps it; it is only no longer a child of the manager. The
        curves go with ``job_forgotten`` (the plots dock keeps the ones it is showing)."""
        finished = [i for i, h in self.handles.items() if h._delivered]
        for job_id in finished[:max(0, len(finished) - HISTORY)]:
            handle = self.handles.pop(job_id)
            handle.setParent(None)
            self._progress_shown.pop(job_id, None)
            self._progress_owed.pop(job_id, None)
            self.job_forgotten.emit(job_id)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Tests and benches: block (processing events) until no job is active."""
        from PySide6.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            QCoreApplication.processEvents()
            self.drain()
            if not self.active() and not self._queue:
                return True
            time.sleep(0.01)
        return False
