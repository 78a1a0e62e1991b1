"""Canary exposure ("The Secret Sharer", Carlini, Liu, Erlingsson, Kos, Song 2019, USENIX
Security): does a text model memorise a secret it saw a few times?

Random secrets of a known shape ("my PIN is 4 7 1 9") are inserted into a *copy* of a corpus,
some once and some many times; a model is trained on the copy; then each canary's
log-perplexity under the model is ranked among every other secret of the same shape (the
candidate space ``R``). Exposure is ``log2 |R| - log2 rank``: 0 bits when the inserted secret is
no more likely than a typical candidate, ``log2 |R|`` bits when it is the model's favourite,
i.e. when it could be extracted by trying candidates in the model's order.

For small spaces every candidate is scored (:func:`exposure_exact`). For large ones the paper
approximates the rank from a sample of candidates by fitting a skew-normal distribution to
their log-perplexities and reading the canary's tail probability (:func:`exposure_estimate`,
the paper's Section 4.3 "approximation by distribution modelling").

The user's corpus is never modified: :func:`insert_canaries` writes a copy.
"""

from __future__ import annotations

import math
import random
import shutil
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import UserError
from studio.storage import atomic_write_text

#: what each placeholder character of a secret format stands for
ALPHABETS = {"#": string.digits, "A": string.ascii_lowercase, "X": string.digits +
             string.ascii_lowercase}
DEFAULT_FORMAT = "my secret code is ####"
TEXT_EXTS = (".txt", ".md", ".text")
EXACT_LIMIT = 20_000  # candidate spaces up to this size are scored in full


@dataclass(frozen=True)
class SecretFormat:
    """A secret's shape: ``"my secret code is ####"`` (``#`` a digit, ``A`` a letter, ``X``
    either); each placeholder is written with a space after it in the canary ("4 7 1 9") so a
    word-level or subword tokenizer sees one token per character, as in the paper."""

    template: str = DEFAULT_FORMAT

    def __post_init__(self) -> None:
        if not self.slots:
            raise UserError(f"the secret format {self.template!r} has no placeholder: use # for "
                            "a digit, A for a letter, X for either")

    @property
    def slots(self) -> list[str]:
        return [ch for ch in self.template if ch in ALPHABETS]

    @property
    def space(self) -> int:
        return math.prod(len(ALPHABETS[s]) for s in self.slots)

    def render(self, secret: Sequence[str]) -> str:
        it = iter(secret)
        out = []
        template = self.template
        i = 0
        while i < len(template):
            ch = template[i]
            if ch in ALPHABETS:
                run = []
                while i < len(template) and template[i] in ALPHABETS:
                    run.append(next(it))
                    i += 1
                out.append(" ".join(run))
                continue
            out.append(ch)
            i += 1
        return "".join(out)

    def random_secret(self, rng: random.Random) -> tuple[str, ...]:
        return tuple(rng.choice(ALPHABETS[s]) for s in self.slots)

    def secret_of(self, index: int) -> tuple[str, ...]:
        """The ``index``-th secret in a fixed order (mixed radix over the slots)."""
        out = []
        for s in reversed(self.slots):
            alpha = ALPHABETS[s]
            index, r = divmod(index, len(alpha))
            out.append(alpha[r])
        return tuple(reversed(out))

    def all_secrets(self) -> list[tuple[str, ...]]:
        return [self.secret_of(i) for i in range(self.space)]


@dataclass(frozen=True)
class Canary:
    text: str
    secret: tuple[str, ...]
    repeats: int


def make_canaries(fmt: SecretFormat, repeats: Sequence[int], seed: int = 0) -> list[Canary]:
    """One canary per entry of ``repeats`` (how many times each is inserted), all different."""
    rng = random.Random(seed)
    seen: set[tuple[str, ...]] = set()
    out = []
    if len(repeats) > fmt.space:
        raise UserError(f"the format {fmt.template!r} has only {fmt.space} secrets")
    for r in repeats:
        while (s := fmt.random_secret(rng)) in seen:
            pass
        seen.add(s)
        out.append(Canary(fmt.render(s), s, int(r)))
    return out


def corpus_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_EXTS)
    if not files:
        raise UserError(f"{src.name} holds no text files ({', '.join(TEXT_EXTS)})")
    return files


