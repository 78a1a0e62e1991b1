"""What the engine needs from a job context, and a throttle for previews.

``studio.jobs.JobContext`` satisfies :class:`Reporter`; tests and benches may pass anything with
the same methods. The engine never needs the host beyond this.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class Reporter(Protocol):
    def check(self) -> None: ...
    def progress(self, done: float, total: float | None = None, message: str = "") -> None: ...
    def metric(self, name: str, step: float, value: float) -> None: ...
    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None: ...
    def log(self, text: str, level: str = "info") -> None: ...
    def warn(self, text: str) -> None: ...


class Throttle:
    """True at most every ``interval`` seconds (and always when ``force``). The window shows
    previews at 20 Hz; building more than that per second would be work nobody sees."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._last = -1e9

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            return True
        return False
