"""A tiny plugin exercising every event a job can send; no torch needed."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from studio.errors import UserError
from studio.manifest import Example
from studio.params import Choices, Help, Range
from studio.plugin import JobSpec, Plugin
from studio.storage import atomic_write_json


@dataclass(kw_only=True)
class CountParams:
    steps: Annotated[int, Range(1, 100_000), Help("how many steps to take")] = 20
    delay: Annotated[float, Range(0, 60), Help("seconds to sleep per step")] = 0.0
    shape: Annotated[Literal["sine", "ramp"], Choices(sine="Sine wave", ramp="Ramp"),
                     Help("which curve to log")] = "sine"
    resume: Annotated[bool, Help("continue the run in the output folder")] = False
    warn: Annotated[str, Help("a warning to give at the start")] = ""


def count(ctx, p: CountParams) -> str:
    """Count to ``steps``, logging a curve, writing config.json into the run folder."""
    atomic_write_json(ctx.run_dir / "config.json", {"steps": p.steps, "shape": p.shape})
    examples = [Example(f"item{i}.txt", f"{i:064x}") for i in range(10)]
    ctx.record_data("numbers", "/nonexistent/data", examples,
                    held_out=[e.id for e in examples[8:]])
    steps = p.steps
    if p.warn:
        ctx.warn(p.warn)
    for i in range(1, steps + 1):
        ctx.check()
        value = math.sin(i / 3) if p.shape == "sine" else float(i)
        ctx.metrics(i, **{"loss/a": value, "loss/b": -value, "lr": 0.1})
        ctx.progress(i, steps, f"step {i}")
        if i % 5 == 0:
            ctx.preview("text", f"chunk {i}", replace=False)
        if p.delay:
            ctx.sleep(p.delay)
    ctx.log("counted")
    return str(ctx.run_dir)


@dataclass(kw_only=True)
class SlowParams:
    seconds: Annotated[float, Range(0, 3600), Help("how long to loop")] = 30.0


def slow(ctx, p: SlowParams) -> str:
    """Busy-loop (like a training step) until cancelled or done."""
    seconds = p.seconds
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


@dataclass(kw_only=True)
class FailParams:
    kind: Literal["crash", "user"] = "crash"


def fail(ctx, p: FailParams) -> None:
    """Fail on purpose."""
    ctx.progress(1, 2)
    if p.kind == "user":
        raise UserError("the folder /nowhere is empty: add some images")
    raise ZeroDivisionError("division by zero in step 1")


@dataclass(kw_only=True)
class EchoParams:
    text: Annotated[str, Help("what to say")]
    times: Annotated[int, Range(1, 100)] = 1


def echo(ctx, p: EchoParams) -> str:
    """Return ``text`` repeated (an interactive-lane job)."""
    return p.text * p.times


@dataclass(kw_only=True)
class OuterParams:
    steps: Annotated[int, Range(1, 1000)] = 5
    delay: Annotated[float, Range(0, 60)] = 0.0


def outer(ctx, p: OuterParams) -> str:
    """Run ``count`` twice inside this job (as the audit trains reference models)."""
    results = []
    for i in range(2):
        ctx.progress(i, 2, f"inner run {i + 1}")
        results.append(ctx.run_job("demo", "count", CountParams(steps=p.steps, delay=p.delay),
                                   out=ctx.run_dir / f"inner{i}", label=f"Reference {i + 1}"))
    return ",".join(str(r) for r in results)


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
        JobSpec("outer", "studio_testplugins.demo:outer", "Outer", makes_run=True),
    )
