"""A tiny plugin exercising every event a job can send; no torch needed."""

from __future__ import annotations

import math
import time
from typing import Literal

from studio.errors import UserError
from studio.plugin import JobSpec, Plugin
from studio.storage import atomic_write_json


def count(ctx, steps: int = 20, delay: float = 0.0,
          shape: Literal["sine", "ramp"] = "sine") -> str:
    """Count to ``steps``, logging a curve, writing config.json into the run folder.

    Args:
        steps: how many steps to take
        delay: seconds to sleep per step
        shape: which curve to log
    """
    atomic_write_json(ctx.run_dir / "config.json", {"steps": steps, "shape": shape})
    ctx.add_dataset("/nonexistent/data", files=0)
    for i in range(1, steps + 1):
        ctx.check()
        value = math.sin(i / 3) if shape == "sine" else float(i)
        ctx.metrics(i, **{"loss/a": value, "loss/b": -value, "lr": 0.1})
        ctx.progress(i, steps, f"step {i}")
        if i % 5 == 0:
            ctx.preview("text", f"chunk {i}", replace=False)
        if delay:
            ctx.sleep(delay)
    ctx.log("counted")
    return str(ctx.run_dir)


def slow(ctx, seconds: float = 30.0) -> str:
    """Busy-loop (like a training step) until cancelled or done."""
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        ctx.check()
        x = 0.0
        for k in range(20000):
            x += k * 0.5
        i += 1
        ctx.progress(time.monotonic() - t0, seconds)
    return f"looped {i}"


def fail(ctx, kind: Literal["crash", "user"] = "crash") -> None:
    """Fail on purpose."""
    ctx.progress(1, 2)
    if kind == "user":
        raise UserError("the folder /nowhere is empty: add some images")
    raise ZeroDivisionError("division by zero in step 1")


def echo(ctx, text: str, times: int = 1) -> str:
    """Return ``text`` repeated (an interactive-lane job)."""
    return text * times


class DemoPlugin(Plugin):
    id = "demo"
    name = "Demo"
    description = "Test plugin."
    order = 1
    jobs = (
        JobSpec("count", "studio_testplugins.demo:count", "Count", makes_run=True),
        JobSpec("slow", "studio_testplugins.demo:slow", "Slow loop"),
        JobSpec("fail", "studio_testplugins.demo:fail", "Fail"),
        JobSpec("echo", "studio_testplugins.demo:echo", "Echo", lane="interactive"),
    )
