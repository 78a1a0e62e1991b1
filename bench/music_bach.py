"""Bach-chorale bench for the music plugin's default 2-bar melody preset.

Trains the ``default`` 2-bar melody VAE on the soprano lines of the 371 music21 Bach chorales
(written out as MIDI into the workspace on first use) with a fixed, seeded 10% of the chorales
held out, for a CPU-time budget (``--minutes``, default 10) or an exact number of steps
(``--steps``, for tuning: quality per step does not depend on how busy the machine is). Then it
prints, on every held-out phrase:

* per-16th-step reconstruction accuracy, teacher-forced and sampled (z drawn from q(z|x), the
  decoder fed its own argmax outputs; also with z = mean and with temperature-1 sampling),
* the in-key rate of 512 phrases sampled from the prior (temperature 1.0 and 0.5): the share of
  notes inside each phrase's best-fitting major / harmonic-minor scale,

with the references that give them meaning: a "plain" predictor that always says HOLD (the most
frequent token) and the held-out chorales' own in-key rate. Bar: sampled accuracy >= 0.90 and
in-key rate >= 0.95. MusicVAE reports 0.986 / 0.951 (teacher-forced / sampled) for 2-bar melodies
trained far longer on a far larger corpus.

    python bench/music_bach.py                    # 10-minute budget
    python bench/music_bach.py --steps 3000       # fixed steps (tuning)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="CPU training budget")
    ap.add_argument("--steps", type=int, default=None,
                    help="train exactly this many steps (no time budget unless --minutes given)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: this model gains little from a second thread and "
                         "loses 3-7x when another process wants the core)")
    ap.add_argument("--workspace", default=None,
                    help="where the chorale MIDI files live (default: the studio workspace)")
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override preset fields for tuning, e.g. batch_size=64 lr=0.003")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import numpy as np

    from plugins.common.training import QuietReporter, TrainLoop
    from plugins.music.engine import bach, metrics
    from plugins.music.engine.config import preset
    from plugins.music.engine.data import load_midi_folder
    from plugins.music.engine.train import MusicTask, evaluate, phrase_tensor, schedule
    from studio import settings as settings_mod

    ws = Path(args.workspace).expanduser() if args.workspace else \
        settings_mod.load().workspace_path()
    t0 = time.perf_counter()
    root = bach.builtin_bach(ws)
    phrases = load_midi_folder(root, bars=2, mode="melody", melody="auto")
    train_set, held = phrases.split(0.1, seed=0)
    n_files = len(phrases.files)
    print(f"data: {len(phrases)} soprano phrases from {n_files} chorales "
          f"({len(phrases.skipped)} not in 4/4); train {len(train_set)}, held out {len(held)} "
          f"phrases from {len(set(held.file_index.tolist()))} chorales "
          f"[{time.perf_counter() - t0:.1f} s]")

    mc, tc = preset(args.preset, "melody", 2)
    tc.seed = args.seed
    for item in args.set:
        key, _, value = item.partition("=")
        obj = mc if hasattr(mc, key) else tc
        if not hasattr(obj, key):
            ap.error(f"unknown field {key}")
        setattr(obj, key, type(getattr(obj, key))(value))
        print(f"override: {key} = {value}")
    budget = None
    if args.steps is not None:
        tc.steps = args.steps
        if "--minutes" in " ".join(sys.argv):
            budget = args.minutes * 60
    else:
        tc.steps = 10**9
        budget = args.minutes * 60
    tc.eval_every = 10**9  # held-out data is only looked at after training
    run_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="music_bach_"))
    rep = QuietReporter()
    task = MusicTask(mc, tc, train_set, None, run_dir, rep, "cpu",
                     {"data": {"root": str(root), "bench": "music_bach"}})
    loop = TrainLoop(task, schedule(tc, budget), rep)  # the studio's loop, no checkpoints
    print(f"training preset '{args.preset}' ({sum(p.numel() for p in task.model.parameters())}"
          f" parameters, batch {tc.batch_size}) on {args.threads} thread(s), "
          + (f"{tc.steps} steps" if budget is None else f"budget {budget / 60:.1f} min"))
    t1 = time.perf_counter()
    last = 0.0
    orig = rep.metric

    def metric(name: str, step: float, value: float) -> None:
        nonlocal last
        orig(name, step, value)
        now = time.perf_counter()
        if name == "accuracy/train" and now - last > 30:
            last = now
            rec = rep.history.get("loss/recon", [(0, float("nan"))])[-1][1]
            kl = rep.history.get("loss/kl", [(0, float("nan"))])[-1][1]
            print(f"  step {int(step):6d}  {now - t1:6.0f} s  recon {rec:6.2f}  kl {kl:5.1f}  "
                  f"train acc {value:.3f}", flush=True)

    rep.metric = metric  # type: ignore[method-assign]
    steps = loop.run().step
    train_s = time.perf_counter() - t1
    print(f"trained {steps} steps in {train_s:.0f} s ({steps / train_s:.2f} steps/s)")

    model = task.model.eval()
    x = phrase_tensor(held)
    t2 = time.perf_counter()
    q = evaluate(model, x, sample_z=True, temperature=0.0, limit=None, seed=1)
    mean = evaluate(model, x, sample_z=False, temperature=0.0, limit=None, seed=1)
    temp1 = evaluate(model, x, sample_z=True, temperature=1.0, limit=None, seed=1)
    from plugins.music.engine.phrase import HOLD

    target = x.numpy()
    plain = float((target == HOLD).mean())
    g = torch.Generator().manual_seed(123)
    z = torch.randn(args.samples, mc.latent, generator=g)
    with torch.no_grad():
        s1 = model.generate(z, 1.0, g).numpy()
        s05 = model.generate(z, 0.5, g).numpy()
    key1, key05 = metrics.in_key_rate(s1), metrics.in_key_rate(s05)
    key_data = metrics.in_key_rate(target)
    rng = np.random.default_rng(0)
    rand = metrics.in_key_rate(rng.integers(2, 90, size=(args.samples, 8)))
    notes_per = float((s1 >= 2).sum(1).mean())
    print(f"evaluation [{time.perf_counter() - t2:.1f} s] on {len(held)} held-out phrases:")
    print(f"  teacher-forced accuracy  {q['tf_accuracy']:.4f}   (z ~ q(z|x))")
    print(f"  sampled accuracy         {q['sampled_accuracy']:.4f}   (z ~ q(z|x), argmax decoding)"
          f"   onsets {q['onset_accuracy']:.4f}")
    print(f"  sampled accuracy, z=mean {mean['sampled_accuracy']:.4f}")
    print(f"  sampled accuracy, T=1.0  {temp1['sampled_accuracy']:.4f}   (decoder samples each "
          "step)")
    print(f"  plain reference (always HOLD) {plain:.4f}  -> sampled / plain = "
          f"{q['sampled_accuracy'] / plain:.3f}")
    print(f"in-key rate of {args.samples} prior samples: T=1.0 {key1:.4f}, T=0.5 {key05:.4f} "
          f"({notes_per:.1f} notes per phrase)")
    print(f"  references: held-out chorales {key_data:.4f}, random pitches {rand:.4f}  -> "
          f"model / chorales = {key1 / key_data:.3f}")
    ok_acc = q["sampled_accuracy"] >= 0.90
    ok_key = key1 >= 0.95
    print(f"BAR sampled accuracy >= 0.90: {'PASS' if ok_acc else 'FAIL'}; "
          f"in-key rate >= 0.95: {'PASS' if ok_key else 'FAIL'}")
    print(json.dumps({"bench": "music_bach", "preset": args.preset, "steps": steps,
                      "train_seconds": round(train_s, 1), "threads": args.threads,
                      "tf_accuracy": round(q["tf_accuracy"], 4),
                      "sampled_accuracy": round(q["sampled_accuracy"], 4),
                      "sampled_accuracy_mean_z": round(mean["sampled_accuracy"], 4),
                      "sampled_accuracy_t1": round(temp1["sampled_accuracy"], 4),
                      "in_key_t1": round(key1, 4), "in_key_t05": round(key05, 4),
                      "in_key_data": round(key_data, 4), "plain_accuracy": round(plain, 4)}))
    return 0 if ok_acc and ok_key else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
