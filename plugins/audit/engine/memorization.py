"""Memorisation: do generated samples copy training examples?

Generate samples, find each one's nearest training example, and report the share of samples
closer than a threshold (the headline) with the closest pairs to look at side by side.

- Images, pixel space: the tiled L2 distance of Carlini et al. 2023 ("Extracting Training Data
  from Diffusion Models", USENIX Security): both images are brought to one size, cut into a
  4 x 4 grid of non-overlapping tiles (the paper's 16 tiles of 128 px on 512 px images), and the
  distance is the *largest* per-tile root-mean-square difference (pixels in 0-1). A copy with
  one region changed is still near in most tiles but the maximum keeps a mostly-similar image
  with one very different region from passing as a copy, and a plain L2 over the whole image
  would let a near-copy hide in a large smooth background. The paper's CIFAR-10 variant, the
  distance relative to the mean distance of the ``n`` nearest training images, is reported
  beside it (``relative``): a small value means "much closer to one image than to its
  neighbours", which is what copying looks like in a dense dataset.
- Images and other kinds, feature space: cosine distance between the probe's ``embed``
  vectors (:func:`nearest_features`).
- Text: exact and near-exact long token overlap with the training corpus (the extraction
  definition of Carlini et al. 2021, "Extracting Training Data from Large Language Models": a
  generated span that appears verbatim in the training data), with the matched passage.
  Near-exact matching compares case- and punctuation-folded words and tolerates a few
  substituted words.
- Music: the same overlap on note tokens (pitch interval, duration) so a transposed copy is a
  copy; levels: the share of a sample's k x k tile windows found verbatim in training levels.

No torch; numpy and Pillow.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stats import Share, wilson

TILES = 4  # a 4 x 4 grid: the paper's 16 tiles
DEFAULT_IMAGE_THRESHOLD = 0.1  # largest per-tile RMS difference (0-1 pixels)
DEFAULT_FEATURE_THRESHOLD = 0.02  # cosine distance
DEFAULT_TEXT_TOKENS = 32  # words in a verbatim run
DEFAULT_MUSIC_NOTES = 16
DEFAULT_LEVEL_SHARE = 0.8
NEIGHBOURS = 50  # for the relative distance (the paper's n)


@dataclass
class Pair:
    """A sample and its nearest training example."""

    sample: int  # index of the sample
    example: str  # the training example's id
    distance: float  # in the method's unit (lower: closer)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"sample": self.sample, "example": self.example, "distance": self.distance,
                **self.detail}


@dataclass
class MemorizationResult:
    """The nearest training example of every sample, and the share under the threshold."""

    kind: str  # image, text, music, level, features
    method: str  # one sentence: what the distance is
    unit: str  # how to read a distance
    threshold: float
    nearest: list[Pair]  # one per sample, in sample order
    copied: Share  # samples at or under the threshold
    lower_is_closer: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    def closest(self, k: int = 12) -> list[Pair]:
        sign = 1.0 if self.lower_is_closer else -1.0
        return sorted(self.nearest, key=lambda p: sign * p.distance)[:k]

    def distances(self) -> np.ndarray:
        return np.array([p.distance for p in self.nearest], dtype=np.float64)

    def to_json(self, pairs: int = 24) -> dict[str, Any]:
        return {"kind": self.kind, "method": self.method, "unit": self.unit,
                "threshold": self.threshold, "copied": self.copied.to_json(),
                "lower_is_closer": self.lower_is_closer,
                "distances": [round(float(d), 6) for d in self.distances()],
                "closest": [p.to_json() for p in self.closest(pairs)], "info": self.info}


def _share(flags: Sequence[bool]) -> Share:
    return wilson(int(sum(bool(f) for f in flags)), len(flags))


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------
def common_size(images: Sequence[np.ndarray]) -> tuple[int, int, int]:
    """The (H, W, C) every image is compared at: the most common size, RGB when any image has
    colour."""
    sizes: dict[tuple[int, int], int] = {}
    colour = False
    for im in images:
        sizes[im.shape[:2]] = sizes.get(im.shape[:2], 0) + 1
        colour |= im.ndim == 3 and im.shape[2] >= 3
    h, w = max(sizes, key=lambda s: sizes[s])
    return h, w, 3 if colour else 1


def to_float(images: Sequence[np.ndarray], size: tuple[int, int, int]) -> np.ndarray:
    """Images as float64 ``(N, H, W, C)`` in 0-1 at one size (resized with Pillow when they
    differ; alpha dropped; grey repeated to RGB when the set has colour)."""
    from PIL import Image

    h, w, c = size
    out = np.empty((len(images), h, w, c), dtype=np.float64)
    for i, im in enumerate(images):
        a = im[:, :, None] if im.ndim == 2 else im
        a = a[:, :, :3] if a.shape[2] == 4 else a
        if a.shape[:2] != (h, w):
            mode = "L" if a.shape[2] == 1 else "RGB"
            pil = Image.fromarray(a[:, :, 0] if mode == "L" else a, mode)
            a = np.asarray(pil.resize((w, h), Image.Resampling.BICUBIC))
            a = a[:, :, None] if a.ndim == 2 else a
        if a.shape[2] != c:
            a = np.repeat(a, c, axis=2) if a.shape[2] == 1 else a.mean(axis=2, keepdims=True)
        out[i] = a.astype(np.float64) / 255.0
    return out


def _tiles(x: np.ndarray, tiles: int) -> list[np.ndarray]:
    """``(N, H, W, C)`` cut into a tiles x tiles grid, each flattened to ``(N, d)``."""
    n, h, w, _ = x.shape
    ys = np.linspace(0, h, min(tiles, h) + 1).astype(int)
    xs = np.linspace(0, w, min(tiles, w) + 1).astype(int)
    return [x[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1], :].reshape(n, -1)
            for i in range(len(ys) - 1) for j in range(len(xs) - 1)]


def tiled_l2_matrix(samples: np.ndarray, train: np.ndarray, tiles: int = TILES,
                    check: Callable[[], None] | None = None, chunk: int = 64) -> np.ndarray:
    """``(S, T)`` tiled L2 distances (Carlini et al. 2023) between float images in 0-1:
    the maximum over the grid's tiles of the per-tile root-mean-square difference."""
    t_tiles = _tiles(train, tiles)
    t_norms = [np.einsum("ij,ij->i", t, t) for t in t_tiles]
    out = np.empty((len(samples), len(train)), dtype=np.float64)
    for s0 in range(0, len(samples), chunk):
        if check is not None:
            check()
        s_tiles = _tiles(samples[s0:s0 + chunk], tiles)
        best = None
        for st, tt, tn in zip(s_tiles, t_tiles, t_norms, strict=True):
            sn = np.einsum("ij,ij->i", st, st)
            sq = np.maximum(sn[:, None] + tn[None, :] - 2.0 * (st @ tt.T), 0.0) / st.shape[1]
            best = sq if best is None else np.maximum(best, sq)
        assert best is not None
        out[s0:s0 + chunk] = np.sqrt(best)
    return out


