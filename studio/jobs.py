"""Jobs: the one way long work runs, in the window, on the command line and in tests.

A job is an ordinary function ``f(ctx, p)`` (``p``: its params dataclass, ``studio.params``).
It reports through its :class:`JobContext` (``progress``, ``metric``, ``preview``, ``log``),
calls ``ctx.check()`` at least once per step so Cancel lands within a step, and returns its
result (usually a path).

:class:`JobRunner` owns the worker threads: one per *lane* ("compute" for training on the device,
"interactive" for quick generation), each consuming its queue in order. Events go to a listener
callback on the worker thread; the Qt bridge (``studio.qtjobs``) queues them for the GUI thread and
the command line prints them. This module never imports Qt.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio import params as params_mod
from studio.errors import Cancelled, UserError, friendly
from studio.manifest import Example
from studio.plugin import JobSpec
from studio.runs import RunDir, new_run_dir
from studio.settings import Settings
from studio.threads import ThreadGovernor, read_cpu

if TYPE_CHECKING:
    from studio.cache import PrepCache

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
INTERRUPTED = "interrupted"  # stopped by the system (logout, shutdown, a signal): resumable
FINAL_STATES = (DONE, FAILED, CANCELLED, INTERRUPTED)
HISTORY = 100  # finished jobs a runner (and the window's job manager) keeps
METRIC_BATCH_S = 0.1  # a job's metric points go out together at most this often (10 Hz)
PROGRESS_EVERY_S = 0.1  # a job's progress events at most this often (the last always goes)
_ids = itertools.count(1)


@dataclass
class Event:
    """Something a job reported. ``kind`` is state, progress, metrics, preview or log.

    A ``metrics`` event carries ``data["points"]``: ``(name, step, value, time)`` tuples, every
    point the job logged since its last such event (see :meth:`JobContext.metric`)."""

    job_id: int
    kind: str
    data: dict[str, Any]
    time: float = field(default_factory=time.time)

    @property
    def points(self) -> list[tuple[str, float, float, float]]:
        """A ``metrics`` event's points (any other event: none)."""
        return self.data["points"] if self.kind == "metrics" else []


@dataclass
class JobRecord:
    """Everything the Jobs dock and the command line show about one job."""

    id: int
    plugin: str
    job: str
    title: str
    params: Any  # the job's params object (a dataclass), or a mapping from a test or legacy job
    lane: str = "compute"
    state: str = QUEUED
    done: float = 0.0
    total: float | None = None
    message: str = ""
    rate: float | None = None  # units of ``done`` per second
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    run_dir: Path | None = None
    out: Path | None = None  # the run folder asked for (makes_run jobs; None: a new one)

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    @property
    def eta(self) -> float | None:
        if self.total is None or not self.rate or self.state != RUNNING:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


Listener = Callable[[Event], None]


