"""A synthetic "plugin" whose model memorised exactly its training half: the reference
implementation of an audit probe, and the known answer every audit test checks against.

The "model" of a run is ``model.json``: the content keys of the images it trained on. Its
per-example loss is ``difficulty(x) - gap * [x was trained on] + noise``, where the difficulty
depends on the image alone (some images are simply easier, as in real data) and the noise on
the model's seed. With ``gap > 0`` a training example is recognisable once its difficulty is
known (LiRA and RMIA learn it from reference models; the plain loss threshold cannot), with
``gap = 0`` nothing is. Its samples copy a training image with probability ``copy_rate`` and
are fresh noise otherwise, so memorisation has a known share too.

Also a synthetic *text* plugin (a character 4-gram model with add-one smoothing) for canary
exposure, and a plugin without a probe.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from PIL import Image

from plugins.common.probes import ProbeBase, ProbeExample
from plugins.common.splits import held_out
from studio.manifest import file_examples
from studio.params import Help, Range
from studio.plugin import JobSpec, Plugin
from studio.storage import atomic_write_json

SIZE = 8


def key(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()[:16]


def difficulty(img: np.ndarray) -> float:
    h = int(key(img)[:8], 16)
    return 3.0 * h / 0xFFFFFFFF


def make_images(root: Path, n: int = 60, seed: int = 0, classes: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        folder = root / f"class{i % classes}" if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"img{i:03d}.png")
    return root


@dataclass(kw_only=True)
class SynthTrainParams:
    data: Annotated[Path, Help("a folder of PNG images")]
    holdout: Annotated[float, Range(0.0, 0.9)] = 0.5
    seed: Annotated[int, Range(0, 10_000)] = 0
    gap: Annotated[float, Range(0.0, 10.0), Help("how much lower a trained image's loss is")] = 1.0
    copy_rate: Annotated[float, Range(0.0, 1.0)] = 0.5
    noise: Annotated[float, Range(0.0, 1.0)] = 0.05


def train(ctx: Any, p: SynthTrainParams) -> str:
    files = sorted(Path(p.data).rglob("*.png"))
    examples = file_examples(p.data, files)
    ids = [e.id for e in examples]
    held = held_out(ids, p.holdout, p.seed)
    ctx.record_data(Path(p.data).name, p.data, examples, held_out=held, unit="image")
    trained = [key(np.asarray(Image.open(f).convert("RGB"))) for f, e in
               zip(files, examples, strict=True) if e.id not in held]
    ctx.check()
    atomic_write_json(ctx.run_dir / "model.json", {"trained": trained, "gap": p.gap,
                                                   "copy_rate": p.copy_rate, "seed": p.seed,
                                                   "noise": p.noise})
    ctx.add_artifact(ctx.run_dir / "model.json", "model", model_kind="synthetic")
    return str(ctx.run_dir)


class SyntheticProbe(ProbeBase):
    """The reference audit probe: every method of the protocol, on the synthetic model."""

    item_kind = "image"

    def open(self) -> None:
        path = self.run_dir / "model.json"
        self.model = json.loads(path.read_text())
        self.trained = set(self.model["trained"])

    def read(self, example: ProbeExample) -> np.ndarray:
        with Image.open(self.example_path(example)) as im:
            return np.asarray(im.convert("RGB"))

    def per_example_loss(self, items: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for img in items:
            k = key(img)
            rng = np.random.default_rng([self.model["seed"], int(k[:8], 16)])
            noise = self.model["noise"] * rng.standard_normal()
            out.append(difficulty(img) - self.model["gap"] * (k in self.trained) + noise)
        return np.array(out)

    def sample(self, n: int, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        train = [self.read(e) for e in self.examples() if e.member]
        out = []
        for _ in range(n):
            if rng.random() < self.model["copy_rate"]:
                out.append(train[int(rng.integers(len(train)))].copy())
            else:
                out.append(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        return out

    def embed(self, items: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([img.astype(np.float64).ravel() / 255.0 - 0.5 for img in items])


class SynthPlugin(Plugin):
    id = "synth"
    name = "Synthetic"
    jobs = (JobSpec("train", "audit_synthetic:train", "Train synthetic", makes_run=True),)
    audit_probe = "audit_synthetic:SyntheticProbe"


class PlainPlugin(Plugin):
    """A plugin whose runs record their data but which offers no probe."""

    id = "plain"
    name = "Plain"
    jobs = (JobSpec("train", "audit_synthetic:train", "Train plain", makes_run=True),)


# ----------------------------------------------------------------------------------------------
# A synthetic text model: character 4-grams with add-one smoothing
# ----------------------------------------------------------------------------------------------
ORDER = 4
ALPHABET = 96


@dataclass(kw_only=True)
class TextTrainParams:
    data: Annotated[Path, Help("a text file or folder")]
    holdout: Annotated[float, Range(0.0, 0.9)] = 0.0
    seed: Annotated[int, Range(0, 10_000)] = 0
    steps: Annotated[int, Range(1, 1_000_000)] = 1


def train_text(ctx: Any, p: TextTrainParams) -> str:
    src = Path(p.data)
    files = [src] if src.is_file() else sorted(src.rglob("*.txt"))
    examples = file_examples(src if src.is_dir() else src.parent, files)
    ctx.record_data(src.name, src, examples, held_out=held_out([e.id for e in examples],
                                                               p.holdout, p.seed), unit="file")
    counts: Counter[str] = Counter()
    for f in files:
        text = "\n" * ORDER + f.read_text(encoding="utf-8")
        for i in range(ORDER, len(text)):
            counts[text[i - ORDER:i + 1]] += 1
    atomic_write_json(ctx.run_dir / "ngrams.json", dict(counts))
    ctx.add_artifact(ctx.run_dir / "ngrams.json", "model", model_kind="ngram")
    return str(ctx.run_dir)


class NgramProbe(ProbeBase):
    item_kind = "text"

    def open(self) -> None:
        self.counts = json.loads((self.run_dir / "ngrams.json").read_text())
        self.context: Counter[str] = Counter()
        for g, c in self.counts.items():
            self.context[g[:-1]] += c

    def read(self, example: ProbeExample) -> str:
        return self.example_path(example).read_text(encoding="utf-8")

    def log_perplexity(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for t in texts:
            s = "\n" * ORDER + t
            bits = 0.0
            for i in range(ORDER, len(s)):
                g = s[i - ORDER:i + 1]
                p = (self.counts.get(g, 0) + 1) / (self.context.get(g[:-1], 0) + ALPHABET)
                bits -= math.log2(p)
            out.append(bits)
        return np.array(out)

    def per_example_loss(self, items: Sequence[str]) -> np.ndarray:
        return self.log_perplexity(items) / np.maximum([len(t) for t in items], 1)

    def sample(self, n: int, seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        chars = sorted({g[-1] for g in self.counts})
        out = []
        for _ in range(n):
            s = "\n" * ORDER
            for _ in range(80):
                ctx = s[-ORDER:]
                w = np.array([self.counts.get(ctx + c, 0) + 0.01 for c in chars])
                s += chars[int(rng.choice(len(chars), p=w / w.sum()))]
            out.append(s[ORDER:])
        return out

    def embed(self, items: Sequence[str]) -> np.ndarray:
        return np.array([[t.count(c) for c in "etaoinshr"] for t in items], dtype=float) + 1e-3

    @classmethod
    def corpus_job(cls, corpus: Path, preset: str, steps: int) -> tuple[str, Any]:
        return "train", {"data": corpus, "steps": steps}


class NgramPlugin(Plugin):
    id = "ngram"
    name = "N-gram"
    jobs = (JobSpec("train", "audit_synthetic:train_text", "Train n-gram", makes_run=True),)
    audit_probe = "audit_synthetic:NgramProbe"


PLUGINS = (SynthPlugin, PlainPlugin, NgramPlugin)
