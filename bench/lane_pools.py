"""Does a quick job on the interactive lane slow down training on the compute lane afterwards?

torch's OpenMP runtime keeps a thread pool for each thread that ran parallel work, for as long
as that thread lives, and when a process has more pool threads than cores libgomp stops
spin-waiting between parallel regions. Jobs used to run on their lane's long-lived thread, so
one "Generate samples" from the Explore tab left an idle pool behind and the next training ran
slower for the rest of the session. Jobs now run on a thread that ends with them.

Through the studio's JobRunner (no window), on the CPU, in one process:

* **fresh**: a GAN training job (the default preset on the built-in digits) on the compute lane,
  before any other job touched torch;
* **after**: the same job after a sampling job ran on the interactive lane (the EMA generator's
  preview grid, as Explore's Generate does).

Each side runs ``--repeats`` times (fresh runs first, since "after" cannot be undone) and the
medians are compared. Bar: after / fresh >= 0.95. No torch work runs on the main thread.

    python bench/lane_pools.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BAR = 0.95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from studio.device import configure_allocator

    configure_allocator()

    from plugins.common.images import builtin_digits
    from plugins.gan.engine import data as data_mod
    from studio.jobs import JobRunner
    from studio.plugin import JobSpec
    from studio.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="lane_pools_"))
    builtin_digits(tmp)
    ds = data_mod.load_dataset("digits", tmp, 32)  # PIL and numpy only: no torch pool here
    runner = JobRunner(settings=Settings(device="cpu", cpu_threads=args.threads,
                                         workspace=str(tmp / "ws")))

    def trainer() -> Any:
        import torch

        from plugins.gan.engine.config import make_config
        from plugins.gan.engine.trainer import GanTrainer

        native = data_mod.native_size(ds.images, 32)
        cfg = make_config(None, "fast", size=32, channels=ds.channels,
                          num_classes=len(ds.classes), class_names=list(ds.classes),
                          train_size=native if native != 32 else 0)
        images = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous()
        return GanTrainer(cfg, images, torch.from_numpy(ds.labels), "cpu")

    def train(ctx: object) -> float:
        t = trainer()
        for _ in range(args.warmup):
            t.train_step()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            t.train_step()
        return args.steps / (time.perf_counter() - t0)

    def sample(ctx: object) -> float:
        t = trainer()
        t0 = time.perf_counter()
        t.preview()
        return time.perf_counter() - t0

    def run(func: Any, lane: str) -> float:
        rec = runner.submit("bench", JobSpec(func.__name__, "lane_pools:" + func.__name__,
                                             func.__name__, lane=lane), func=func)
        runner.wait(rec.id)
        if rec.state != "done":
            raise SystemExit(f"{func.__name__} {rec.state}: {rec.error}")
        return float(rec.result)

    fresh = []
    for i in range(args.repeats):
        fresh.append(run(train, "compute"))
        print(f"fresh #{i + 1}: {fresh[-1]:.2f} steps/s", flush=True)
    print(f"sampling job on the interactive lane: {run(sample, 'interactive') * 1e3:.0f} ms",
          flush=True)
    after = []
    for i in range(args.repeats):
        after.append(run(train, "compute"))
        print(f"after #{i + 1}: {after[-1]:.2f} steps/s", flush=True)
    runner.shutdown()
    f, a = statistics.median(fresh), statistics.median(after)
    ratio = a / f
    print(f"{'PASS' if ratio >= BAR else 'FAIL'}: after a sampling job {a:.2f} steps/s / fresh "
          f"{f:.2f} steps/s = {ratio:.3f} (bar {BAR}, {args.threads} threads)")
    return 0 if ratio >= BAR else 1


if __name__ == "__main__":
    raise SystemExit(main())