def insert_canaries(src: Path, dst: Path, canaries: Sequence[Canary], seed: int = 0
                    ) -> dict[str, Any]:
    """Copy the corpus ``src`` (a text file or folder) to ``dst`` with every canary inserted
    ``repeats`` times as its own line at random line boundaries. ``src`` is only read; ``dst``
    must not be inside it. Returns what was inserted where (file names relative to ``dst``)."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.exists():
        raise UserError(f"the corpus {src.name} does not exist")
    if dst == src or src in dst.parents or (src.is_dir() and dst in src.parents):
        raise UserError("the copy with canaries must go outside the corpus folder")
    files = corpus_files(src)
    rng = random.Random(seed)
    texts = {f: f.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
             for f in files}
    placements: list[dict[str, Any]] = []
    for c in canaries:
        for _ in range(c.repeats):
            f = rng.choice(files)
            lines = texts[f]
            at = rng.randint(0, len(lines))
            if at > 0 and not lines[at - 1].endswith("\n"):
                lines[at - 1] += "\n"
            lines.insert(at, c.text + "\n")
            placements.append({"canary": c.text, "file": _rel(f, src)})
    for f, lines in texts.items():
        target = dst / f.relative_to(src) if src.is_dir() else dst
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, "".join(lines))
    if src.is_dir():  # other files (tokenizer vocabularies, notes) come along unchanged
        for p in src.rglob("*"):
            if p.is_file() and p not in texts:
                target = dst / p.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, target)
    return {"files": len(files), "inserted": len(placements), "placements": placements}


def _rel(f: Path, src: Path) -> str:
    return f.name if src.is_file() else f.relative_to(src).as_posix()


# ----------------------------------------------------------------------------------------------
# Exposure
# ----------------------------------------------------------------------------------------------
def exposure_exact(canary: float, candidates: np.ndarray, space: int | None = None) -> float:
    """Exposure in bits from the canary's log-perplexity and every candidate's (the canary
    among them or not): ``log2 |R| - log2 rank``, rank 1 for the most likely (a candidate
    exactly as likely as the canary does not push it down)."""
    c = np.asarray(candidates, dtype=np.float64)
    size = int(space or len(c))
    rank = 1 + int(np.sum(c < canary))
    return math.log2(size) - math.log2(rank)


def exposure_estimate(canary: float, sampled: np.ndarray, space: int) -> tuple[float, dict]:
    """Exposure approximated from a sample of candidates (Carlini et al. 2019, Sec. 4.3): fit
    a skew-normal to the candidates' log-perplexities; exposure is ``-log2`` of the fitted
    probability that a random candidate is at least as likely as the canary, capped at
    ``log2 space``."""
    from scipy import stats

    s = np.asarray(sampled, dtype=np.float64)
    a, loc, scale = stats.skewnorm.fit(s)
    p = float(stats.skewnorm.cdf(canary, a, loc, scale))
    cap = math.log2(space)
    bits = cap if p <= 0 else min(cap, -math.log2(p))
    empirical = exposure_exact(canary, s, len(s))
    return max(0.0, bits), {"skew": float(a), "loc": float(loc), "scale": float(scale),
                            "sampled": len(s), "empirical_bits_from_sample": empirical}


@dataclass
class CanaryExposure:
    canary: Canary
    log_perplexity: float  # bits
    exposure: float  # bits
    method: str  # "exact" or "skew-normal estimate"
    space: int
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"canary": self.canary.text, "repeats": self.canary.repeats,
                "log_perplexity_bits": self.log_perplexity, "exposure_bits": self.exposure,
                "max_bits": math.log2(self.space), "method": self.method, "space": self.space,
                **self.info}


def measure(canaries: Sequence[Canary], fmt: SecretFormat,
            log_perplexity: Callable[[Sequence[str]], np.ndarray], *,
            exact_limit: int = EXACT_LIMIT, samples: int = 2000, seed: int = 0,
            batch: int = 256, check: Callable[[], None] | None = None,
            progress: Callable[[int, int], None] | None = None) -> list[CanaryExposure]:
    """The exposure of each canary under a model (``log_perplexity(texts)`` in bits)."""
    exact = fmt.space <= exact_limit
    if exact:
        secrets = fmt.all_secrets()
    else:
        rng = random.Random(seed)
        secrets = [fmt.random_secret(rng) for _ in range(samples)]
    texts = [fmt.render(s) for s in secrets]
    scores = []
    for i in range(0, len(texts), batch):
        if check is not None:
            check()
        scores.append(np.asarray(log_perplexity(texts[i:i + batch]), dtype=np.float64))
        if progress is not None:
            progress(min(i + batch, len(texts)), len(texts))
    cand = np.concatenate(scores)
    own = np.asarray(log_perplexity([c.text for c in canaries]), dtype=np.float64)
    out = []
    for c, lp in zip(canaries, own, strict=True):
        if exact:
            out.append(CanaryExposure(c, float(lp), exposure_exact(lp, cand, fmt.space),
                                      "exact", fmt.space))
        else:
            bits, info = exposure_estimate(float(lp), cand, fmt.space)
            out.append(CanaryExposure(c, float(lp), bits, "skew-normal estimate", fmt.space,
                                      info))
    return out
