"""The one training loop every plugin's trainer runs in.

What differs between a GAN, a music VAE, a DDPM, a language model and a level GAN is one step
of training, what an evaluation measures, what a preview shows and how the model is saved. That
is a :class:`TrainTask`. Everything around it is the same and lives here, once:

- a step budget, or a wall-clock budget (the learning-rate schedule follows whichever ends
  first: :attr:`LoopState.horizon` estimates the final step from the recent step time);
- metrics averaged over each logging window (kept in the checkpoint, so a resumed run logs
  exactly the values the uninterrupted run would have), progress every step;
- evaluation, preview and checkpoint cadences (in steps, and for checkpoints also in minutes);
- keep-best on an evaluation metric, and early stop after ``patience`` evaluations without
  improvement;
- a checkpoint on Stop (and on an error between steps), and exact resume: the task's state, the
  loop's own state and the global random generators are saved together, and on resume the run's
  metrics file is cut back to the checkpoint's step, so the curves continue without a gap or a
  duplicate;
- data-parallel runs under torchrun (:mod:`plugins.common.distributed`): every rank runs this
  loop in step; rank 0 alone checkpoints, previews, exports and writes metrics (averaged over
  the ranks), and what a clock or a Stop decides is rank 0's, agreed once a step.

It reports through a :class:`Reporter`; a studio ``JobContext`` is one, so the same loop runs in
the window, on the command line, in the tests and in the benches (:class:`QuietReporter`).
No Qt; torch is needed only by the tasks (and to capture random-generator states).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from plugins.common import distributed
from studio import storage
from studio.errors import Cancelled, UserError

LOOP_KEY = "__loop__"
RNG_KEY = "__rng__"


# ----------------------------------------------------------------------------------------------
# Who listens
# ----------------------------------------------------------------------------------------------
class Reporter(Protocol):
    """What a training loop needs from a job context (``studio.jobs.JobContext`` is one)."""

    def check(self) -> None: ...
    def progress(self, done: float, total: float | None = None, message: str = "") -> None: ...
    def metric(self, name: str, step: float, value: float) -> None: ...
    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None: ...
    def log(self, text: str, level: str = "info") -> None: ...
    def warn(self, text: str) -> None: ...
    def truncate_metrics(self, after_step: float) -> None: ...


class QuietReporter:
    """A reporter for benches, tests and scripts: keeps what it is told, never shows it.

    Args:
        cancel: an event that, once set, makes :meth:`check` raise :class:`Cancelled`.
        echo: called with each log line (``print`` to see them).
        cancel_after: raise :class:`Cancelled` at this many calls of :meth:`check` (tests of
            Stop at an exact step).
    """

    def __init__(self, cancel: threading.Event | None = None,
                 echo: Callable[[str], None] | None = None,
                 cancel_after: int | None = None) -> None:
        self.cancel = cancel or threading.Event()
        self.echo = echo
        self.cancel_after = cancel_after
        self.checks = 0
        self.history: dict[str, list[tuple[float, float]]] = {}
        self.previews: list[tuple[str, Any, dict[str, Any]]] = []
        self.logs: list[tuple[str, str]] = []
        self.last_progress: tuple[float, float | None, str] = (0.0, None, "")

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check(self) -> None:
        self.checks += 1
        if self.cancel_after is not None and self.checks > self.cancel_after:
            self.cancel.set()
        if self.cancel.is_set():
            raise Cancelled()

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        self.last_progress = (done, total, message)

    def metric(self, name: str, step: float, value: float) -> None:
        self.history.setdefault(name, []).append((float(step), float(value)))

    def metrics(self, step: float, **values: float) -> None:
        for name, value in values.items():
            self.metric(name, step, value)

    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None:
        self.previews.append((kind, payload, extra))

    def log(self, text: str, level: str = "info") -> None:
        self.logs.append((level, text))
        if self.echo is not None:
            self.echo(text if level == "info" else f"{level}: {text}")

    def warn(self, text: str) -> None:
        self.log(text, "warning")

    def truncate_metrics(self, after_step: float) -> None:
        for name, points in self.history.items():
            self.history[name] = [(s, v) for s, v in points if s <= after_step]

    def add_artifact(self, *args: Any, **kwargs: Any) -> None:
        return None

    def record_data(self, *args: Any, **kwargs: Any) -> None:
        return None


# ----------------------------------------------------------------------------------------------
# What varies: the task
# ----------------------------------------------------------------------------------------------
@runtime_checkable
class TrainTask(Protocol):
    """One model's training, seen by the loop.

    Required: :meth:`train_step`, :meth:`state_dict`, :meth:`load_state_dict`. Optional (looked
    up by name): ``evaluate(state) -> {metric: value}``, ``preview(state)`` (sends its own
    previews), ``export(state, reason)`` (writes the usable model; reason is "checkpoint",
    "stopped", "end"), ``on_best(state)`` (a new best evaluation), ``log_values(state) ->
    {metric: value}`` (instantaneous values logged with the averages: learning rate, speed) and
    ``message(state, stats) -> str`` (the progress line).
    """

    def train_step(self, state: LoopState) -> Mapping[str, Any]:
        """One optimisation step; returns its statistics (floats, or 0-d tensors the loop
        averages without synchronising the device every step)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`'s output (the loop's own keys are also present
        and must be ignored)."""
        ...


@dataclass
class Schedule:
    """When the loop does what (steps unless said otherwise; 0 means never)."""

    steps: int  # total steps to reach (a resumed run continues up to this)
    max_seconds: float | None = None  # total training time over all sessions
    log_every: int = 10
    min_log_interval: float = 0.0  # seconds: a fast GPU logs less often than every log_every
    eval_every: int = 0
    preview_every: int = 0
    min_preview_interval: float = 0.0  # seconds: nobody watches more than one preview a second
    checkpoint_every: int = 0
    # also checkpoint when this much time passed since the last one: a run killed hard (power
    # cut, kill -9) loses at most these minutes, whatever its step cadence
    checkpoint_minutes: float = 5.0
    best: str = ""  # the evaluation metric to keep the best model by ("" : none)
    best_mode: Literal["min", "max"] = "min"
    patience: int = 0  # evaluations without improvement before stopping early (0: never)
    eval_at_end: bool = True
    preview_at_end: bool = True
    preview_on_checkpoint: bool = False  # a checkpoint also previews (the GAN's sample grid)

    def validate(self) -> None:
        if self.steps < 1:
            raise UserError("the number of training steps must be at least 1")
        for name in ("log_every", "eval_every", "preview_every", "checkpoint_every", "patience"):
            if getattr(self, name) < 0:
                raise UserError(f"{name.replace('_', ' ')} cannot be negative")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UserError("the time budget must be positive")


@dataclass
class LoopState:
    """Where the run is; tasks read it (learning-rate schedules use :attr:`fraction`)."""

    steps: int
    step: int = 0
    elapsed: float = 0.0  # training seconds, over every session of the run
    horizon: int = 0  # the step the run is expected to end at (fewer under a time budget)
    best_value: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)
    last_eval_step: int = -1
    eval_pending: bool = False  # Stop landed inside an evaluation: resume does it first
    acc: dict[str, float] = field(default_factory=dict)  # metric sums of the current window
    acc_n: int = 0
    sessions: int = 1

    @property
    def fraction(self) -> float:
        """How far through the run, 0 to 1 (steps, or time under a budget)."""
        return min(1.0, self.step / max(1, self.horizon or self.steps))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], steps: int) -> LoopState:
        known = set(cls.__dataclass_fields__)
        st = cls(**{k: v for k, v in data.items() if k in known})
        st.steps = steps
        return st


@dataclass
class Outcome:
    step: int
    reason: Literal["done", "time", "early", "already"]
    elapsed: float
    best_step: int | None
    best_value: float | None
    last_eval: dict[str, float]


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
class TrainLoop:
    """Runs a :class:`TrainTask` by a :class:`Schedule`, checkpointing to ``checkpoint``.

    Args:
        task: the model's training.
        schedule: budgets and cadences.
        reporter: a job context or :class:`QuietReporter`.
        checkpoint: the resumable state's file (None: no checkpoints, no resume).
    """

    def __init__(self, task: Any, schedule: Schedule, reporter: Reporter,
                 checkpoint: Path | None = None) -> None:
        schedule.validate()
        self.task = task
        self.schedule = schedule
        self.rep = reporter
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.state = LoopState(steps=schedule.steps, horizon=schedule.steps)
        self._step_times: deque[float] = deque(maxlen=50)  # for the horizon estimate
        self._tnames: tuple[str, ...] = ()  # the running sums of tensor statistics, as one
        self._tacc: Any = None  # device vector: one in-place add a step, no synchronisation
        self._last_ckpt_time = time.monotonic()
        self._last_preview, self._last_preview_step = -math.inf, -1
        self._rng_before_eval: dict[str, Any] | None = None
        #: the torchrun job this loop is one rank of (None: training alone)
        self.dist = distributed.current()
        self._stop_agreed = False

    # -- checkpoints ----------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        return self.checkpoint is not None and self.checkpoint.exists()

    def save(self, rng: Mapping[str, Any] | None = None, *, together: bool = True
             ) -> Path | None:
        """Write the resumable state (task, loop, global random generators) atomically.
        Under torchrun only rank 0 writes, between barriers (``together=False``: no barrier,
        after an error when the other ranks may not come)."""
        if self.checkpoint is None:
            return None
        self._flush_partial_window()
        if self.dist is not None:
            path = self.checkpoint if self.dist.is_main else None
            if together:
                self.dist.barrier()
            if self.dist.is_main:
                self._write_checkpoint(rng)
            if together:
                self.dist.barrier()
            self._last_ckpt_time = time.monotonic()
            return path
        return self._write_checkpoint(rng)

    def _write_checkpoint(self, rng: Mapping[str, Any] | None) -> Path:
        assert self.checkpoint is not None
        st = self.task.state_dict()
        st[LOOP_KEY] = self.state.to_json()
        st[RNG_KEY] = dict(rng) if rng is not None else storage.capture_rng()
        path = storage.save_state(self.checkpoint, st)
        self._last_ckpt_time = time.monotonic()
        return path

    def resume(self) -> int:
        """Continue from the checkpoint: the task's and loop's state and the random generators
        come back, and the run's metrics are cut back to the checkpoint's step. Returns the
        step. Raises :class:`UserError` when there is nothing (readable) to resume."""
        if not self.has_checkpoint():
            raise UserError(f"nothing to resume in {self.checkpoint.parent if self.checkpoint else 'this run'}: "  # noqa: E501
                            "it has no checkpoint. Start a new run instead (without Resume).")
        assert self.checkpoint is not None
        try:
            st = storage.load_state(self.checkpoint, device="cpu")
        except storage.CorruptFileError as exc:
            raise UserError(f"the checkpoint {self.checkpoint.name} cannot be read ({exc}); "
                            "start a new run or restore the file") from None
        self.task.load_state_dict(st)
        loop = st.get(LOOP_KEY)
        if isinstance(loop, Mapping):
            self.state = LoopState.from_json(loop, self.schedule.steps)
            self.state.sessions += 1
        else:  # written before the shared loop: the task's own step and time
            self.state = LoopState(steps=self.schedule.steps, step=int(st.get("step", 0)),
                                   elapsed=float(st.get("elapsed", 0.0) or 0.0),
                                   horizon=self.schedule.steps, sessions=2)
        if self.schedule.max_seconds is None or not self.state.horizon:
            self.state.horizon = self.schedule.steps
        rng = st.get(RNG_KEY, st.get("rng"))
        if isinstance(rng, Mapping):
            storage.restore_rng(rng)
        truncate = getattr(self.rep, "truncate_metrics", None)
        if callable(truncate):
            truncate(self.state.step)
        return self.state.step

    # -- running --------------------------------------------------------------------------------
    def run(self) -> Outcome:
        """Train until the step or time budget, an early stop, or Stop (:class:`Cancelled`
        propagates after a checkpoint)."""
        sch, st, task = self.schedule, self.state, self.task
        if st.step >= sch.steps:
            self.rep.log(f"already at step {st.step} of {sch.steps}: raise the number of steps "
                         "to train further")
            return Outcome(st.step, "already", st.elapsed, st.best_step, st.best_value,
                           st.last_eval)
        start_step = st.step
        t_session = time.monotonic()
        elapsed_before = st.elapsed
        last_log = -math.inf
        self._last_preview, self._last_preview_step = -math.inf, -1
        reason: Literal["done", "time", "early"] = "done"
        in_step = False
        self.rep.progress(st.step, st.horizon, "training")
        try:
            # Stop landed inside this step's evaluation: do what the step still owed first
            if (st.eval_pending and st.step < st.horizon
                    and self._after_step(time.monotonic(), final=False)):
                reason = "early"
            while st.step < st.horizon and reason != "early":
                self._check()
                if sch.max_seconds is not None and st.elapsed >= sch.max_seconds:
                    reason = "time"
                    break
                t0 = time.monotonic()
                in_step = True
                stats = task.train_step(st)
                in_step = False
                st.step += 1
                now = time.monotonic()
                st.elapsed = elapsed_before + (now - t_session)
                self._step_times.append(now - t0)
                self._accumulate(stats)
                self._update_horizon()
                clock = (now - last_log >= sch.min_log_interval,
                         bool(sch.checkpoint_minutes
                              and now - self._last_ckpt_time >= sch.checkpoint_minutes * 60),
                         now - self._last_preview >= sch.min_preview_interval)
                if self.dist is not None:
                    clock = self._agree(clock)
                final = st.step >= st.horizon
                if (st.step % max(1, sch.log_every) == 0 and clock[0]) or final:
                    last_log = now
                    self._log()
                self.rep.progress(st.step, st.horizon, self._message(stats))
                if self._after_step(now, final, clock[1], clock[2]):
                    reason = "early"
                    break
        except Cancelled:
            if st.step > 0 and self.checkpoint is not None:
                # inside an evaluation: keep the generators as they were before it, so the
                # resumed run evaluates from the same state the uninterrupted one did
                self.save(rng=self._rng_before_eval if st.eval_pending else None)
                self._main_call("export", "stopped")
                self.rep.log(f"Stopped at step {st.step}; checkpoint saved (Resume continues "
                             "from here).")
            raise
        except BaseException:
            if not in_step and st.step > start_step and self.checkpoint is not None:
                try:  # the state after the last completed step is consistent: keep it
                    self.save(together=False)
                    self.rep.log(f"checkpoint saved at step {st.step} before the error")
                except Exception as exc:  # the original error matters more
                    self.rep.log(f"could not save a checkpoint after the error: {exc}",
                                 "warning")
            raise
        if reason == "done" and sch.max_seconds is not None and st.step < sch.steps:
            reason = "time"
        if reason == "time":
            self.rep.log(f"Time budget reached at step {st.step} "
                         f"({st.elapsed / 60:.1f} min of training).")
        if st.acc_n:
            self._log()
        if sch.eval_at_end and st.last_eval_step != st.step and self._has("evaluate"):
            self._evaluate(final=True)
        if sch.preview_at_end and self._last_preview_step != st.step:
            self._main_call("preview")
        self.save()
        self._main_call("export", "end")
        self.rep.progress(st.step, st.step, "done")
        return Outcome(st.step, reason, st.elapsed, st.best_step, st.best_value, st.last_eval)

    def _after_step(self, now: float, final: bool, checkpoint_time: bool | None = None,
                    preview_time: bool | None = None) -> bool:
        """What a step owes after it is taken: evaluation, preview, checkpoint, each on its
        cadence (the last step's are done by ``run``'s ending). True: stop early.
        ``checkpoint_time`` / ``preview_time``: what the clock says (rank 0's under torchrun;
        None: read it here)."""
        sch, st = self.schedule, self.state
        if final:
            return False
        if sch.eval_every and st.step % sch.eval_every == 0 and self._evaluate():
            return True
        if checkpoint_time is None:
            checkpoint_time = bool(sch.checkpoint_minutes and now - self._last_ckpt_time
                                   >= sch.checkpoint_minutes * 60)
        if preview_time is None:
            preview_time = now - self._last_preview >= sch.min_preview_interval
        checkpoint_due = bool((sch.checkpoint_every and st.step % sch.checkpoint_every == 0)
                              or checkpoint_time)
        preview_due = bool(
            (sch.preview_every and st.step % sch.preview_every == 0 and preview_time)
            or (checkpoint_due and sch.preview_on_checkpoint))
        if preview_due:
            self._last_preview, self._last_preview_step = now, st.step
            self._main_call("preview")
        if checkpoint_due:
            self.save()
            self._main_call("export", "checkpoint")
        return False

    # -- torchrun -------------------------------------------------------------------------------
    def _check(self) -> None:
        """Stop here? Alone: the reporter says. Under torchrun: only where every rank agreed
        (a rank that stopped on its own would leave the others waiting in a collective)."""
        if self.dist is None:
            self.rep.check()
        elif self._stop_agreed:
            raise Cancelled()

    def _agree(self, clock: tuple[bool, bool, bool]) -> tuple[bool, bool, bool]:
        """Once a step under torchrun: a Stop on any rank, and rank 0's clock (elapsed time,
        horizon, log / checkpoint / preview timing) for every rank."""
        assert self.dist is not None
        st = self.state
        local_stop = distributed.stop_requested() or bool(getattr(self.rep, "cancelled", False))
        stop, vals = self.dist.agree(local_stop, [st.elapsed, float(st.horizon),
                                                  *(1.0 if c else 0.0 for c in clock)])
        self._stop_agreed = stop
        st.elapsed, st.horizon = vals[0], int(round(vals[1]))
        return vals[2] > 0.5, vals[3] > 0.5, vals[4] > 0.5

    def _main_call(self, name: str, *args: Any) -> Any:
        """A task hook that writes or shows (preview, export): rank 0's alone."""
        if self.dist is not None and not self.dist.is_main:
            return None
        return self._call(name, *args)

    # -- pieces ---------------------------------------------------------------------------------
    def _has(self, name: str) -> bool:
        return callable(getattr(self.task, name, None))

    def _call(self, name: str, *args: Any) -> Any:
        fn = getattr(self.task, name, None)
        return fn(self.state, *args) if callable(fn) else None

    def _accumulate(self, stats: Mapping[str, Any]) -> None:
        """Add a step's statistics to the window's sums. Device tensors are summed on the
        device, all of them in one in-place add (a GAN's five statistics cost one kernel, and
        the device is only waited for when the window is logged)."""
        st = self.state
        values = list(stats.values())
        if values and all(hasattr(v, "detach") for v in values):
            import torch

            names = tuple(stats)
            if names != self._tnames:
                self._fold()
                self._tnames = names
            vec = torch.stack([v.detach().reshape(()).float() for v in values])
            if self._tacc is None:  # partial sums from a checkpoint continue in float32
                base = [st.acc.pop(k, 0.0) for k in names]
                self._tacc = torch.tensor(base, dtype=torch.float32, device=vec.device) + vec
            else:
                self._tacc.add_(vec)
        else:
            for k, v in stats.items():
                st.acc[k] = st.acc.get(k, 0.0) + float(v)
        st.acc_n += 1

    def _fold(self) -> None:
        """Move the device sums into the state's floats (one synchronisation)."""
        if self._tacc is not None:
            for k, v in zip(self._tnames, self._tacc.tolist(), strict=True):
                self.state.acc[k] = self.state.acc.get(k, 0.0) + v
            self._tacc = None

    def _flush_partial_window(self) -> None:
        """The running sums as floats (for the checkpoint)."""
        self._fold()

    def _log(self) -> None:
        self._fold()
        st = self.state
        n = max(1, st.acc_n)
        values = {name: float(total) / n for name, total in st.acc.items()}
        if self.dist is not None:  # every rank's window, averaged: the global batch's values
            values = self.dist.mean(values)
        for name, value in values.items():
            self.rep.metric(name, st.step, value)
        st.acc, st.acc_n = {}, 0
        extra = self._call("log_values")
        for name, value in (extra or {}).items():
            self.rep.metric(name, st.step, float(value))

    def _message(self, stats: Mapping[str, Any]) -> str:
        fn = getattr(self.task, "message", None)
        if callable(fn):
            return str(fn(self.state, stats))
        return f"step {self.state.step:,} of {self.state.horizon:,}"

    def _evaluate(self, final: bool = False) -> bool:
        """Evaluate, log, track the best; True when patience ran out (stop early)."""
        st, sch = self.state, self.schedule
        if self.checkpoint is not None:
            self._rng_before_eval = storage.capture_rng()
        st.eval_pending = True
        if self.dist is None:
            results = self._call("evaluate")
        else:  # rank 0 evaluates; every rank takes the same keep-best / early-stop branch
            results = self.dist.broadcast_json(
                {k: float(v) for k, v in (self._main_call("evaluate") or {}).items()})
        st.eval_pending = False
        st.last_eval_step = st.step
        if not results:
            return False
        st.last_eval = {k: float(v) for k, v in results.items()}
        for name, value in st.last_eval.items():
            self.rep.metric(name, st.step, value)
        if not sch.best or sch.best not in st.last_eval:
            return False
        value = st.last_eval[sch.best]
        better = (st.best_value is None
                  or (value < st.best_value - 1e-12 if sch.best_mode == "min"
                      else value > st.best_value + 1e-12))
        if better:
            st.best_value, st.best_step, st.bad_evals = value, st.step, 0
            self._call("on_best")
            return False
        st.bad_evals += 1
        if not final and sch.patience and st.bad_evals >= sch.patience:
            self.rep.log(f"Stopped early at step {st.step}: {sch.best} has not improved for "
                         f"{st.bad_evals} evaluations (best {st.best_value:.4g} at step "
                         f"{st.best_step}).")
            return True
        return False

    def _update_horizon(self) -> None:
        """With a time budget, the final step is estimated from the recent step time (every 25
        steps until 80% of the way, then frozen so the end of a schedule is not chased).
        Running out of time always ends the run."""
        st, sch = self.state, self.schedule
        if sch.max_seconds is None:
            return
        if st.elapsed >= sch.max_seconds:
            st.horizon = st.step
            return
        if st.step < 10 or st.step % 25 or st.step > 0.8 * st.horizon:
            return
        recent = sorted(self._step_times)
        per_step = recent[len(recent) // 2] * 1.05  # a little slack for evals and previews
        left = int((sch.max_seconds - st.elapsed) / max(per_step, 1e-6))
        st.horizon = max(st.step + 1, min(sch.steps, st.step + left))


# ----------------------------------------------------------------------------------------------
# Helpers the jobs share
# ----------------------------------------------------------------------------------------------
def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was written at, from its header only (no tensor is read); None
    when there is no readable checkpoint. Reads the shared loop's checkpoints and older ones."""
    if not Path(path).is_file():
        return None
    for key in (f"{LOOP_KEY}.step", "step"):
        try:
            return int(storage.state_field(path, key))
        except (storage.CorruptFileError, OSError, TypeError, ValueError):
            continue
    return None


def refuse_to_overwrite(run_dir: Path, checkpoint: Path, resume: bool, what: str) -> None:
    """A new run must not start over a folder that holds one: say how to continue it."""
    if not resume and checkpoint.exists():
        raise UserError(f"{run_dir.name} already holds a {what} run: tick Resume (--resume) to "
                        "continue it, or choose a new output folder")
