"""What the shared training loop costs per step, against a bare ``for`` loop.

The same task (an MLP regression step returning five statistics, as the GAN's does:
``--width`` sets its cost, from ~0.3 ms at width 16, where any per-step overhead shows, to a few
ms at the default 2048, a small model on a CPU) is trained for ``--steps`` steps three ways, in
this process, alternating and repeated (medians):

* **bare**: ``task.train_step(state)`` in a plain ``for`` loop;
* **loop**: ``plugins.common.training.TrainLoop`` with a :class:`QuietReporter` (metric windows
  averaged, progress every step, no checkpoints);
* **studio**: the loop inside a real job of the studio's runner (``JobContext``: progress
  throttling, metrics written to ``metrics.jsonl``, events to a listener), as the window and
  the CLI run it.

It prints steps/s, the ratios loop/bare and studio/bare, and the bookkeeping per step in
microseconds. Bar: studio/bare >= 0.97 at the default width (the loop's bookkeeping must not
be what a user waits for).

    python bench/loop_overhead.py                             # a small CPU model (width 2048)
    python bench/loop_overhead.py --width 16 --steps 5000     # worst case: a near-empty step
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BAR = 0.97


class Task:
    def __init__(self, width: int, batch: int = 256) -> None:
        import torch

        self.batch = batch
        torch.manual_seed(0)
        self.torch = torch
        self.net = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, 1))
        self.opt = torch.optim.SGD(self.net.parameters(), lr=1e-3)
        self.gen = torch.Generator().manual_seed(1)

    def train_step(self, state: Any) -> dict[str, Any]:
        x = self.torch.randn(self.batch, 64, generator=self.gen)
        out = self.net(x)
        loss = (out - x[:, :1]).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        d = out.detach()
        return {"loss": loss.detach(), "out/mean": d.mean(), "out/std": d.std(),
                "out/max": d.max(), "out/min": d.min()}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.net.load_state_dict(st["net"])


def bare(width: int, steps: int) -> float:
    from plugins.common.training import LoopState

    task, state = Task(width), LoopState(steps=steps)
    t0 = time.perf_counter()
    for _ in range(steps):
        task.train_step(state)
        state.step += 1
    return steps / (time.perf_counter() - t0)


def loop(width: int, steps: int) -> float:
    from plugins.common.training import QuietReporter, Schedule, TrainLoop

    lp = TrainLoop(Task(width), Schedule(steps=steps, log_every=10, eval_at_end=False,
                                         preview_at_end=False), QuietReporter())
    t0 = time.perf_counter()
    lp.run()
    return steps / (time.perf_counter() - t0)


def studio(width: int, steps: int, workspace: Path) -> float:
    from plugins.common.training import Schedule, TrainLoop
    from studio.jobs import DONE, JobRunner
    from studio.plugin import JobSpec
    from studio.settings import Settings

    timing: dict[str, float] = {}

    def job(ctx: Any) -> str:
        lp = TrainLoop(Task(width), Schedule(steps=steps, log_every=10, eval_at_end=False,
                                             preview_at_end=False), ctx)
        t0 = time.perf_counter()
        lp.run()
        timing["rate"] = steps / (time.perf_counter() - t0)
        return "ok"

    events = {"n": 0}
    lock = threading.Lock()

    def listen(_ev: Any) -> None:
        with lock:
            events["n"] += 1

    runner = JobRunner(listen, settings=Settings(workspace=str(workspace), device="cpu"))
    spec = JobSpec("bench", "bench:job", "Loop bench", makes_run=True)
    rec = runner.submit("bench", spec, {}, func=job, out=workspace / f"run{time.time_ns()}")
    runner.wait(rec.id, 3600)
    runner.shutdown()
    if rec.state != DONE:
        raise SystemExit(f"the studio run failed: {rec.error}")
    return timing["rate"]


def on_worker(fn: Any, *args: Any) -> float:
    """Bare and loop runs on a thread of their own too, as jobs run (the same OpenMP pool
    situation as the studio run)."""
    out: dict[str, float] = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn(*args)))
    t.start()
    t.join()
    return out["r"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from studio.device import configure_allocator

    configure_allocator()
    import torch

    torch.set_num_threads(args.threads)
    on_worker(bare, args.width, 100)  # warm up the allocator and the kernels
    rates: dict[str, list[float]] = {"bare": [], "loop": [], "studio": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            rates["bare"].append(on_worker(bare, args.width, args.steps))
            rates["loop"].append(on_worker(loop, args.width, args.steps))
            rates["studio"].append(studio(args.width, args.steps, Path(tmp)))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"{k:>6}: {med[k]:8.1f} steps/s  (runs: {', '.join(f'{x:.1f}' for x in v)})")
    ratio_loop, ratio_studio = med["loop"] / med["bare"], med["studio"] / med["bare"]
    per_step = {k: 1e6 * (1 / med[k] - 1 / med["bare"]) for k in ("loop", "studio")}
    print(f"loop/bare {ratio_loop:.3f}   studio/bare {ratio_studio:.3f}   "
          f"(width {args.width}: {1000 / med['bare']:.2f} ms per bare step; bookkeeping "
          f"{per_step['loop']:.0f} us/step in the loop, {per_step['studio']:.0f} us in a job)")
    ok = ratio_studio >= BAR
    print(f"bar studio/bare >= {BAR}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
