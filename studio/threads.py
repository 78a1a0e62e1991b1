"""Training that degrades gracefully on a busy desktop: torch's CPU threads follow the CPU that
other programs leave free.

Why: torch's OpenMP threads spin at every barrier waiting for their partners. When another
program takes a core, the partner thread is descheduled and the spinning thread burns its time
slice waiting: one busy neighbour made a 2-thread training loop 17 to 60 times slower, far below
its fair share of the CPU (issue 17). A passive wait policy avoids the collapse but halves the
speed on a quiet machine, and it can only be chosen before torch loads.

So the thread count adapts instead, while a job runs: :class:`ThreadGovernor` measures, about
once a second, how much CPU the *other* processes use (``/proc/stat`` minus this process's own
time) and, when they use more than the cores our threads could share without waiting, lowers
torch's intra-op threads to the cores left free (at least one: one thread has no barrier to
spin at); when the machine is quiet again it goes back up. A change needs two readings in a row,
or one reading over at least two intervals (a short burst, such as a page load, does not flip
it; a step slowed to seconds by the collapse is acted on at once). Quiet machine: nothing
changes.

``torch.set_num_threads`` sets the calling thread's OpenMP team size, so :meth:`tick` runs on
the job's own thread: :class:`~studio.jobs.JobContext.check` calls it, which every trainer does
once a step. Linux only (``/proc``); elsewhere the governor does nothing. ``STUDIO_ADAPT_THREADS=0``
turns it off (the contention bench compares both).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

Reading = tuple[float, float]  # (CPU seconds of every process, CPU seconds of this process)


def read_cpu() -> Reading | None:
    """Busy CPU seconds of the whole machine and of this process, or None without /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
        with open("/proc/self/stat", encoding="ascii") as fh:
            own = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, *rest = (int(v) for v in fields[:10])
    steal = rest[0] if rest else 0
    busy = (user + nice + system + irq + softirq + steal) / ticks
    mine = (int(own[11]) + int(own[12])) / ticks  # utime, stime (fields 14 and 15)
    return busy, mine


def enabled() -> bool:
    return os.environ.get("STUDIO_ADAPT_THREADS", "1") not in ("0", "off", "no")


class ThreadGovernor:
    """Keeps torch's intra-op threads within the cores other processes leave free."""

    def __init__(self, max_threads: int, cores: int | None = None, interval: float = 1.0,
                 read: Callable[[], Reading | None] = read_cpu,
                 clock: Callable[[], float] = time.monotonic,
                 apply: Callable[[int], None] | None = None,
                 since: tuple[float, Reading] | None = None) -> None:
        self.max_threads = max(1, int(max_threads))
        self.cores = cores or os.cpu_count() or 1
        self.interval = interval
        self._read, self._clock = read, clock
        self._apply = apply or _set_torch_threads
        self.threads = self.max_threads
        # ``since``: a reading taken when the job started (its clock time and the reading), so
        # the first step already runs at the right count: one step at the wrong one beside a
        # busy neighbour can take longer than a short job (a writer step took 17 s)
        self._last: tuple[float, Reading] | None = since
        self._first = since is not None
        self._wanted: int | None = None  # a change seen once, waiting for a second reading
        self.changes: list[tuple[float, int, float]] = []  # (time, threads, others' cores)

    def tick(self) -> None:
        """Measure (at most once per ``interval``) and adapt. Call on the job's thread."""
        now = self._clock()
        if self._last is not None and now - self._last[0] < (0.2 if self._first else
                                                             self.interval):
            return
        reading = self._read()
        if reading is None:
            return
        last, self._last = self._last, (now, reading)
        if last is None:
            return
        wall = now - last[0]
        others = max(0.0, ((reading[0] - last[1][0]) - (reading[1] - last[1][1])) / wall)
        want = self.threads_for(others)
        first, self._first = self._first, False
        if want == self.threads:
            self._wanted = None
        elif self._wanted == want or wall >= 2 * self.interval or (first and wall >= 0.2):
            # seen twice, or over a long reading (a step that took seconds: a burst does not
            # last that long), or the first reading since the job started
            self._wanted = None
            self.threads = want
            self._apply(want)
            self.changes.append((now, want, others))
        else:
            self._wanted = want

    def restore(self) -> None:
        """Back to the full count (at the end of a job: torch keeps the last setting for the
        threads it starts later)."""
        if self.threads != self.max_threads:
            self.threads = self.max_threads
            self._apply(self.max_threads)

    def threads_for(self, others: float) -> int:
        """Threads that fit beside ``others`` cores of other work: the free cores, rounded
        to the nearest (a neighbour at 0.3 of a core leaves room), between 1 and the max."""
        free = self.cores - others
        return max(1, min(self.max_threads, int(free + 0.5)))


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
