"""The thread governor (studio.threads): torch's threads follow the CPU others leave free."""

from __future__ import annotations

import sys
import threading

import pytest

from studio.threads import ThreadGovernor, read_cpu


class Machine:
    """A fake clock and /proc: ``others`` cores busy besides our ``own`` cores."""

    def __init__(self) -> None:
        self.t, self.busy, self.mine = 0.0, 0.0, 0.0
        self.others, self.own = 0.0, 2.0

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.busy += (self.others + self.own) * seconds
        self.mine += self.own * seconds


def test_a_busy_neighbour_takes_a_thread_and_a_quiet_machine_gives_it_back() -> None:
    m = Machine()
    applied: list[int] = []
    gov = ThreadGovernor(2, cores=2, read=lambda: (m.busy, m.mine), clock=lambda: m.t,
                         apply=applied.append)
    for _ in range(5):  # quiet: nothing changes
        m.advance(1.0)
        gov.tick()
    assert applied == [] and gov.threads == 2
    m.others = 1.0  # a browser tab spinning, a DAW rendering
    m.advance(1.0)
    gov.tick()
    assert applied == []  # one reading is not enough (a short burst)
    m.advance(1.0)
    gov.tick()
    assert applied == [1] and gov.threads == 1
    m.others, m.own = 0.1, 1.0
    for _ in range(3):
        m.advance(1.0)
        gov.tick()
    assert applied == [1, 2]
    m.others = 1.0
    m.advance(1.0)
    gov.tick()
    m.advance(0.2)  # ticks between readings measure nothing
    gov.tick()
    assert applied == [1, 2]
    m.advance(1.0)
    gov.tick()
    assert applied == [1, 2, 1]
    gov.restore()
    assert applied == [1, 2, 1, 2]


def test_threads_for_the_free_cores() -> None:
    gov = ThreadGovernor(8, cores=8, read=lambda: None)
    assert gov.threads_for(0.0) == 8 and gov.threads_for(0.3) == 8
    assert gov.threads_for(2.0) == 6 and gov.threads_for(7.9) == 1 and gov.threads_for(20) == 1
    gov.tick()  # no /proc: nothing happens
    assert gov.threads == 8


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_real_readings_see_this_process_working() -> None:
    first = read_cpu()
    assert first is not None
    x = 0
    for i in range(3_000_000):
        x += i
    second = read_cpu()
    assert second is not None and second[1] > first[1] and second[0] >= first[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_job_thread_puts_the_thread_count_back(tmp_path) -> None:
    """The count a governor set outlives the job's thread: the runner restores it."""
    import torch

    from studio.jobs import JobRunner
    from studio.plugin import JobSpec
    from studio.settings import Settings

    before = torch.get_num_threads()
    seen = []

    def job(ctx):
        ctx.check()
        if ctx._governor is not None:
            ctx._governor.threads = 1  # as after a busy spell
            torch.set_num_threads(1)
        seen.append(threading.current_thread().name)

    runner = JobRunner(None, settings=Settings(workspace=str(tmp_path)))
    rec = runner.submit("demo", JobSpec("j", "x:y", "J"), {}, func=job)
    runner.wait(rec.id, timeout=30)
    runner.shutdown()
    assert seen and torch.get_num_threads() == before


def test_one_long_reading_is_enough() -> None:
    """A step slowed to seconds by the collapse: acted on at its first check, not after two
    more such steps (a writer step took 17 s beside one busy process)."""
    m = Machine()
    applied: list[int] = []
    gov = ThreadGovernor(2, cores=2, read=lambda: (m.busy, m.mine), clock=lambda: m.t,
                         apply=applied.append)
    gov.tick()
    m.others = 1.0
    m.advance(17.0)
    gov.tick()
    assert applied == [1]


def test_the_first_step_already_fits_beside_a_neighbour_busy_before_the_job() -> None:
    """A reading from the job's start lets the first check choose: a writer's first step at
    two threads beside two busy programs took longer than a short run (0.06 steps/s)."""
    m = Machine()
    m.others, m.own = 2.0, 0.3  # two busy programs while the job reads its data
    start = (m.t, (m.busy, m.mine))
    m.advance(0.5)
    applied: list[int] = []
    gov = ThreadGovernor(2, cores=2, read=lambda: (m.busy, m.mine), clock=lambda: m.t,
                         apply=applied.append, since=start)
    gov.tick()
    assert applied == [1]  # at once, from the one reading since the start
    m.others, m.own = 0.0, 1.0
    m.advance(1.0)
    gov.tick()
    assert applied == [1]  # afterwards two readings again (a burst does not flip it)
    m.advance(1.0)
    gov.tick()
    assert applied == [1, 2]
