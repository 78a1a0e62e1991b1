"""Privacy audit of writer models: membership inference on an overfit writer, canary exposure,
and which feature space finds copied text.

1. Membership inference through the writer's audit probe: a tiny writer trained to overfit the
   first ``--chars`` characters of Tiny Shakespeare (../shared/data) as one file, its second
   half held out (``--val-fraction 0.5``; validated once, at the end, so the saved model is the
   overfit one, not an early best), then the audit's ``mia`` job, whose ``--references``
   reference models the writer's own train job trains on random halves of the run's passages
   (``--examples-of``). AUC (95% interval) and TPR at 0.1% / 1% FPR of each attack, with the
   number of member and held-out passages; the time of the audit against the audited run's
   own training time (the plain reference in the same process).
2. Canary exposure (The Secret Sharer): the audit's ``canaries`` job on the same text with
   four canaries inserted once and four inserted ten times (``my secret code is ####``, every
   one of the 10,000 candidates scored), a tiny writer trained on the copy for
   ``--canary-steps`` steps. Exposure in bits of each canary, and the mean per repeat count.
3. Feature spaces for the memorisation audit, on the overfit model of part 1: for samples of
   the model and for planted copies (training passages, each with one word in twenty changed),
   the cosine distance to the nearest training passage in the probe's hashed word n-gram space
   and in the model's mean last hidden state, and the share of fresh samples each space calls
   a near copy at the audit's default threshold (0.02).

Bars (issue 13): MIA AUC >= 0.9 on the overfit model; canary exposure clearly higher for
canaries repeated 10x than 1x.

    python bench/audit_writer.py [--chars 40000] [--steps 600] [--references 4]
        [--canary-steps 600] [--threads 1]

One torch thread by default: on a shared two-core machine two threads spin against each other
and ran ten times slower per step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


class Jobs:
    """The studio's job runner in this process, as the window and the CLI use it."""

    def __init__(self, threads: int) -> None:
        from studio.jobs import JobRunner
        from studio.settings import Settings

        self.runner = JobRunner(None, settings=Settings(device="cpu", cpu_threads=threads))

    def __call__(self, plugin: str, name: str, out: Path, **params: Any) -> float:
        from studio import registry

        t0 = time.perf_counter()
        rec = self.runner.submit(plugin, registry.get(plugin).job(name), params, out=out)
        self.runner.wait(rec.id, timeout=24 * 3600)
        if rec.state != "done":
            raise SystemExit(f"{plugin} {name} ended {rec.state}: {rec.error}")
        return time.perf_counter() - t0

    def close(self) -> None:
        self.runner.shutdown()


def train_args(steps: int) -> dict[str, Any]:
    """The tiny preset with a shorter context (128 tokens: more steps per minute on a CPU),
    validated only at the end."""
    return {"preset": "tiny", "steps": steps, "block_size": 128, "eval_every": steps}


def mia(jobs: Jobs, root: Path, corpus: Path, steps: int, references: int) -> dict[str, Any]:
    t_train = jobs("writer", "train", root / "target", data=str(corpus), val_fraction=0.5,
                   seed=0, **train_args(steps))
    t_mia = jobs("audit", "mia", root / "mia", run=str(root / "target"),
                 reference_models=references)
    doc = json.loads((root / "mia" / "audit.json").read_text())["result"]
    print(f"writer MIA: {doc['members']} member passages, {doc['nonmembers']} held out, "
          f"{references} reference models; the audited writer trained in {t_train:.0f} s "
          f"({steps} steps), the audit (reference models + scoring) took {t_mia:.0f} s = "
          f"{t_mia / t_train:.1f}x that training")
    for a in doc["attacks"]:
        t01, t1 = a["at"]
        print(f"  {a['attack']:<13} AUC {a['auc']:.3f} ({a['auc_ci'][0]:.3f}-"
              f"{a['auc_ci'][1]:.3f})  TPR@0.1%FPR {t01['tpr']['value']:.3f}"
              f"{'' if t01['resolvable'] else ' (unresolvable)'}  TPR@1%FPR "
              f"{t1['tpr']['value']:.3f}{'' if t1['resolvable'] else ' (unresolvable)'}")
    return doc