class JobContext:
    """What a running job sees. Cheap to call every step: events are dicts handed to a listener."""

    def __init__(
        self,
        record: JobRecord,
        emit: Listener,
        cancel_flag: threading.Event,
        settings: Settings,
        run: RunDir | None = None,
    ) -> None:
        self.record = record
        self._emit = emit
        self._cancel = cancel_flag
        self._settings = settings
        self.run = run
        self._device: str | None = None
        self._last_progress = 0.0
        self._rate_anchor: tuple[float, float] | None = None
        self._governor: ThreadGovernor | None = None
        self._governor_ready = False
        # the machine's CPU use from the job's start on, for the governor's first choice
        reading = read_cpu()
        self._cpu_at_start = (time.monotonic(), reading) if reading is not None else None
        self._points: list[tuple[str, float, float, float]] = []
        self._points_lock = threading.Lock()
        self._points_sent = 0.0  # monotonic time of the last metrics event

    # -- identity -------------------------------------------------------------------------------
    @property
    def job_id(self) -> int:
        return self.record.id

    @property
    def run_dir(self) -> Path | None:
        """The run folder (only for jobs whose spec has ``makes_run=True``)."""
        return self.run.path if self.run else None

    @property
    def workspace(self) -> Path:
        return self._settings.workspace_path()

    @property
    def cache(self) -> PrepCache:
        """The workspace's prepared-data cache (:mod:`studio.cache`), within the size limit
        chosen in Settings."""
        from studio.cache import PrepCache

        return PrepCache.of_workspace(self.workspace, float(self._settings.cache_limit_gb))

    @property
    def cpu_threads(self) -> int:
        """The CPU thread count chosen in Settings (0: automatic). A job may pick its own count
        when this is 0, e.g. one thread for models too small to split across cores."""
        return int(self._settings.cpu_threads or 0)

    @property
    def device(self) -> str:
        """The torch device string chosen in Settings ("cuda:0", "mps" or "cpu"); resolved on
        first use so jobs that never touch torch never import it."""
        if self._device is None:
            from studio import device

            self._device = device.resolve(self._settings.device,
                                          self._settings.cpu_threads).torch_device
        return self._device

    # -- cancellation ---------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop. Call at least once per step.

        It also lets torch's CPU threads follow the CPU other programs leave free
        (:mod:`studio.threads`): on this, the job's own thread, once torch is loaded."""
        if self._cancel.is_set():
            raise Cancelled()
        if self._points and time.monotonic() - self._points_sent >= METRIC_BATCH_S:
            self.flush_metrics()
        if not self._governor_ready:
            self._start_governor()
        if self._governor is not None:
            self._governor.tick()

    def _start_governor(self) -> None:
        import sys

        torch = sys.modules.get("torch")
        if torch is None:
            return  # not yet: a job that never loads torch needs none
        self._governor_ready = True
        from studio import threads

        n = int(torch.get_num_threads())
        if n > 1 and threads.enabled() and sys.platform.startswith("linux"):
            self._governor = threads.ThreadGovernor(n, since=self._cpu_at_start)

    def release_threads(self) -> None:
        """Put torch's thread count back (its setting outlives this job's thread)."""
        gov = self._governor
        if gov is not None and gov.threads != gov.max_threads:
            gov.restore()

    def sleep(self, seconds: float) -> None:
        """Wait, but wake at once on cancel."""
        if self._cancel.wait(seconds):
            raise Cancelled()

    # -- reporting ------------------------------------------------------------------------------
    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report ``done`` of ``total`` units. Throttled to ~10 events/s; the last one always goes
        out (``done == total``) so bars end at 100%. A count that starts again is a new phase
        ("Preparing data" then "Training"): its total and rate start afresh (no total: the
        window shows a busy bar)."""
        rec = self.record
        now = time.monotonic()
        if done < rec.done:
            # the count started again: a new phase (reading images, then training steps)
            # keeps neither the last phase's total (a bar at 100% while training starts)
            # nor its rate (images per second are not steps per second)
            rec.total = None
            rec.rate = None
        rec.done = float(done)
        if total is not None:
            rec.total = float(total)
        changed_msg = bool(message) and message != rec.message
        if message:
            rec.message = message
        if self._rate_anchor is None or done < self._rate_anchor[1]:
            self._rate_anchor = (now, float(done))
        else:
            t0, d0 = self._rate_anchor
            if now - t0 >= 0.5:
                inst = (done - d0) / (now - t0)
                rec.rate = inst if rec.rate is None else 0.7 * rec.rate + 0.3 * inst
                self._rate_anchor = (now, float(done))
        final = rec.total is not None and done >= rec.total
        if not (final or changed_msg or now - self._last_progress >= PROGRESS_EVERY_S):
            return
        self._last_progress = now
        self.flush_metrics()  # points first: events keep the order they happened in
        self._emit(Event(rec.id, "progress", {
            "done": rec.done, "total": rec.total, "message": rec.message, "rate": rec.rate,
            "eta": rec.eta}))

    def metric(self, name: str, step: float, value: float) -> None:
        """A point on a live curve. Names with a slash share a plot: ``loss/D`` and ``loss/G``.

        Points travel in batches: one ``metrics`` event at most every ``METRIC_BATCH_S`` with
        every point since the last (a point after a quiet spell goes at once). A job that logs
        every step at hundreds of steps a second would otherwise cost the window one event
        and one signal per point (the GUI thread was 4.4-4.9% busy, time taken from the job's
        own threads on a small machine). Any other event, ``check`` once the batch is due and
        the job's end send what is waiting, so nothing is late by more than a step."""
        value = float(value)
        now = time.time()
        if self.run is not None:
            self.run.metrics.write(name, step, value, now)
        with self._points_lock:
            self._points.append((name, float(step), value, now))
        if time.monotonic() - self._points_sent >= METRIC_BATCH_S:
            self.flush_metrics()

    def flush_metrics(self) -> None:
        """Send the points waiting in this job's batch now."""
        with self._points_lock:
            if not self._points:
                return
            points, self._points = self._points, []
            self._points_sent = time.monotonic()
        self._emit(Event(self.record.id, "metrics", {"points": points}, points[-1][3]))

    def metrics(self, step: float, **values: float) -> None:
        for name, value in values.items():
            self.metric(name, step, value)

    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None:
        """Something to show now: an image array, an audio buffer, a text chunk, a level grid.

        ``replace=True`` lets a slow viewer skip to the newest preview of this kind; streaming
        text chunks pass ``replace=False`` so none is lost.
        """
        self.flush_metrics()
        self._emit(Event(self.record.id, "preview",
                         {"kind": kind, "payload": payload, "replace": replace, **extra}))

    def log(self, text: str, level: str = "info") -> None:
        getattr(log, level if level in ("debug", "info", "warning", "error") else "info")(
            "[job %s] %s", self.record.id, text)
        self.flush_metrics()
        self._emit(Event(self.record.id, "log", {"level": level, "text": text}))

    def warn(self, text: str) -> None:
        self.log(text, "warning")

    # -- provenance (read by the audit panel) --------------------------------------------------
    def record_data(self, name: str, location: str | Path, examples: Sequence[Example], *,
                    held_out: Iterable[str] = (), role: str = "train", unit: str = "file",
                    **info: Any) -> None:
        """Record the data this run learns from: every example with its content hash, and
        which were held out (``held_out``: example ids). Written beside ``run.json`` so the
        audit can ask which examples trained the model; a resumed run whose data changed is
        warned about."""
        if self.run is None:
            return
        from studio import manifest

        held = set(held_out)
        examples_file, n_train, n_held = manifest.write_examples(self.run.path, role, examples,
                                                                 held)
        ds = manifest.Dataset(role=role, name=name, location=str(location),
                              fingerprint=manifest.fingerprint(e.id for e in examples),
                              examples=len(examples), train=n_train, held_out=n_held, unit=unit,
                              examples_file=examples_file, info=dict(info))
        old = self.run.record_data(ds)
        if old is not None and old.fingerprint and old.fingerprint != ds.fingerprint:
            counts = (f"{old.examples} examples then, {ds.examples} now" if old.examples !=
                      ds.examples else f"as many examples, {ds.examples}, but their content "
                      "changed")
            self.warn(f"the {role} data differs from what this run was trained on before "
                      f"({counts}); continuing with it as it is now")

    def recorded_data(self, role: str = "train") -> str | None:
        """Where this run's data was when it last trained (absolute): a resumed run finds it
        from any folder without being told again. None for a new run."""
        if self.run is None:
            return None
        ds = self.run.manifest.dataset(role)
        return ds.location if ds is not None and ds.location else None

    def add_dataset(self, path: str | Path, **info: Any) -> None:
        """A dataset described only by its location and counts (no per-example list)."""
        if self.run is not None:
            self.run.add_dataset(path, **info)

    def add_artifact(self, path: str | Path, kind: str, model_kind: str = "", **info: Any
                     ) -> None:
        """Record something the run made (``kind="model"`` with its ``model_kind`` lists it
        in the model library), with its content hash."""
        if self.run is not None:
            self.run.add_artifact(path, kind, model_kind, **info)

    def truncate_metrics(self, after_step: float) -> None:
        """On resume from a checkpoint at ``after_step``: drop later curve points so the plot has
        no duplicated tail, and keep logging into the run's metrics.jsonl."""
        if self.run is not None:
            self.run.truncate_metrics(after_step)

    # -- jobs inside a job ----------------------------------------------------------------------
    def run_job(self, plugin_id: str, job: str, params: Any, *, out: Path | None = None,
                label: str = "") -> Any:
        """Run another plugin's job inside this one, on this thread (the audit trains its
        reference models with each plugin's own train job). It gets a run folder of its own
        (``out``, or a new one) with its manifest and curves; its progress shows as this job's
        message, prefixed by ``label``; Stop stops both. Returns its result."""
        from studio import registry

        spec = registry.get(plugin_id).job(job)
        fn = spec.load()
        cls = params_mod.params_of(fn)
        p = params_mod.prepare_unread(cls, params)
        run: RunDir | None = None
        if spec.makes_run:
            workspace = self._settings.workspace_path()
            run = RunDir.open((out or new_run_dir(workspace, plugin_id, job)).resolve(),
                              plugin_id, job, params_mod.to_json(p), self._settings.device,
                              spec.title or job, workspace)
        child = _NestedContext(self, run, label or spec.title or job)
        state, result, error = FAILED, None, None
        try:
            params_mod.read_objects(p, child.warn)
            result = fn(child) if cls is params_mod.NoParams else fn(child, p)
            if result is None and run is not None:
                result = run.path
            state = DONE
        except Cancelled:
            state = CANCELLED
            raise
        except BaseException as exc:
            error = friendly(exc)
            raise
        finally:
            if run is not None:
                run.finish(state, result, error)
        return result


