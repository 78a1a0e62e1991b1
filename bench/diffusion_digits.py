"""Digits bench for the diffusion plugin's default preset.

Trains the default preset (``small`` UNet, 32 px, EMA) on the built-in digits (scikit-learn's
1,797 handwritten digits) through the studio's own job runner, for a CPU budget (``--minutes``,
default 15) or an exact number of steps (``--steps``, for tuning: quality per step does not
depend on how busy the machine is). Then:

1. **Recognisability.** 1,000 samples (seeds 0..999) with DPM-Solver++ at 25 steps are classified
   by "a digit classifier trained on real digits": ``imagemetrics.train_domain_classifier`` on the
   real 32 px digits (its held-out accuracy is printed and must exceed 97%, so the bench measures
   the generator, not the judge). Bar: >= 80% of the samples classified with confidence > 0.9,
   and every digit makes up >= 5% of the samples (the judge's predicted classes: a model that
   draws only a few digits fails).
2. **Sampler quality.** The domain Fréchet distance (in that classifier's feature space: NOT
   comparable with published FID) to the real digits of DPM-Solver++ at 10, 25 and 50 steps and
   of DDPM at 1,000 steps, on the same seeds and the same number of samples (``--fd-samples``),
   plus the distance of each DPM-Solver++ set to the DDPM-1000 set.

    python bench/diffusion_digits.py                   # 15-minute budget, 2 threads
    python bench/diffusion_digits.py --steps 3000      # fixed steps (tuning)
    python bench/diffusion_digits.py --model RUN_DIR   # judge an existing model, no training
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digits_judge import BAR_JUDGE, CONFIDENCE, judge_report, train_judge

BAR_CONFIDENT = 0.80
BAR_MIN_CLASS = 0.05


def sample(lm: Any, scheduler: str, steps: int, n: int, batch: int) -> Any:
    """``n`` single-channel uint8 samples, seeds 0..n-1, through the plugin's engine."""
    import numpy as np

    from plugins.common.training import QuietReporter
    from plugins.diffusion.engine.generate import Request, generate

    res = generate(QuietReporter(), lm, Request(steps=steps, scheduler=scheduler, n=n, seed=0,
                                         batch_size=batch, previews=False))
    return np.stack(res.images)[..., :1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="CPU training budget")
    ap.add_argument("--steps", type=int, default=None,
                    help="train exactly this many steps (no time budget unless --minutes given)")
    ap.add_argument("--model", default=None, help="skip training: judge this model/run folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--fd-samples", type=int, default=250,
                    help="samples per sampler for the Fréchet distances (DDPM-1000 is slow)")
    ap.add_argument("--no-fd", action="store_true", help="skip the Fréchet distances")
    ap.add_argument("--batch", type=int, default=250, help="images per UNet call when sampling")
    ap.add_argument("--judge-steps", type=int, default=800)
    ap.add_argument("--workspace", default=None, help="where the digits PNGs are written "
                    "(default: a temporary folder)")
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", default="{}",
                    help="JSON of extra train-job params (TrainParams fields, for tuning)")
    args = ap.parse_args(argv)
    minutes_given = any(a.startswith("--minutes") for a in (argv or sys.argv[1:]))

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from plugins.common.imagemetrics import (
        evaluate_images,
        frechet_distance,
        gaussian_stats,
    )
    from plugins.common.images import make_grid
    from plugins.common.pngmeta import save_png
    from plugins.diffusion.engine.loading import load_model
    from plugins.diffusion.params import TrainParams
    from plugins.diffusion.plugin import DiffusionPlugin
    from studio.jobs import JobRunner
    from studio.settings import Settings

    tmp = tempfile.mkdtemp(prefix="diffusion_digits_")
    workspace = Path(args.workspace or Path(tmp) / "workspace")
    run_dir = Path(args.out or Path(tmp) / "run")
    settings = Settings(device="cpu", cpu_threads=args.threads, workspace=str(workspace))

    # -- the judge: a digit classifier trained on the real digits
    real, judge, real_ref = train_judge(workspace, args.judge_steps, args.seed)

    # -- train through the studio's job runner (exactly what the window and the CLI do)
    summary: dict[str, Any] = {}
    if args.model:
        model_path = Path(args.model)
    else:
        budget: dict[str, Any] = (
            {"steps": args.steps, **({"minutes": args.minutes} if minutes_given else {})}
            if args.steps is not None else {"steps": 10_000_000, "minutes": args.minutes})
        params = TrainParams(data="digits", size=32, seed=args.seed,
                             **{**budget, **json.loads(args.extra)})
        events: list[Any] = []
        runner = JobRunner(events.append, settings=settings)
        t1 = time.perf_counter()
        rec = runner.submit("diffusion", DiffusionPlugin().job("train"), params, out=run_dir)
        runner.wait(rec.id)
        runner.shutdown()
        wall = time.perf_counter() - t1
        if rec.state != "done":
            print(f"training {rec.state}: {rec.error}")
            return 2
        points = [p for e in events for p in e.points if p[0] == "loss/train"]
        times = [t for _n, _s, _v, t in points]
        steps = [s for _n, s, _v, _t in points]
        train_s = (times[-1] - times[0]) if len(times) > 1 else wall
        done = int(steps[-1]) if steps else 0
        print(f"trained {done} steps in {train_s / 60:.2f} min of training "
              f"({done / max(train_s, 1e-9):.2f} steps/s; {wall / 60:.2f} min with data loading "
              "and previews)", flush=True)
        summary.update(steps=done, train_minutes=round(train_s / 60, 2))
        model_path = run_dir

    lm = load_model(model_path, "cpu")
    if lm.kind != "pixel" or lm.info.channels != 1:
        print(f"{model_path} is not a grayscale pixel-space model")
        return 2

    # -- 1,000 samples with DPM-Solver++ at 25 steps, classified by the judge
    t2 = time.perf_counter()
    images = sample(lm, "dpm++", 25, args.samples, args.batch)
    print(f"sampled {args.samples} images (DPM-Solver++, 25 steps) in "
          f"{time.perf_counter() - t2:.0f} s", flush=True)
    result = judge_report(judge.predict_proba(images))
    out_dir = run_dir if not args.model else Path(tmp)
    save_png(make_grid(np.repeat(images[:100], 3, axis=-1), nrow=10),
             out_dir / "bench_samples.png")
    ok = (result["confident"] >= BAR_CONFIDENT and result["min_class_share"] >= BAR_MIN_CLASS
          and (judge.val_accuracy or 0) > BAR_JUDGE)
    print(f"recognised: {json.dumps(result)}", flush=True)

    # -- domain Fréchet distances: DPM-Solver++ 10/25/50 vs DDPM 1000
    fd: dict[str, Any] = {}
    if not args.no_fd:
        k = min(args.fd_samples, args.samples)
        sets = {"dpm++ 25": images[:k]}
        for name, sched, steps in (("dpm++ 10", "dpm++", 10), ("dpm++ 50", "dpm++", 50),
                                   ("ddpm 1000", "ddpm", 1000)):
            t3 = time.perf_counter()
            sets[name] = sample(lm, sched, steps, k, args.batch)
            print(f"sampled {k} with {name} steps in {time.perf_counter() - t3:.0f} s",
                  flush=True)
        ref = gaussian_stats(judge.features(sets["ddpm 1000"]))
        for name in ("dpm++ 10", "dpm++ 25", "dpm++ 50", "ddpm 1000"):
            ev = evaluate_images(real.images, sets[name], judge)
            mine = gaussian_stats(judge.features(sets[name]))
            fd[name] = {"fd_to_real": round(ev["fd"], 3), "kid_to_real": round(ev["kid"], 5),
                        "fd_to_ddpm1000": round(float(frechet_distance(*mine, *ref)), 3)}
        fd["samples_each"] = k
        fd["feature_space"] = f"{judge.name} (domain: not comparable with published FID)"
        print("domain Fréchet distance (same seeds, same count):")
        for name in ("dpm++ 10", "dpm++ 25", "dpm++ 50", "ddpm 1000"):
            print(f"  {name:>9}: to real {fd[name]['fd_to_real']:8.3f}   to DDPM-1000 "
                  f"{fd[name]['fd_to_ddpm1000']:8.3f}")

    summary.update(result)
    summary.update({"judge_val_accuracy": judge.val_accuracy, "real_reference": real_ref,
                    "frechet": fd, "bar": {"confident": BAR_CONFIDENT,
                                           "min_class_share": BAR_MIN_CLASS,
                                           "judge": BAR_JUDGE},
                    "pass": ok, "model": str(model_path)})
    (out_dir / "bench_digits.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"{'PASS' if ok else 'FAIL'}: {result['confident']:.1%} of {args.samples} samples "
          f"confident (> {CONFIDENCE}), smallest class {result['min_class_share']:.1%} "
          f"(bar {BAR_CONFIDENT:.0%} / {BAR_MIN_CLASS:.0%}); samples in "
          f"{out_dir / 'bench_samples.png'}")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    raise SystemExit(main())