def canaries(jobs: Jobs, root: Path, corpus: Path, steps: int) -> dict[str, float]:
    repeats = [1, 1, 1, 1, 10, 10, 10, 10]
    t = jobs("audit", "canaries", root / "canaries", data=str(corpus), preset="tiny",
             steps=steps, repeats=repeats)
    doc = json.loads((root / "canaries" / "audit.json").read_text())["result"]
    print(f"canaries: {len(repeats)} canaries ({doc['format']!r}, {doc['space']:,} candidates, "
          f"every one scored), a tiny writer trained {steps} steps on the copy; {t:.0f} s in "
          "all")
    for c in doc["canaries"]:
        print(f"  {c['repeats']:>2}x  {c['canary']!r}: exposure {c['exposure_bits']:.2f} of "
              f"{c['max_bits']:.2f} bits (log-perplexity {c['log_perplexity_bits']:.1f} bits)")
    by = {int(k): float(v) for k, v in doc["by_repeats"].items()}
    print("  mean exposure: " + ", ".join(f"{k}x {v:.2f} bits" for k, v in sorted(by.items())))
    return by


def mean_hidden(probe: Any, texts: Sequence[str]) -> np.ndarray:
    """The model's last hidden state averaged over each text's tokens (first 256)."""
    import torch

    out = []
    with torch.inference_mode():
        for t in texts:
            ids = probe.tokenizer(t, add_special_tokens=False)["input_ids"][:256] or [0]
            h = probe.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            out.append(h.hidden_states[-1][0].mean(0).double().numpy())
    return np.stack(out)


def nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.maximum(1.0 - a @ b.T, 0.0).min(axis=1)


def feature_spaces(run: Path, n: int = 48, seed: int = 0) -> tuple[float, float]:
    from plugins.writer.audit import WriterProbe

    probe = WriterProbe.load(run, "cpu")
    try:
        train = [probe.read(e) for e in probe.examples() if e.member]
        samples = probe.sample(n, seed)
        rng = np.random.default_rng(seed)
        planted = []
        for k in rng.choice(len(train), min(8, len(train)), replace=False):
            words = train[int(k)].split(" ")
            planted.append(" ".join("thee" if i % 20 == 19 else w for i, w in enumerate(words)))
        shares = {}
        print(f"feature spaces: {n} samples and {len(planted)} planted near copies against "
              f"{len(train)} training passages (cosine distance to the nearest)")
        for name, f in (("word n-grams (the probe's)", probe.embed),
                        ("mean hidden state", lambda t: mean_hidden(probe, t))):
            tr = f(train)
            ds, dp = nearest(f(samples), tr), nearest(f(planted), tr)
            shares[name] = float(np.mean(ds <= 0.02))
            print(f"  {name:<27} samples: median {np.median(ds):.4f}, {shares[name]:.0%} under "
                  f"0.02; planted copies: median {np.median(dp):.4f}, max {dp.max():.4f}")
    finally:
        probe.close()
    return shares["word n-grams (the probe's)"], shares["mean hidden state"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=40_000)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--references", type=int, default=4)
    ap.add_argument("--canary-steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-canaries", action="store_true")
    a = ap.parse_args()
    if not DATA.exists():
        raise SystemExit("../shared/data/tinyshakespeare.txt not found")
    from studio.device import configure_allocator

    configure_allocator()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["STUDIO_HOME"] = str(root / "home")  # runs and the audit log stay in here
        corpus = root / "corpus"
        corpus.mkdir()
        (corpus / "play.txt").write_text(DATA.read_text(encoding="utf-8")[:a.chars],
                                         encoding="utf-8")
        jobs = Jobs(a.threads)
        try:
            doc = mia(jobs, root, corpus, a.steps, a.references)
            ngram_share, hidden_share = feature_spaces(root / "target")
            by = {} if a.no_canaries else canaries(jobs, root, corpus, a.canary_steps)
        finally:
            jobs.close()
    best = max(float(x["auc"]) for x in doc["attacks"])
    ok_mia = best >= 0.9
    ok_can = a.no_canaries or by[10] > by[1] + 1.0
    can = "skipped" if a.no_canaries else \
        f"10x {by[10]:.2f} vs 1x {by[1]:.2f} bits: {'PASS' if ok_can else 'FAIL'}"
    print(f"bars: writer MIA AUC >= 0.9 on the overfit model ({best:.3f}): "
          f"{'PASS' if ok_mia else 'FAIL'}; canary exposure 10x clearly above 1x ({can}); "
          f"near copies claimed among fresh samples: n-grams {ngram_share:.0%}, hidden "
          f"states {hidden_share:.0%}")
    return 0 if ok_mia and ok_can else 1


if __name__ == "__main__":
    raise SystemExit(main())