class _NestedContext(JobContext):
    """The context of a job run inside another (:meth:`JobContext.run_job`): its curves go to
    its own run folder only, its progress and logs show in the outer job's."""

    def __init__(self, outer: JobContext, run: RunDir | None, label: str) -> None:
        super().__init__(outer.record, outer._emit, outer._cancel, outer._settings, run)
        self._outer = outer
        self._label = label
        self._device = outer._device

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        frac = f" {100 * done / total:.0f}%" if total else ""
        text = f"{self._label}{frac}" + (f": {message}" if message else "")
        self._outer.progress(self._outer.record.done, self._outer.record.total, text)

    def metric(self, name: str, step: float, value: float) -> None:
        if self.run is not None:
            self.run.metrics.write(name, step, float(value), time.time())

    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None:
        return None  # the outer job decides what to show


#: 0: a job's threads compete with other programs as equals. At +5 (the window's stalls were
#: the reason: up to 80 ms now and then) a GAN beside two busy programs on 2 cores got 0.37 of
#: its fair share of the CPU (2.6 steps/s against 7.1), at 0 it gets 0.89 (7.2 against 8.1),
#: and the window stays responsive (bench/ui_latency.py: p99 stall 4 ms, the longest 85 ms)
#: because the GUI thread now wakes rarely and for little (it uses ~2% of a core). A positive
#: value could never be undone: lowering niceness again needs privileges.
WORKER_NICENESS = 0


