"""The judge both digits benches use (GAN and diffusion): a digit classifier trained on the real
built-in digits, and the report it makes of a set of samples.

One module so that the two plugins are held to the same judge, the same confidence threshold and
the same class-balance measure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

CONFIDENCE = 0.9  # a sample counts as recognisable when the judge is this sure
BAR_JUDGE = 0.97  # the judge's own held-out accuracy must exceed this


def judge_report(probs: Any, labels: Any = None) -> dict[str, Any]:
    """Share of confident samples, smallest predicted-class share (a generator that draws only
    a few digits fails it), per-class shares, and agreement with ``labels`` when given."""
    import numpy as np

    pred = probs.argmax(1)
    confident = probs.max(1) > CONFIDENCE
    share = np.bincount(pred, minlength=probs.shape[1]) / len(pred)
    conf_share = np.bincount(pred[confident], minlength=probs.shape[1]) / len(pred)
    out = {"confident": float(confident.mean()), "min_class_share": float(share.min()),
           "class_shares": [round(float(s), 3) for s in share],
           "confident_class_shares": [round(float(s), 3) for s in conf_share]}
    if labels is not None:
        out["agreement"] = float((pred == np.asarray(labels)).mean())
    return out


def train_judge(workspace: Path, steps: int, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """Train the judge on the real 32 px digits; returns (real images, judge, its report on the
    real digits) and prints both, so every bench log shows what the judge is worth."""
    from plugins.common.imagemetrics import train_domain_classifier
    from plugins.common.images import builtin_digits, load_image_folder

    t0 = time.perf_counter()
    real = load_image_folder(builtin_digits(workspace), 32, 1)
    judge = train_domain_classifier(real.images, real.labels, steps=steps, seed=seed,
                                    class_names=real.classes)
    print(f"judge: {judge.name}, held-out accuracy {judge.val_accuracy:.3%} "
          f"({time.perf_counter() - t0:.0f} s to train)", flush=True)
    real_ref = judge_report(judge.predict_proba(real.images), real.labels)
    print(f"real digits: {json.dumps(real_ref)}", flush=True)
    return real, judge, real_ref
