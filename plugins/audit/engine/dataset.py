"""Dataset audit: balance, duplicates, train/held-out leakage and text statistics.

- Balance: the share of each class (first-level sub-folders of an image folder) or of each
  value of the categorical columns of label CSVs, with Wilson intervals, the ratio of the
  largest to the smallest class, and the normalised entropy (1 = perfectly even).
- Duplicates: exact ones by content hash; near ones by a 64-bit perceptual hash for images
  (``imagehash.phash``: the DCT of a 32 x 32 grey thumbnail, robust to re-encoding, resizing
  and small edits) finds candidates within ``max_bits`` differing bits, and a pixel check
  confirms them: 32 x 32 grey thumbnails, each standardised (zero mean, unit variance, so a
  brightness or contrast change does not count), differ by at most ``near_pixel`` root mean
  square. On small or simple images (handwritten digits) many distinct images share a hash;
  the pixel check keeps them apart. Texts: by
  MinHash over word 5-shingles for text (``datasketch``'s MinHashLSH finds candidates, the
  exact Jaccard similarity of the shingle sets confirms them).
- Leakage: examples on both sides of a run's train/held-out split with the same content, from
  the run's manifest alone, and near duplicates across the split when the data can be read.
  A held-out example with a copy in training makes every held-out figure (validation loss,
  membership attacks) look better than it is.
- Text statistics: size, vocabulary, line lengths, the most repeated lines (boilerplate).

No torch; numpy, Pillow, imagehash, datasketch.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio import manifest as manifest_mod
from studio.errors import UserError

from .stats import wilson

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TEXT_EXTS = (".txt", ".md", ".text")
NEAR_IMAGE_BITS = 6  # of 64
NEAR_PIXEL = 0.1  # RMS of standardised 32 x 32 thumbnails (re-encodes and edits: <= 0.05;
#                   distinct digits that share a hash: >= 0.17; bench/audit_planted.py)
THUMB = 32
NEAR_TEXT_JACCARD = 0.7  # of word 5-shingles: about one word in 30 changed
SHINGLE = 5
MAX_CATEGORIES = 50  # a CSV column with more distinct values is not a category

Progress = Callable[[int, int, str], None]


# ----------------------------------------------------------------------------------------------
# Balance
# ----------------------------------------------------------------------------------------------
def balance(counts: dict[str, int], what: str) -> dict[str, Any]:
    """Shares of each class with Wilson intervals, max/min ratio and normalised entropy."""
    n = sum(counts.values())
    rows = [{"name": k, **wilson(v, n).to_json()}
            for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    nz = [v for v in counts.values() if v > 0]
    ent = -sum(v / n * math.log(v / n) for v in nz) if n else 0.0
    return {"what": what, "total": n, "classes": rows,
            "imbalance_ratio": (max(nz) / min(nz)) if nz else float("nan"),
            "evenness": ent / math.log(len(counts)) if len(counts) > 1 and n else 1.0,
            "method": "share of each class with a 95% Wilson interval; evenness is the "
                      "entropy of the shares divided by its maximum (1 = all classes equal)"}


def image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def image_balance(root: Path, files: Sequence[Path]) -> dict[str, Any] | None:
    """Class balance of an image folder whose first-level sub-folders are classes (None when
    there are fewer than two)."""
    counts: Counter[str] = Counter()
    for f in files:
        rel = f.relative_to(root).parts
        if len(rel) > 1:
            counts[rel[0]] += 1
    if len(counts) < 2:
        return None
    loose = sum(1 for f in files if len(f.relative_to(root).parts) == 1)
    out = balance(dict(counts), "images per class (sub-folder)")
    out["outside_classes"] = loose
    return out


def csv_balance(path: Path, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """Balance of each categorical column of a label CSV (at most :data:`MAX_CATEGORIES`
    distinct values; ``columns`` narrows it)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {path.name} as CSV: {exc}") from exc
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise UserError(f"{path.name} has no column {', '.join(missing)} (its columns: "
                            f"{', '.join(header)})")
    out: dict[str, Any] = {"file": path.name, "rows": len(rows), "columns": {}}
    for col in columns or header:
        values = Counter((r.get(col) or "").strip() for r in rows)
        if not columns and (len(values) > MAX_CATEGORIES or len(values) < 2
                            or len(values) > 0.5 * max(len(rows), 1)):
            continue
        out["columns"][col] = balance(dict(values), f"rows per value of {col}")
    return out


# ----------------------------------------------------------------------------------------------
# Duplicates
# ----------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return manifest_mod.sha256_file(path)


