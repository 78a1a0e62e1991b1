"""The prepared-data cache (studio.cache): first and second preparation of the same data, per
plugin, through each plugin's own data loading, in one run.

- gan, diffusion: a folder of ``--images`` synthetic 256x256 JPEG photos (smooth colour fields
  with noise: real JPEG decoding and resizing work), read at 64 px (the GAN) and 32 px (the
  diffusion model, whose channel count is decided from the data);
- writer: tinyshakespeare (1.1 MB), a new model's BPE tokenizer trained and the corpus
  tokenised (the tiny preset's settings).

Each is timed without the cache (the studio before it), then with an empty cache (first: a
miss, it hashes, decodes and stores) and again (second: a hit). Medians of ``--reps``; the
ratios say what the cache saves and what a miss costs extra.

    python bench/prepare_cache.py [--images 2000] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def make_photos(folder: Path, n: int) -> None:
    """``n`` 256x256 JPEGs: smooth random colour fields plus grain, two class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((256, 256), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-12, 12, (256, 256, 3))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(sub / f"{i:05d}.jpg",
                                                                 quality=90)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="gan,diffusion,writer")
    a = ap.parse_args()

    from plugins.common.training import QuietReporter
    from studio.cache import PrepCache

    tmp = Path(tempfile.mkdtemp(prefix="prepare-cache-"))
    try:
        photos = tmp / "photos"
        t0 = time.perf_counter()
        make_photos(photos, a.images)
        print(f"{a.images} synthetic 256x256 JPEGs made in {time.perf_counter() - t0:.1f} s; "
              f"{os.cpu_count()} cores; medians of {a.reps}", flush=True)
        workspace = tmp / "ws"

        def gan(cache: PrepCache | None) -> None:
            from plugins.gan.engine.data import load_dataset

            load_dataset(str(photos), workspace, 64, "rgb", cache=cache)

        def diffusion(cache: PrepCache | None) -> None:
            from plugins.diffusion.engine.train import TrainConfig, load_data

            cfg = TrainConfig(data=str(photos), size=32, channels=0, preset="tiny", steps=1,
                              batch_size=8, lr=1e-4, ema_decay=0.999, prediction="eps",
                              flip=False, seed=0, sample_every=0, checkpoint_every=0,
                              minutes=0.0, holdout=0.1)
            load_data(cfg, workspace, QuietReporter(), cache)

        text = tmp / "shakespeare.txt"
        shutil.copy(SHAKESPEARE, text)
        runs = iter(range(10**6))

        def writer(cache: PrepCache | None) -> None:
            from plugins.writer.engine.pipeline import TrainRequest, prepare_training

            req = TrainRequest(data=[str(text)], preset="tiny", steps=1, val_fraction=0.1)
            prepare_training(req, tmp / "runs" / str(next(runs)), QuietReporter(), cache=cache)

        jobs = {"gan": gan, "diffusion": diffusion, "writer": writer}
        for name in a.only.split(","):
            fn = jobs[name]
            plain, first, second = [], [], []
            for r in range(a.reps):
                cache = PrepCache(tmp / f"cache-{name}-{r}", limit_bytes=10**10)
                plain.append(timed(lambda fn=fn: fn(None)))
                first.append(timed(lambda fn=fn, c=cache: fn(c)))
                second.append(timed(lambda fn=fn, c=cache: fn(c)))
                size = cache.size()
            p, f, s = (statistics.median(v) for v in (plain, first, second))
            print(f"{name:<9} without cache {p:6.2f} s; first {f:6.2f} s ({f / p:.2f} of "
                  f"without); second {s:6.2f} s ({s / p:.3f} of without, {p / s:.1f}x faster); "
                  f"entry {size / 1e6:.1f} MB", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
