"""How engine loops report progress and learn they should stop, without knowing who listens.

A studio :class:`~studio.jobs.JobContext` already has exactly these methods, so a job passes its
``ctx`` straight through; scripts, benches and tests use :class:`NullReporter` (optionally with a
``threading.Event`` to cancel, or a ``print`` for logs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from studio.errors import Cancelled


class Reporter(Protocol):
    """The subset of ``JobContext`` the engine uses."""

    def check(self) -> None: ...

    def progress(self, done: float, total: float | None = None, message: str = "") -> None: ...

    def metric(self, name: str, step: float, value: float) -> None: ...

    def log(self, text: str, level: str = "info") -> None: ...

    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None: ...


class NullReporter:
    """A reporter for code running outside the studio.

    Args:
        cancel: an event that, once set, makes :meth:`check` raise :class:`Cancelled`.
        on_log: called with each log line (e.g. ``print``), else logs are dropped.
        on_metric: called as ``on_metric(name, step, value)``.
    """

    def __init__(self, cancel: threading.Event | None = None,
                 on_log: Callable[[str], None] | None = None,
                 on_metric: Callable[[str, float, float], None] | None = None) -> None:
        self.cancel = cancel or threading.Event()
        self.on_log = on_log
        self.on_metric = on_metric
        self.metrics_seen: dict[str, list[tuple[float, float]]] = {}

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        pass

    def metric(self, name: str, step: float, value: float) -> None:
        self.metrics_seen.setdefault(name, []).append((float(step), float(value)))
        if self.on_metric is not None:
            self.on_metric(name, step, value)

    def log(self, text: str, level: str = "info") -> None:
        if self.on_log is not None:
            self.on_log(text if level == "info" else f"{level}: {text}")

    def warn(self, text: str) -> None:
        self.log(text, "warning")

    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None:
        pass
