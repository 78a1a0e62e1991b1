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
    """True at most every ``interval`` seconds (and always when ``force``), and rarer still when
    building a preview is dear: after :meth:`spent` reports what the last one cost, the next
    waits until that cost is at most ``budget`` of the time in between.

    The window shows previews at up to 20 Hz; more would be work nobody sees. The budget keeps
    sampling speed within a few percent of a bare pipeline (bench/diffusion_speed.py): on a
    small pixel model a 16-image preview grid costs about a tenth of a denoising step.
    """

    def __init__(self, interval: float = 0.05, budget: float = 0.02) -> None:
        self.interval = interval
        self.budget = budget
        self._last = -1e9
        self._wait = interval

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self._wait:
            self._last = now
            return True
        return False

    def spent(self, seconds: float) -> None:
        """The preview just built took ``seconds``; space the next one accordingly."""
        self._wait = max(self.interval, seconds / self.budget)