def nearest_images(samples: Sequence[np.ndarray], train: Sequence[np.ndarray],
                   train_ids: Sequence[str], *, threshold: float = DEFAULT_IMAGE_THRESHOLD,
                   tiles: int = TILES, neighbours: int = NEIGHBOURS,
                   check: Callable[[], None] | None = None) -> MemorizationResult:
    """Each sample's nearest training image by tiled L2 (pixel space)."""
    if not samples or not train:
        raise ValueError("need samples and training images")
    size = common_size(list(train))
    s = to_float(samples, size)
    t = to_float(train, size)
    d = tiled_l2_matrix(s, t, tiles, check)
    j = np.argmin(d, axis=1)
    n = min(neighbours, d.shape[1])
    near = np.partition(d, n - 1, axis=1)[:, :n].mean(axis=1) if n > 1 else d[:, 0]
    pairs = [Pair(i, train_ids[int(j[i])], float(d[i, j[i]]),
                  {"relative": float(d[i, j[i]] / max(float(near[i]), 1e-12))})
             for i in range(len(samples))]
    return MemorizationResult(
        "image",
        f"tiled L2 (Carlini et al. 2023): the largest root-mean-square pixel difference over a "
        f"{tiles} x {tiles} grid of tiles, images compared at {size[1]} x {size[0]}",
        "0 = identical, 1 = opposite (pixel values 0-1)", threshold, pairs,
        _share([p.distance <= threshold for p in pairs]),
        info={"size": list(size), "tiles": tiles, "training_images": len(train),
              "relative_neighbours": n})


