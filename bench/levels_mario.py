"""Learned Mario levels: train the GAN on the 15 Super Mario Bros levels, then measure.

Trains the levels plugin's GAN (MarioGAN-style DCGAN on 14x28 one-hot windows) for a fixed CPU
budget, samples 200 segments with fresh latents and prints:

* playable %: the platformer A* agent gets from the left edge to the right edge. A segment is
  entered from the one before it, so the agent may start on a one-column ledge at floor height
  just left of it; "strict" is the rate when it must stand in the segment's own first columns,
  as a whole level must;
* novelty: fraction of tiles differing from the nearest training window;
* tile-distribution distance (Jensen-Shannon, bits) and batch diversity;

then the same with the CMA-ES latent search on. The reference run in the same process is the
training data itself: 200 real windows measured the same way (their novelty is 0 by definition,
and "playable" shows what the agent makes of real segments).

Bars (issue 5): >= 90% playable with the search off, 100% with it on. MarioGPT reports ~88%.

    python bench/levels_mario.py                      # 10 CPU minutes, as the bar is stated
    python bench/levels_mario.py --minutes 3          # a shorter budget
    python bench/levels_mario.py --steps 3000         # exactly N steps (tuning by steps)
    python bench/levels_mario.py --model RUN_DIR      # measure an already-trained run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugins.common.training import QuietReporter  # noqa: E402
from plugins.levels.engine import agents, files, learned, metrics  # noqa: E402
from plugins.levels.engine.level import Level, from_indices  # noqa: E402
from plugins.levels.params import TrainParams  # noqa: E402


class Console(QuietReporter):
    """The shared quiet reporter, printing its log lines and, every ``every`` seconds, the
    progress line with the latest quality figures."""

    def __init__(self, every: float = 15.0) -> None:
        super().__init__(echo=lambda text: print(f"  {text}", flush=True))
        self.every = every
        self.last = 0.0

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        super().progress(done, total, message)
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            q = " ".join(f"{k.split('/')[1]}={points[-1][1]:.3f}"
                         for k, points in self.history.items() if k.startswith("quality/"))
            print(f"  {message} {q}", flush=True)


def measure(name: str, segs: list[Level], train: list[Level], legend: object,
            ref: np.ndarray, train_hist: np.ndarray) -> dict[str, float]:
    playable = float(np.mean([agents.check(s, runway=True).playable for s in segs]))
    strict = float(np.mean([agents.check(s).playable for s in segs]))
    nov = float(metrics.nearest_distance(np.stack([s.grid for s in segs]), ref).mean())
    js = metrics.js_divergence(metrics.histogram(segs, legend), train_hist)  # type: ignore[arg-type]
    div = metrics.diversity(segs)
    print(f"{name:<26} playable {playable:6.1%} (strict {strict:6.1%})   novelty {nov:.3f}   "
          f"tile JS {js:.4f}   diversity {div:.3f}")
    return {"playable": playable, "strict": strict, "novelty": nov, "js": js, "diversity": div}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "vglc" /
                                          "Super_Mario_Bros"))
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget (CPU minutes)")
    ap.add_argument("--steps", type=int, default=0,
                    help="train exactly this many steps instead of a time budget")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--budget", type=int, default=240,
                    help="latent search: most segments evaluated per segment")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--model", default="", help="measure this trained run; no training")
    ap.add_argument("--out", default="", help="run folder (default: a temporary folder)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    levels = files.load_folder(args.data)
    data = learned.make_segments(levels, None, TrainParams(data=Path(args.data)).width)
    legend = data.legend
    print(f"{len(levels)} levels, {len(data.windows)} windows of 28x14, {len(legend)} tiles; "
          f"torch threads {torch.get_num_threads()}")
    train_hist = metrics.histogram(data.levels, legend)
    ref = legend.codes()[data.windows]

    run = Path(args.model or args.out or tempfile.mkdtemp(prefix="levels-mario-"))
    if not args.model:
        steps = args.steps or 1_000_000
        # the train job's settings at their defaults (the one place they live)
        cfg = TrainParams(data=Path(args.data), model="gan", steps=steps,
                          seed=args.seed).config()
        budget = None if args.steps else args.minutes * 60.0
        what = f"{args.steps} steps" if args.steps else f"{args.minutes:g} minutes"
        print(f"training the GAN for {what} into {run}")
        t0 = time.monotonic()
        out = learned.train(Console(), data, cfg, run, max_seconds=budget)
        took = time.monotonic() - t0
        print(f"trained {out.step} steps in {took / 60:.1f} min "
              f"({out.step / took:.1f} steps/s)")

    model = learned.LevelModel(run)
    rng = np.random.default_rng(args.seed + 12345)
    real = [from_indices(data.windows[i], legend)
            for i in rng.choice(len(data.windows), args.samples, replace=False)]
    print()
    base = measure("reference: real windows", real, data.levels, legend, ref, train_hist)
    t0 = time.monotonic()
    segs = model.segments(args.samples, seed=args.seed + 777)
    off = measure("GAN, search off", segs, data.levels, legend, ref, train_hist)
    t_off = time.monotonic() - t0
    t0 = time.monotonic()
    found: list[Level] = []
    evals = 0
    for i in range(args.samples):
        codes, info = model.search_segment(args.seed * 1000 + i, learned.Targets(), None,
                                           args.budget)
        evals += info["evaluations"]
        found.append(Level(codes, legend))
    t_on = time.monotonic() - t0
    on = measure("GAN, latent search on", found, data.levels, legend, ref, train_hist)
    print()
    print(f"search: {evals / args.samples:.1f} segments evaluated per segment on average, "
          f"{t_on / args.samples * 1000:.0f} ms per segment (sampling alone "
          f"{t_off / args.samples * 1000:.1f} ms)")
    print(f"playable, search off: {off['playable']:.1%}  (bar >= 90%; ratio to real windows "
          f"{off['playable'] / max(1e-9, base['playable']):.2f}; strict {off['strict']:.1%}; "
          f"MarioGPT ~88%)  "
          f"{'PASS' if off['playable'] >= 0.90 else 'FAIL'}")
    print(f"playable, search on:  {on['playable']:.1%}  (bar 100%; strict {on['strict']:.1%})  "
          f"{'PASS' if on['playable'] >= 1.0 else 'FAIL'}")


if __name__ == "__main__":
    main()