def _yield_to_the_window() -> None:
    """Set this worker thread's scheduling priority to ``WORKER_NICENESS`` above the window's
    (Linux: per-thread niceness, inherited by the torch/OpenMP threads it starts afterwards)."""
    import sys

    if not WORKER_NICENESS or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS)
    except OSError:  # not allowed here: keep the inherited priority
        pass


class _Lane:
    def __init__(self, runner: JobRunner, name: str) -> None:
        self.name = name
        self.queue: queue.Queue[JobRecord | None] = queue.Queue()
        self.current: JobRecord | None = None
        self.thread = threading.Thread(target=runner._work, args=(self,), name=f"studio-{name}",
                                       daemon=True)
        self.thread.start()


class JobRunner:
    """Queues jobs on background worker threads and reports their events to ``listener``.

    Args:
        listener: called on the worker thread for every event; must be quick and thread-safe.
        settings: device, threads and workspace (defaults: the user's saved settings).
    """

    def __init__(self, listener: Listener | None = None, settings: Settings | None = None) -> None:
        if settings is None:
            from studio import settings as settings_mod

            settings = settings_mod.load()
        self.settings = settings
        self._listeners: list[Listener] = [listener] if listener else []
        self._lanes: dict[str, _Lane] = {}
        self._records: dict[int, JobRecord] = {}
        self._specs: dict[int, tuple[JobSpec, Callable[..., Any] | None]] = {}
        self._cancel: dict[int, threading.Event] = {}
        self._done: dict[int, threading.Event] = {}
        self._interrupted: set[int] = set()
        self._lock = threading.Lock()
        self._closed = False

    # -- public API -----------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def submit(
        self,
        plugin_id: str,
        spec: JobSpec,
        params: Any = None,
        *,
        title: str | None = None,
        func: Callable[..., Any] | None = None,
        out: str | Path | None = None,
    ) -> JobRecord:
        """Queue ``spec`` with ``params`` (its params object; a mapping is read as the command
        line would); returns at once. Parameters are checked on the worker (importing the job
        may import torch), so bad values end the job as failed with a clear message rather than
        raising here. ``out`` names the run folder of a ``makes_run`` job."""
        if self._closed:
            raise RuntimeError("the job runner is shut down")
        if isinstance(params, Mapping):
            params = dict(params)
            if "out" in params and spec.makes_run:  # legacy and test callers pass it inline
                out = params.pop("out")
        elif params is None:
            params = {}
        rec = JobRecord(id=next(_ids), plugin=plugin_id, job=spec.name,
                        title=title or spec.title or f"{plugin_id} {spec.name}",
                        params=params, lane=spec.lane,
                        out=Path(out).expanduser() if out else None)
        with self._lock:
            self._records[rec.id] = rec
            self._specs[rec.id] = (spec, func)
            self._cancel[rec.id] = threading.Event()
            self._done[rec.id] = threading.Event()
            lane = self._lanes.get(spec.lane)
            if lane is None:
                lane = self._lanes[spec.lane] = _Lane(self, spec.lane)
        self._state(rec, QUEUED)
        lane.queue.put(rec)
        return rec

    def cancel(self, job_id: int, *, interrupted: bool = False) -> None:
        """Ask a job to stop. A queued job is cancelled at once; a running one at its next
        ``ctx.check()`` (a training job checkpoints first). ``interrupted``: the system, not
        the user, stops it (logout, shutdown, a signal); its run is marked "interrupted", to
        be resumed."""
        flag = self._cancel.get(job_id)
        if flag is None:
            return
        if interrupted:
            self._interrupted.add(job_id)
        flag.set()
        rec = self._records[job_id]
        if rec.state == QUEUED:
            self._finish(rec, INTERRUPTED if interrupted else CANCELLED)

    def cancel_all(self, *, interrupted: bool = False) -> None:
        for job_id in list(self._records):
            self.cancel(job_id, interrupted=interrupted)

    def record(self, job_id: int) -> JobRecord:
        return self._records[job_id]

    def records(self) -> list[JobRecord]:
        return list(self._records.values())

    def active(self) -> list[JobRecord]:
        return [r for r in self._records.values() if r.state not in FINAL_STATES]

    def wait(self, job_id: int, timeout: float | None = None) -> JobRecord:
        """Block until the job ends (or ``timeout``); returns its record."""
        with self._lock:
            rec, done = self._records.get(job_id), self._done.get(job_id)
        if rec is None or done is None:
            raise KeyError(f"job {job_id} is not known (or ended long ago)")
        done.wait(timeout)
        return rec

    def shutdown(self, timeout: float = 10.0, *, interrupted: bool = False) -> bool:
        """Cancel everything and wait for the workers; True when all stopped in time."""
        self._closed = True
        self.cancel_all(interrupted=interrupted)
        for lane in self._lanes.values():
            lane.queue.put(None)
        deadline = time.monotonic() + timeout
        ok = True
        for lane in self._lanes.values():
            lane.thread.join(max(0.0, deadline - time.monotonic()))
            ok = ok and not lane.thread.is_alive()
        return ok

    # -- worker side ----------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken viewer must never kill the job
                log.exception("event listener failed")

    def _state(self, rec: JobRecord, state: str) -> None:
        rec.state = state
        self._emit(Event(rec.id, "state", {"state": state, "error": rec.error,
                                           "result": rec.result}))

    def _finish(self, rec: JobRecord, state: str) -> None:
        with self._lock:
            if rec.state in FINAL_STATES:
                return
            rec.finished = time.time()
        self._state(rec, state)
        self._done[rec.id].set()
        self._forget_old()

    def _forget_old(self) -> None:
        """Keep the newest :data:`HISTORY` finished jobs. A window session runs thousands of
        quick jobs (every Explore slider move is one, its result an image): kept for ever,
        they grew a session by 212 MB per 1,000 (bench/session_memory.py). Whoever still holds
        a record keeps it; the runner only lets go of its own references."""
        with self._lock:
            finished = [i for i, r in self._records.items() if r.state in FINAL_STATES]
            for job_id in finished[:max(0, len(finished) - HISTORY)]:
                del self._records[job_id]
                self._specs.pop(job_id, None)
                self._cancel.pop(job_id, None)
                self._done.pop(job_id, None)
                self._interrupted.discard(job_id)

    def find(self, job_id: int) -> JobRecord | None:
        """The record of a job, or None once it is out of the kept history."""
        return self._records.get(job_id)

    def _stopped_state(self, rec: JobRecord) -> str:
        return INTERRUPTED if rec.id in self._interrupted else CANCELLED

    def _work(self, lane: _Lane) -> None:
        """The lane's loop: one job at a time, each on a thread of its own that ends with it.

        Why not run jobs on the lane thread itself: torch's OpenMP runtime keeps a thread pool
        for every thread that ran parallel work, for as long as that thread lives. A lane thread
        that once generated a sample kept its pool while the compute lane trained, and with
        more pool threads than cores libgomp stops spin-waiting: training on 2 cores ran 27%
        slower for the rest of the session (bench/lane_pools.py). A job's own thread takes its
        pool with it. The lane thread only waits, so it never has one.
        """
        _yield_to_the_window()  # job threads inherit its priority (Linux)
        while True:
            rec = lane.queue.get()
            if rec is None:
                return
            if rec.state in FINAL_STATES:
                continue
            lane.current = rec
            try:
                worker = threading.Thread(target=self._execute, args=(rec,), daemon=True,
                                          name=f"studio-{lane.name}-job{rec.id}")
                worker.start()
                worker.join()
            finally:
                lane.current = None

    def _execute(self, rec: JobRecord) -> None:
        spec, func = self._specs[rec.id]
        cancel_flag = self._cancel[rec.id]
        rec.started = time.time()
        self._state(rec, RUNNING)
        run: RunDir | None = None
        ctx: JobContext | None = None
        state, result = FAILED, None
        try:
            if self.settings.cpu_threads:
                from studio import device

                device.configure_torch(self.settings.cpu_threads)
            fn = func or spec.load()
            cls = params_mod.params_of(fn)  # check everything before any folder is made
            p = params_mod.prepare_unread(cls, rec.params)
            if spec.makes_run:
                workspace = self.settings.workspace_path()
                run_path = rec.out or new_run_dir(workspace, rec.plugin, rec.job)
                run = RunDir.open(run_path.resolve(), rec.plugin, rec.job, params_mod.to_json(p),
                                  self.settings.device, rec.title, workspace)
                rec.run_dir = run.path
            ctx = JobContext(rec, self._emit, cancel_flag, self.settings, run)
            ctx.check()
            params_mod.read_objects(p, ctx.warn)
            result = fn(ctx) if cls is params_mod.NoParams else fn(ctx, p)
            if result is None and run is not None:
                result = run.path
            state = self._stopped_state(rec) if cancel_flag.is_set() else DONE
        except Cancelled:
            state = self._stopped_state(rec)
        except BaseException as exc:  # the job failed: tell the user, keep the app alive
            if ctx is not None:
                ctx.flush_metrics()  # the curve up to the failure, before the failure
            rec.error = friendly(exc)
            if not isinstance(exc, UserError):
                rec.traceback = traceback.format_exc()
            self._emit(Event(rec.id, "log", {
                "level": "error", "failure": True,
                "text": f"{rec.title} failed: {rec.error}"
                        + (f"\n{rec.traceback}" if rec.traceback else "")}))
            if not isinstance(exc, Exception):  # KeyboardInterrupt / SystemExit: a stop
                state = self._stopped_state(rec)
        finally:
            if ctx is not None:
                ctx.flush_metrics()
                ctx.release_threads()
            rec.result = result
            if run is not None:
                try:
                    run.finish(state, result, rec.error)
                except OSError as exc:
                    self._emit(Event(rec.id, "log", {
                        "level": "error", "text": f"could not finalise run folder: {exc}"}))
            self._finish(rec, state)