def nearest_features(samples: np.ndarray, train: np.ndarray, train_ids: Sequence[str], *,
                     threshold: float = DEFAULT_FEATURE_THRESHOLD, kind: str = "features",
                     space: str = "the plugin's feature space") -> MemorizationResult:
    """Each sample's nearest training example by cosine distance between embeddings."""
    a = np.asarray(samples, dtype=np.float64)
    b = np.asarray(train, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    d = 1.0 - a @ b.T
    j = np.argmin(d, axis=1)
    pairs = [Pair(i, train_ids[int(j[i])], float(max(d[i, j[i]], 0.0)))
             for i in range(len(a))]
    return MemorizationResult(kind, f"cosine distance in {space}",
                              "0 = same direction, 2 = opposite", threshold, pairs,
                              _share([p.distance <= threshold for p in pairs]),
                              info={"dimensions": int(a.shape[1])})


# ----------------------------------------------------------------------------------------------
# Sequences: text and music
# ----------------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words and punctuation marks with their character spans."""
    toks, spans = [], []
    for m in _WORD.finditer(text):
        toks.append(m.group())
        spans.append(m.span())
    return toks, spans


def fold(token: str) -> str:
    """A token as near-exact matching sees it: case-folded, accents and punctuation dropped
    (punctuation becomes one shared mark)."""
    t = unicodedata.normalize("NFKD", token.casefold())
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    return t if any(ch.isalnum() for ch in t) else "."


@dataclass
class Match:
    doc: int  # index of the training document
    start: int  # token index in the document
    sample_start: int  # token index in the sample
    length: int  # tokens matched (including tolerated substitutions)
    substitutions: int


class SequenceIndex:
    """Every ``n``-gram of a set of token sequences, to find long shared runs fast.

    Sequences are lists of hashable tokens (words, note events). :meth:`longest` finds the
    longest run a query shares with any document, extending each seed ``n``-gram both ways and
    tolerating up to ``max_subs`` substituted tokens per ``per`` tokens (0: exact)."""

    def __init__(self, docs: Sequence[Sequence[Hashable]], n: int = 8,
                 max_postings: int = 64) -> None:
        self.docs = [list(d) for d in docs]
        self.n = n
        self.index: dict[int, list[tuple[int, int]]] = {}
        for di, d in enumerate(self.docs):
            for i in range(len(d) - n + 1):
                lst = self.index.setdefault(hash(tuple(d[i:i + n])), [])
                if len(lst) < max_postings:
                    lst.append((di, i))

    def ngram_overlap(self, query: Sequence[Hashable]) -> float:
        """The share of the query's ``n``-grams found in the documents."""
        q = list(query)
        total = len(q) - self.n + 1
        if total <= 0:
            return 0.0
        hits = sum(hash(tuple(q[i:i + self.n])) in self.index for i in range(total))
        return hits / total

    def longest(self, query: Sequence[Hashable], max_subs: int = 0, per: int = 10
                ) -> Match | None:
        q = list(query)
        n = self.n
        best: Match | None = None
        i = 0
        while i <= len(q) - n:
            postings = self.index.get(hash(tuple(q[i:i + n])))
            step = 1
            if postings:
                for di, j in postings:
                    d = self.docs[di]
                    if d[j:j + n] != q[i:i + n]:
                        continue  # a hash collision
                    m = self._extend(q, d, i, j, max_subs, per)
                    m.doc = di
                    if best is None or m.length > best.length:
                        best = m
                if best is not None and best.sample_start + best.length > i + n:
                    step = max(1, best.sample_start + best.length - n - i + 1)
            i += step
        return best

    @staticmethod
    def _extend(q: list[Hashable], d: list[Hashable], i: int, j: int, max_subs: int,
                per: int) -> Match:
        n_seed = 1
        while i + n_seed < len(q) and j + n_seed < len(d) and q[i + n_seed] == d[j + n_seed]:
            n_seed += 1
        # backwards (exact), then forwards with tolerated substitutions
        b = 0
        while i - b - 1 >= 0 and j - b - 1 >= 0 and q[i - b - 1] == d[j - b - 1]:
            b += 1
        start_q, start_d, length, subs = i - b, j - b, b + n_seed, 0
        if max_subs:
            k = length
            pending = 0
            while start_q + k < len(q) and start_d + k < len(d):
                if q[start_q + k] == d[start_d + k]:
                    k += 1
                    if pending:
                        subs += pending
                        pending = 0
                    length = k
                    continue
                allowed = max_subs * max(1, (k + 1) // per)
                if subs + pending + 1 > allowed:
                    break
                pending += 1
                k += 1
        return Match(0, start_d, start_q, length, subs)


@dataclass
class TextDoc:
    id: str
    text: str


class TextCorpus:
    """A training corpus indexed for exact and near-exact long overlaps."""

    def __init__(self, docs: Sequence[TextDoc], n: int = 8) -> None:
        self.docs = list(docs)
        toks = [tokenize(d.text) for d in self.docs]
        self.tokens = [t for t, _ in toks]
        self.spans = [s for _, s in toks]
        self.exact = SequenceIndex(self.tokens, n)
        self.folded = SequenceIndex([[fold(t) for t in ts] for ts in self.tokens], n)

    def passage(self, doc: int, start: int, length: int, context: int = 0) -> str:
        spans = self.spans[doc]
        a = spans[max(0, start - context)][0]
        b = spans[min(len(spans) - 1, start + length - 1 + context)][1]
        return self.docs[doc].text[a:b]


def nearest_texts(samples: Sequence[str], corpus: TextCorpus, *,
                  min_tokens: int = DEFAULT_TEXT_TOKENS, max_subs: int = 1,
                  check: Callable[[], None] | None = None) -> MemorizationResult:
    """Each sample's longest exact and near-exact run shared with the training corpus.

    The distance reported is minus the longest near-exact run in tokens (so lower is closer);
    a sample is counted as copied when its longest run is ``min_tokens`` or more."""
    pairs = []
    for i, text in enumerate(samples):
        if check is not None:
            check()
        toks, spans = tokenize(text)
        exact = corpus.exact.longest(toks)
        near = corpus.folded.longest([fold(t) for t in toks], max_subs=max_subs)
        best = near if near is not None and (exact is None or near.length > exact.length) \
            else exact
        overlap = corpus.exact.ngram_overlap(toks)
        if best is None:
            pairs.append(Pair(i, "", 0.0, {"exact_tokens": 0, "near_tokens": 0,
                                           "ngram_overlap": overlap}))
            continue
        a = spans[best.sample_start][0]
        b = spans[min(len(spans) - 1, best.sample_start + best.length - 1)][1]
        pairs.append(Pair(i, corpus.docs[best.doc].id, -float(best.length), {
            "exact_tokens": exact.length if exact else 0,
            "near_tokens": near.length if near else 0,
            "substitutions": best.substitutions, "ngram_overlap": overlap,
            "sample_passage": text[a:b],
            "training_passage": corpus.passage(best.doc, best.start, best.length)}))
    return MemorizationResult(
        "text",
        f"longest run of words shared with the training text (exact, or near-exact: case, "
        f"accents and punctuation ignored, up to {max_subs} substituted word per 10); "
        f"copied when {min_tokens} or more words",
        "minus the words in the longest shared run", -float(min_tokens), pairs,
        _share([-p.distance >= min_tokens for p in pairs]),
        info={"ngram": corpus.exact.n, "documents": len(corpus.docs)})


def note_tokens(notes: Sequence[Any], grid: float = 0.25) -> list[tuple[int, int]]:
    """Notes (pitch, start, duration) as transposition-invariant tokens: (interval to the
    previous note, duration in ``grid`` beats); notes sorted by start, then pitch."""
    seq = sorted(((float(s), int(p), float(d)) for p, s, d in notes))
    out = []
    prev = None
    for _s, p, d in seq:
        out.append((0 if prev is None else p - prev, max(1, round(d / grid))))
        prev = p
    return out


def nearest_music(samples: Sequence[Sequence[Any]], train: Sequence[Sequence[Any]],
                  train_ids: Sequence[str], *, min_notes: int = DEFAULT_MUSIC_NOTES,
                  n: int = 8) -> MemorizationResult:
    """Each sample's longest run of notes (pitch interval and rhythm) shared with a training
    piece; copied when ``min_notes`` or more."""
    index = SequenceIndex([note_tokens(t) for t in train], n)
    pairs = []
    for i, s in enumerate(samples):
        toks = note_tokens(s)
        m = index.longest(toks)
        overlap = index.ngram_overlap(toks)
        if m is None:
            pairs.append(Pair(i, "", 0.0, {"notes": 0, "ngram_overlap": overlap}))
        else:
            pairs.append(Pair(i, train_ids[m.doc], -float(m.length), {
                "notes": m.length, "ngram_overlap": overlap, "sample_start": m.sample_start,
                "training_start": m.start}))
    return MemorizationResult(
        "music", f"longest run of notes (pitch interval, duration) shared with a training "
        f"piece; copied when {min_notes} or more", "minus the notes in the longest shared run",
        -float(min_notes), pairs, _share([-p.distance >= min_notes for p in pairs]),
        info={"ngram": n, "pieces": len(train)})


# ----------------------------------------------------------------------------------------------
# Levels
# ----------------------------------------------------------------------------------------------
def _windows(level: Sequence[str], k: int) -> list[str]:
    h = len(level)
    w = len(level[0]) if h else 0
    kh, kw = min(k, h), min(k, w)
    return ["\n".join(row[x:x + kw] for row in level[y:y + kh])
            for y in range(h - kh + 1) for x in range(w - kw + 1)]


def nearest_levels(samples: Sequence[Sequence[str]], train: Sequence[Sequence[str]],
                   train_ids: Sequence[str], *, window: int = 8,
                   threshold: float = DEFAULT_LEVEL_SHARE) -> MemorizationResult:
    """For each sample, the share of its ``window x window`` tile windows found verbatim in
    the training levels, and the training level that shares the most; copied when the share
    is ``threshold`` or more. The distance reported is one minus that share."""
    owner: dict[str, set[int]] = {}
    for ti, lv in enumerate(train):
        for wnd in _windows(lv, window):
            owner.setdefault(wnd, set()).add(ti)
    pairs = []
    for i, s in enumerate(samples):
        wins = _windows(s, window)
        if not wins:
            pairs.append(Pair(i, "", 1.0, {"share": 0.0, "windows": 0}))
            continue
        found = [owner.get(w_) for w_ in wins]
        share = sum(f is not None for f in found) / len(wins)
        per: dict[int, int] = {}
        for f in found:
            for ti in f or ():
                per[ti] = per.get(ti, 0) + 1
        best = max(per, key=lambda t: per[t]) if per else None
        pairs.append(Pair(i, train_ids[best] if best is not None else "", 1.0 - share,
                          {"share": share, "windows": len(wins),
                           "best_level_share": per.get(best, 0) / len(wins) if best is not None
                           else 0.0}))
    return MemorizationResult(
        "level", f"share of {window} x {window} tile windows found verbatim in the training "
        f"levels; copied when {threshold:.0%} or more", "1 - share of windows found",
        1.0 - threshold, pairs, _share([p.distance <= 1.0 - threshold + 1e-12 for p in pairs]),
        info={"window": window, "levels": len(train)})
