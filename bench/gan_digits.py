"""Digits bench for the GAN plugin's default preset.

Trains the default preset (``fast``: conditional SNGAN, learned at the digits' native 16 px and
shown at 32 px) on the built-in digits (scikit-learn's 1,797 handwritten digits) through the
studio's own job runner, for a CPU-time budget (``--minutes``, default 10) or an exact number of
steps (``--steps``, for tuning: quality per step does not depend on how busy the machine is).
Then it draws 1,000 samples (100 per class, seeds 0..999) from the exported EMA generator and
classifies them with "the digit classifier trained on the real digits":
``imagemetrics.train_domain_classifier`` on the real 32 px digits, whose held-out accuracy is
printed (and must exceed 97%, so the bench measures the generator, not the judge).

Bar: >= 90% of the samples classified with confidence > 0.9, and every digit class makes up at
least 5% of the samples (the classifier's predicted classes, so a generator that ignores its
class input and draws one digit fails). The same numbers for the real digits are printed as
the reference.

    python bench/gan_digits.py                  # 10-minute budget, 2 threads
    python bench/gan_digits.py --steps 3000     # fixed steps (tuning)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digits_judge import BAR_JUDGE, CONFIDENCE, judge_report, train_judge

BAR_CONFIDENT = 0.90
BAR_MIN_CLASS = 0.05


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="CPU training budget")
    ap.add_argument("--steps", type=int, default=None,
                    help="train exactly this many steps (no time budget unless --minutes given)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--arch", default=None, help="dcgan, wgan-gp or sngan (default: preset's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--judge-steps", type=int, default=400)
    ap.add_argument("--workspace", default=None, help="where the digits PNGs are written "
                    "(default: a temporary folder)")
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", default="{}", help="JSON of extra train-job options (tuning)")
    args = ap.parse_args(argv)
    minutes_given = any(a.startswith("--minutes") for a in (argv or sys.argv[1:]))

    import torch

    torch.set_num_threads(args.threads)
    from plugins.common.images import make_grid
    from plugins.common.pngmeta import save_png
    from plugins.gan.engine import explore
    from plugins.gan.engine.modelfile import load_model
    from plugins.gan.params import TrainParams
    from plugins.gan.plugin import GanPlugin
    from studio.jobs import JobRunner
    from studio.settings import Settings

    tmp = tempfile.mkdtemp(prefix="gan_digits_")
    workspace = Path(args.workspace or Path(tmp) / "workspace")
    run_dir = Path(args.out or Path(tmp) / "run")
    settings = Settings(device="cpu", cpu_threads=args.threads, workspace=str(workspace))

    # -- the judge: a digit classifier trained on the real digits
    _, judge, real_ref = train_judge(workspace, args.judge_steps, args.seed)

    # -- train through the studio's job runner (exactly what the window and the CLI do)
    budget = args.minutes if (args.steps is None or minutes_given) else None
    params = TrainParams(data="digits", size=32, preset=args.preset, arch=args.arch,
                         seed=args.seed, steps=args.steps or 10_000_000, max_minutes=budget,
                         **json.loads(args.extra))
    events: list = []
    runner = JobRunner(events.append, settings=settings)
    t1 = time.perf_counter()
    rec = runner.submit("gan", GanPlugin().job("train"), params, out=run_dir)
    runner.wait(rec.id)
    runner.shutdown()
    wall = time.perf_counter() - t1
    if rec.state != "done":
        print(f"training {rec.state}: {rec.error}")
        return 2
    metric_times = [t for e in events for name, _s, _v, t in e.points if name == "loss/D"]
    train_s = (metric_times[-1] - metric_times[0]) if len(metric_times) > 1 else wall
    model = load_model(run_dir)
    step = int(model.info.get("step", 0))
    print(f"trained {step} steps in {train_s / 60:.2f} min of training "
          f"({step / max(train_s, 1e-9):.2f} steps/s; {wall / 60:.2f} min with data loading), "
          f"{model.config.arch}, learned at {model.config.net_size} px, "
          f"{'conditional' if model.config.conditional else 'unconditional'}", flush=True)

    # -- 1,000 samples, classified by the judge
    samples = explore.samples_for(model, args.samples, 0, None)
    images = explore.generate(model, samples)
    labels = [s.label for s in samples] if model.config.conditional else None
    result = judge_report(judge.predict_proba(images), labels)
    save_png(make_grid(images[:100], nrow=10), run_dir / "bench_samples.png")
    ok = (result["confident"] >= BAR_CONFIDENT and result["min_class_share"] >= BAR_MIN_CLASS
          and (judge.val_accuracy or 0) > BAR_JUDGE)
    summary = {"steps": step, "train_minutes": round(train_s / 60, 2), **result,
               "judge_val_accuracy": judge.val_accuracy, "real_reference": real_ref,
               "bar": {"confident": BAR_CONFIDENT, "min_class_share": BAR_MIN_CLASS,
                       "judge": BAR_JUDGE}, "pass": ok, "run": str(run_dir)}
    print(json.dumps(summary, indent=2))
    print(f"{'PASS' if ok else 'FAIL'}: {result['confident']:.1%} of {args.samples} samples "
          f"confident (> {CONFIDENCE}), smallest class {result['min_class_share']:.1%} "
          f"(bar {BAR_CONFIDENT:.0%} / {BAR_MIN_CLASS:.0%}); samples in "
          f"{run_dir / 'bench_samples.png'}")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    raise SystemExit(main())
