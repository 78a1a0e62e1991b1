"""Fast on a busy desktop: training speed with 0, 1 and 2 other busy processes, with the thread
governor (studio.threads) off (the studio as it was) and on, in one run.

Each measurement is a fresh process that runs the plugin's real ``train`` job through the job
runner with a time budget; its speed is read from the run's own metrics (steps between the first
and the last logged point over their timestamps, so start-up is left out). Competitors are plain
Python busy loops (a browser tab, a DAW, a second job), started before and stopped after. The
settings alternate under each condition, ``--reps`` times; medians.

Bars (issue 17), with c cores and k competitors: the governor's speed >= 0.7 of the fair share
(the quiet speed without it x c / (c + k)); on a quiet machine >= 0.97 of the speed without it.

    python bench/contention.py [--jobs gan,writer] [--seconds 20] [--reps 3] [--busy 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def worker(job: str, seconds: float, scratch: Path) -> float:
    """Run one training job for ``seconds`` and return its steps per second."""
    sys.path.insert(0, str(ROOT))
    from studio import registry
    from studio.jobs import DONE, JobRunner
    from studio.settings import Settings

    settings = Settings(device="cpu", workspace=str(scratch / "workspace"))
    runner = JobRunner(None, settings=settings)
    minutes = seconds / 60
    if job == "gan":
        params = {"data": "digits", "size": 32, "steps": 10**6, "max_minutes": minutes,
                  "log_every": 1, "preview_every": 10**6, "checkpoint_every": 10**6}
    else:
        text = scratch / "shakespeare.txt"
        text.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:200_000], encoding="utf-8")
        params = {"data": str(text), "preset": "tiny", "steps": 10**6, "minutes": minutes,
                  "batch_size": 8, "block_size": 128, "eval_every": 10**6,
                  "val_fraction": 0.05}  # small steps: enough logged points in 20 s
    out = scratch / f"run-{time.monotonic_ns()}"
    rec = runner.submit(job, registry.get(job).job("train"), params, out=out)
    runner.wait(rec.id, timeout=seconds * 10 + 600)
    runner.shutdown()
    if rec.state != DONE:
        raise SystemExit(f"{job} train ended {rec.state}: {rec.error}")
    points: list[tuple[float, float]] = []
    name = None
    for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        key = r.get("name") or r.get("metric")
        if name is None and key and "loss" in key:
            name = key
        if key == name:
            points.append((float(r["step"]), float(r.get("t") or r.get("time"))))
    if len(points) >= 3:
        (s0, t0), (s1, t1) = points[1], points[-1]  # the first point includes warm-up
        return (s1 - s0) / max(1e-9, t1 - t0)
    if not points:
        return 0.0
    # so slow that it logged once or twice: its steps over the time since the run started
    # (start-up included: an overestimate of the time, so the rate errs low)
    started = json.loads((out / "run.json").read_text(encoding="utf-8"))["started"]
    return points[-1][0] / max(1e-9, points[-1][1] - float(started))


def measure(job: str, adapt: bool, busy: int, seconds: float) -> float:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        env = {**os.environ, "STUDIO_ADAPT_THREADS": "1" if adapt else "0"}
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, __file__, "--worker", job, "--seconds",
                                   str(seconds), "--scratch", tmp], env=env, capture_output=True,
                                  text=True, timeout=seconds * 20 + 900)
        if proc.returncode != 0:
            raise SystemExit(f"worker failed: {proc.stderr[-2000:]}")
        return float(proc.stdout.strip().splitlines()[-1])
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="gan,writer")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--busy", default="0,1,2")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(f"{worker(a.worker, a.seconds, Path(a.scratch)):.4f}")
        return 0
    cores = os.cpu_count() or 1
    busy_levels = [int(b) for b in a.busy.split(",")]
    ok = True
    print(f"{cores} cores; {a.seconds:g} s per measurement, medians of {a.reps}; steps/s")
    for job in a.jobs.split(","):
        results: dict[tuple[int, bool], list[float]] = {}
        for busy in busy_levels:
            for _ in range(a.reps):
                for adapt in (False, True):  # alternate under the same conditions
                    results.setdefault((busy, adapt), []).append(
                        measure(job, adapt, busy, a.seconds))
        quiet = statistics.median(results[(0, False)]) if 0 in busy_levels else None
        for busy in busy_levels:
            old = statistics.median(results[(busy, False)])
            new = statistics.median(results[(busy, True)])
            line = (f"{job:<7} {busy} busy: without governor {old:7.2f} "
                    f"{results[(busy, False)]}, with {new:7.2f} {results[(busy, True)]}")
            if quiet:
                if busy == 0:
                    ratio = new / old
                    passed = ratio >= 0.97
                    line += f"  quiet ratio {ratio:.3f} (bar 0.97: {'PASS' if passed else 'FAIL'})"
                else:
                    fair = quiet * cores / (cores + busy)
                    ratio = new / fair
                    passed = ratio >= 0.7
                    line += (f"  fair share {fair:.2f}: with {ratio:.2f}, without "
                             f"{old / fair:.2f} (bar 0.7: {'PASS' if passed else 'FAIL'})")
                ok = ok and passed
            print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