def groups_from_pairs(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected groups (size >= 2) of ``n`` items linked by ``pairs`` (union-find)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def exact_groups(hashes: Sequence[str]) -> list[list[int]]:
    by: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        by.setdefault(h, []).append(i)
    return sorted((g for g in by.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


@dataclass
class ImageSignatures:
    """Perceptual hashes (``uint64``) and standardised thumbnails of the readable images."""

    hashes: np.ndarray
    thumbs: np.ndarray  # (N, THUMB * THUMB) float32
    ok: list[int]  # indices of the readable files
    problems: list[str]

    def pairs(self, max_bits: int, max_pixel: float, other: ImageSignatures | None = None
              ) -> list[tuple[int, int, int, float]]:
        """Near-duplicate pairs (i, j, bits, pixel distance), indices into ``ok``."""
        b = None if other is None else other.hashes
        t2 = self.thumbs if other is None else other.thumbs
        out = []
        for i, j, bits in hamming_pairs(self.hashes, b, max_bits):
            d = float(np.sqrt(np.mean((self.thumbs[i] - t2[j]) ** 2)))
            if d <= max_pixel:
                out.append((i, j, bits, d))
        return out


def _thumb(im: Any) -> np.ndarray:
    from PIL import Image

    a = np.asarray(im.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR),
                   dtype=np.float32).ravel()
    return (a - a.mean()) / (a.std() + 1e-3)


def image_hashes(files: Sequence[Path], check: Callable[[], None] | None = None,
                 progress: Progress | None = None) -> ImageSignatures:
    """Perceptual hashes and thumbnails of image files (unreadable ones are listed in
    ``problems``)."""
    import imagehash
    from PIL import Image

    out, thumbs, ok, problems = [], [], [], []
    for i, f in enumerate(files):
        if check is not None and i % 64 == 0:
            check()
        try:
            with Image.open(f) as im:
                rgb = im.convert("RGB")
                h = imagehash.phash(rgb)
                thumbs.append(_thumb(rgb))
        except (OSError, ValueError, SyntaxError) as exc:
            problems.append(f"{f.name}: not a readable image ({type(exc).__name__})")
            continue
        bits = np.packbits(np.asarray(h.hash, dtype=np.uint8).ravel())
        out.append(int.from_bytes(bits.tobytes(), "big"))
        ok.append(i)
        if progress is not None and (i % 64 == 0 or i == len(files) - 1):
            progress(i + 1, len(files), "hashing images")
    return ImageSignatures(np.array(out, dtype=np.uint64),
                           np.array(thumbs, dtype=np.float32).reshape(len(ok), THUMB * THUMB),
                           ok, problems)


def hamming_pairs(a: np.ndarray, b: np.ndarray | None, max_bits: int, chunk: int = 2048
                  ) -> list[tuple[int, int, int]]:
    """Pairs (i, j, bits) of 64-bit hashes within ``max_bits`` differing bits: within ``a``
    (i < j) when ``b`` is None, else between ``a`` and ``b``."""
    other = a if b is None else b
    out = []
    for s in range(0, len(a), chunk):
        x = a[s:s + chunk, None] ^ other[None, :]
        d = np.bitwise_count(x)
        ii, jj = np.nonzero(d <= max_bits)
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            gi = s + i
            if b is None and j <= gi:
                continue
            out.append((gi, j, int(d[i, j])))
    return out


def shingles(text: str, k: int = SHINGLE) -> set[str]:
    words = re.findall(r"\w+", text.casefold())
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_text_pairs(docs: Sequence[str], threshold: float = NEAR_TEXT_JACCARD,
                    num_perm: int = 128, check: Callable[[], None] | None = None
                    ) -> list[tuple[int, int, float]]:
    """Pairs of documents whose word 5-shingle sets have Jaccard similarity >= ``threshold``
    (MinHash LSH for candidates, exact Jaccard to confirm)."""
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(d) for d in docs]
    # banding tuned for recall (a missed duplicate is worse than a candidate the exact
    # Jaccard check then drops)
    lsh = MinHashLSH(threshold=threshold * 0.8, num_perm=num_perm, weights=(0.1, 0.9))
    hashes = []
    for i, s in enumerate(sets):
        if check is not None and i % 256 == 0:
            check()
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([w.encode("utf-8") for w in s])
        hashes.append(m)
        if s:
            lsh.insert(str(i), m)
    out = []
    for i, m in enumerate(hashes):
        if not sets[i]:
            continue
        for key in lsh.query(m):
            j = int(key)
            if j > i:
                sim = jaccard(sets[i], sets[j])
                if sim >= threshold:
                    out.append((i, j, sim))
    return out


def split_documents(text: str, min_chars: int = 200) -> list[tuple[int, str]]:
    """A long text cut into paragraphs (blank-line separated; short ones joined to the next)
    with their character offsets: the units near-duplicate search compares in one corpus file."""
    out: list[tuple[int, str]] = []
    start, buf_start, buf = 0, None, []
    for m in re.finditer(r"\n\s*\n", text + "\n\n"):
        para = text[start:m.start()]
        if para.strip():
            if buf_start is None:
                buf_start = start
            buf.append(para)
            if sum(len(p) for p in buf) >= min_chars:
                out.append((buf_start, "\n\n".join(buf)))
                buf, buf_start = [], None
        start = m.end()
    if buf and buf_start is not None:
        out.append((buf_start, "\n\n".join(buf)))
    return out


# ----------------------------------------------------------------------------------------------
# Text statistics
# ----------------------------------------------------------------------------------------------
def text_stats(texts: dict[str, str], top: int = 20) -> dict[str, Any]:
    words: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    n_chars = n_lines = non_ascii = 0
    lengths = []
    for text in texts.values():
        n_chars += len(text)
        non_ascii += sum(1 for ch in text if ord(ch) > 127)
        for line in text.splitlines():
            n_lines += 1
            lengths.append(len(line))
            s = line.strip()
            if len(s) >= 20:
                lines[s] += 1
        words.update(w.casefold() for w in re.findall(r"\w+", text))
    n_words = sum(words.values())
    repeated = [{"line": line[:120], "times": c} for line, c in lines.most_common(top) if c > 1]
    return {"files": len(texts), "characters": n_chars, "words": n_words, "lines": n_lines,
            "vocabulary": len(words),
            "type_token_ratio": len(words) / n_words if n_words else 0.0,
            "non_ascii_share": non_ascii / n_chars if n_chars else 0.0,
            "line_length": {"mean": float(np.mean(lengths)) if lengths else 0.0,
                            "p95": float(np.percentile(lengths, 95)) if lengths else 0.0,
                            "max": max(lengths, default=0)},
            "top_words": [{"word": w, "count": c} for w, c in words.most_common(top)],
            "repeated_lines": repeated,
            "repeated_line_share": (sum(c for c in lines.values() if c > 1) / n_lines
                                    if n_lines else 0.0)}


# ----------------------------------------------------------------------------------------------
# A folder, all at once
# ----------------------------------------------------------------------------------------------
@dataclass
class DatasetReport:
    name: str
    files: int
    kinds: dict[str, int]
    balance: list[dict[str, Any]] = field(default_factory=list)
    exact_duplicates: list[list[str]] = field(default_factory=list)
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    text: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def audit_folder(root: Path, *, near_bits: int = NEAR_IMAGE_BITS,
                 near_pixel: float = NEAR_PIXEL,
                 near_jaccard: float = NEAR_TEXT_JACCARD, label_columns: Sequence[str] = (),
                 check: Callable[[], None] | None = None,
                 progress: Progress | None = None) -> DatasetReport:
    """Everything about a data folder (or one file): class balance of images and label CSVs,
    exact and near duplicates of images and texts, text statistics. Only reads."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"{root.name or root} does not exist: choose a data folder")
    base = root if root.is_dir() else root.parent
    all_files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()
                                                      and not p.name.startswith("."))
    images = [p for p in all_files if p.suffix.lower() in IMAGE_EXTS]
    texts = [p for p in all_files if p.suffix.lower() in TEXT_EXTS]
    csvs = [p for p in all_files if p.suffix.lower() == ".csv"]
    if not (images or texts or csvs):
        raise UserError(f"{root.name} holds no images, text files or CSV files to audit")
    rep = DatasetReport(root.name, len(all_files),
                        {"images": len(images), "texts": len(texts), "csv": len(csvs)})

    def rel(p: Path) -> str:
        return p.relative_to(base).as_posix()

    # exact duplicates of every file
    hashes = []
    for i, f in enumerate(all_files):
        if check is not None and i % 64 == 0:
            check()
        hashes.append(sha256(f))
        if progress is not None and (i % 64 == 0 or i == len(all_files) - 1):
            progress(i + 1, len(all_files), "hashing files")
    rep.exact_duplicates = [[rel(all_files[i]) for i in g] for g in exact_groups(hashes)]
    rep.methods["exact duplicates"] = "identical bytes (SHA-256)"

    if images and root.is_dir():
        b = image_balance(root, images)
        if b is not None:
            rep.balance.append(b)
        sig = image_hashes(images, check, progress)
        rep.problems += sig.problems
        digest = dict(zip(all_files, hashes, strict=True))
        for i, j, bits, dist in sig.pairs(near_bits, near_pixel):
            a, b2 = images[sig.ok[i]], images[sig.ok[j]]
            if digest[a] == digest[b2]:
                continue  # already an exact duplicate
            rep.near_duplicates.append({"kind": "image", "a": rel(a), "b": rel(b2),
                                        "differing_bits": bits, "pixel": round(dist, 4)})
        rep.methods["near-duplicate images"] = (
            f"perceptual hash (pHash, 64 bits) within {near_bits} bits, confirmed by "
            f"standardised 32 x 32 thumbnails within {near_pixel} RMS")
    for c in csvs:
        try:
            rep.balance.append(csv_balance(c, label_columns or None))
        except UserError as exc:
            if label_columns:
                raise
            rep.problems.append(str(exc))
    if texts:
        contents: dict[str, str] = {}
        for f in texts:
            try:
                contents[rel(f)] = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                rep.problems.append(f"{rel(f)}: not UTF-8 text")
        rep.text = text_stats(contents)
        units: list[tuple[str, str]] = []
        for name, text in contents.items():
            if len(contents) >= 2 and len(text) < 20_000:
                units.append((name, text))
            else:
                units += [(f"{name} (from character {off})", para)
                          for off, para in split_documents(text)]
        for i, j, sim in near_text_pairs([u[1] for u in units], near_jaccard, check=check):
            if units[i][1] == units[j][1] and len(contents) >= 2:
                continue  # identical files are already exact duplicates
            rep.near_duplicates.append({"kind": "text", "a": units[i][0], "b": units[j][0],
                                        "jaccard": round(sim, 4)})
        rep.methods["near-duplicate texts"] = (
            f"Jaccard similarity of word {SHINGLE}-shingles >= {near_jaccard} (MinHash LSH "
            "candidates, exact check); long files are compared paragraph by paragraph")
    return rep


def leakage(run_dir: Path, *, near_bits: int = NEAR_IMAGE_BITS, near_pixel: float = NEAR_PIXEL,
            near_jaccard: float = NEAR_TEXT_JACCARD,
            check: Callable[[], None] | None = None) -> dict[str, Any]:
    """Train/held-out overlap of a run: held-out examples whose content (file hash and part)
    also trained the model, and, when the files can be read, near duplicates across the
    split."""
    m = manifest_mod.read(run_dir)
    if m is None:
        raise UserError(f"{Path(run_dir).name} is not a studio run (no readable run.json)")
    rows = list(manifest_mod.read_examples(run_dir))
    if not rows:
        raise UserError(f"the run {Path(run_dir).name} did not record its examples")
    train = [r for r in rows if r.split == manifest_mod.TRAIN]
    held = [r for r in rows if r.split != manifest_mod.TRAIN]
    by_content: dict[tuple[str, str], list[str]] = {}
    for r in train:
        by_content.setdefault((r.sha256, r.part), []).append(r.id)
    exact = [{"held_out": r.id, "train": by_content[(r.sha256, r.part)][:5]}
             for r in held if (r.sha256, r.part) in by_content]
    out: dict[str, Any] = {
        "train": len(train), "held_out": len(held), "exact": exact,
        "exact_share": wilson(len(exact), len(held)).to_json() if held else None,
        "near": [], "near_checked": False,
        "method": "same file content (SHA-256) and part on both sides of the split"}
    ds = m.dataset(manifest_mod.TRAIN)
    loc = Path(ds.location) if ds is not None else None
    whole_files = all(not r.part for r in rows)
    if not held or loc is None or not loc.exists() or not whole_files:
        return out

    def path(r: manifest_mod.ExampleRow) -> Path:
        assert loc is not None
        return loc / r.path if r.path else loc

    if all(r.path.lower().endswith(IMAGE_EXTS) for r in rows):
        ts = image_hashes([path(r) for r in train], check)
        hs = image_hashes([path(r) for r in held], check)
        exact_ids = {e["held_out"] for e in exact}
        for i, j, bits, _d in hs.pairs(near_bits, near_pixel, ts):
            if held[hs.ok[i]].id in exact_ids:
                continue
            out["near"].append({"held_out": held[hs.ok[i]].id, "train": train[ts.ok[j]].id,
                                "differing_bits": bits})
        out["near_checked"] = True
        out["near_method"] = (f"perceptual hash within {near_bits} of 64 bits, confirmed by "
                              f"thumbnails within {near_pixel} RMS")
    elif all(r.path.lower().endswith(TEXT_EXTS) for r in rows):
        docs = [path(r).read_text(encoding="utf-8", errors="replace") for r in train + held]
        n_train = len(train)
        exact_ids = {e["held_out"] for e in exact}
        for i, j, sim in near_text_pairs(docs, near_jaccard, check=check):
            if (i < n_train) == (j < n_train):
                continue
            t, h = (i, j) if i < n_train else (j, i)
            if held[h - n_train].id in exact_ids:
                continue
            out["near"].append({"held_out": held[h - n_train].id, "train": train[t].id,
                                "jaccard": round(sim, 4)})
        out["near_checked"] = True
        out["near_method"] = f"word {SHINGLE}-shingle Jaccard >= {near_jaccard}"
    held_near = {e["held_out"] for e in out["near"]}
    out["near_share"] = wilson(len(held_near), len(held)).to_json()
    return out

