"""Training data: folders of MIDI (melody or piano-roll phrases) or audio (log-mel clips).

Each file gets a line in a per-file report: how many phrases it gave, or why it was skipped. The
source folder is only read. Phrases keep the index of their file so the hold-out split is by file
(a phrase and its overlapping neighbour never land on both sides), and a name for the piece of
the file they are ("bars 9-10", "seconds 2.05-4.10"), so a run can record exactly which examples
it learnt from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.music.engine import midi as midi_mod
from plugins.music.engine.metre import FOUR_FOUR, Metre, MetreError, describe
from plugins.music.engine.phrase import (
    FIRST_PITCH_TOKEN,
    HOLD,
    MAX_PITCH,
    MIN_PITCH,
    REST,
    ROLL_LOW,
    ROLL_PITCHES,
    STEPS_PER_BAR,
    notes_to_roll,
)
from studio.errors import UserError

if TYPE_CHECKING:
    from studio.cache import Entry, PrepCache, Writer

MODES = ("melody", "pianoroll", "audio")
AUTO = ("auto", "", "any")


@dataclass
class FileReport:
    path: Path
    phrases: int = 0
    reason: str = ""  # why the file gave nothing ("" when it was used)


@dataclass
class PhraseSet:
    """Phrases ready for a model.

    ``data`` is int64 tokens ``(N, steps)`` for melodies, uint8 ``(N, 2, 96, steps)`` for
    piano-rolls, float32 ``(N, 1, n_mels, frames)`` in [0, 1] for audio.
    """

    mode: str
    bars: int
    data: np.ndarray
    file_index: np.ndarray
    files: list[Path]
    reports: list[FileReport] = field(default_factory=list)
    root: Path | None = None
    notes: str = ""  # extra lines for the report (e.g. phrases dropped and why)
    parts: list[str] = field(default_factory=list)  # per phrase: which piece of its file
    metre: str = "4/4"  # the phrases' time signature (melody and piano-roll phrases)
    hashes: dict[Path, str] | None = None  # sha256 of each file, when they were hashed

    def __post_init__(self) -> None:
        if not self.parts:  # sets built by hand (tests, benches): number phrases per file
            seen: dict[int, int] = {}
            for i in self.file_index.tolist():
                seen[i] = seen.get(i, 0) + 1
                self.parts.append(f"phrase {seen[i]}")

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def skipped(self) -> list[FileReport]:
        return [r for r in self.reports if r.reason]

    def report(self, limit: int = 50) -> str:
        used = [r for r in self.reports if not r.reason]
        what = f"{self.bars}-bar {self.mode} phrases in {self.metre}" if self.mode != "audio" \
            else "audio clips"
        lines = [f"{len(self)} {what} from {len(used)} of {len(self.reports)} file(s) in "
                 f"{self.root}"]
        if self.notes:
            lines.append(self.notes)
        skipped = self.skipped
        if skipped:
            lines.append(f"{len(skipped)} file(s) skipped:")
            lines += [f"  {r.path.name}: {r.reason}" for r in skipped[:limit]]
            if len(skipped) > limit:
                lines.append(f"  … and {len(skipped) - limit} more")
        return "\n".join(lines)

    def subset(self, mask: np.ndarray) -> PhraseSet:
        parts = [p for p, keep in zip(self.parts, mask.tolist(), strict=True) if keep]
        return PhraseSet(self.mode, self.bars, self.data[mask], self.file_index[mask], self.files,
                         self.reports, self.root, self.notes, parts, self.metre)

    def held_out_mask(self, holdout: float, seed: int = 0) -> np.ndarray:
        """Per phrase, whether it is held out: every phrase of a fixed, seeded ``holdout``
        fraction of the files (by file, so overlapping neighbours never straddle the split)."""
        return np.isin(self.file_index, held_out_files(len(self.files), holdout, seed))

    def split(self, holdout: float, seed: int = 0) -> tuple[PhraseSet, PhraseSet]:
        """(train, held-out) by file: a fixed, seeded ``holdout`` fraction of files is held out."""
        mask = self.held_out_mask(holdout, seed)
        return self.subset(~mask), self.subset(mask)


#: bump when what a file becomes (phrases, clips, reports) changes: older cache entries miss
CACHE_FORMAT = 1


def cached_phrases(cache: PrepCache | None, root: Path, exts: tuple[str, ...],
                   settings: Mapping[str, Any], load: Callable[[], PhraseSet],
                   progress: Callable[[int, int], None] | None = None,
                   check: Callable[[], None] | None = None) -> PhraseSet:
    """``load()``'s phrases, through the workspace's prepared-data cache: the files under
    ``root`` are hashed and, when their contents and ``settings`` match a set made before, it
    is read back instead of parsing every MIDI file or decoding every audio file again. The
    result carries the files' hashes (the run manifest needs them)."""
    if cache is None or not cache.enabled:
        return load()
    from studio.cache import key_of
    from studio.manifest import sha256_file

    root = Path(root).expanduser()
    files = scan(root, exts)
    hashes: dict[Path, str] = {}
    for i, f in enumerate(files):
        if check is not None:
            check()
        hashes[f] = sha256_file(f)
        if progress is not None and (i % 64 == 0 or i == len(files) - 1):
            progress(i + 1, len(files))
    key = key_of("music-phrases", {**settings, "format": CACHE_FORMAT},
                 (f"{_rel(f, root)}:{h}" for f, h in hashes.items()))
    hit = cache.load("music-phrases", key, lambda e: _phrases_from(e, root, hashes))
    if hit is not None:
        return hit
    phrases = load()
    phrases.hashes = {f: hashes[f] for f in phrases.files if f in hashes}
    if len(phrases.hashes) == len(phrases.files):
        cache.put("music-phrases", key, lambda w: _fill(w, phrases, root))
    return phrases


def _rel(f: Path, root: Path) -> str:
    return f.relative_to(root).as_posix() if f != root else f.name


def _fill(w: Writer, ps: PhraseSet, root: Path) -> None:
    w.array("data", ps.data)
    w.array("file_index", ps.file_index)
    w.meta.update(mode=ps.mode, bars=ps.bars, files=[_rel(f, root) for f in ps.files],
                  reports=[[_rel(r.path, root), r.phrases, r.reason] for r in ps.reports],
                  notes=ps.notes, parts=ps.parts, metre=ps.metre)


def _phrases_from(e: Entry, root: Path, hashes: dict[Path, str]) -> PhraseSet:
    m = e.meta
    base = root if root.is_dir() else root.parent
    files = [base / rel for rel in m["files"]]
    data, index = e.array("data"), e.array("file_index")
    if len(data) != len(index) or len(index) != len(m["parts"]) \
            or (len(index) and int(index.max()) >= len(files)):
        raise ValueError("damaged cache entry")
    reports = [FileReport(base / rel, int(n), str(why)) for rel, n, why in m["reports"]]
    return PhraseSet(str(m["mode"]), int(m["bars"]), data, index.astype(np.int64), files,
                     reports, root, str(m["notes"]), list(m["parts"]), str(m["metre"]),
                     {f: hashes[f] for f in files})


def held_out_files(n_files: int, holdout: float, seed: int = 0) -> np.ndarray:
    """Indices of the held-out files: the first ``round(n * holdout)`` of a seeded permutation
    (at least one when ``holdout > 0`` and there are two or more files)."""
    if holdout <= 0 or n_files < 2:
        return np.zeros(0, dtype=np.int64)
    k = min(n_files - 1, max(1, int(round(n_files * holdout))))
    return np.sort(np.random.default_rng(seed).permutation(n_files)[:k])


def scan(root: Path, exts: tuple[str, ...]) -> list[Path]:
    """Files with one of ``exts`` under ``root`` (recursive, sorted, hidden ones ignored)."""
    if not root.exists():
        raise UserError(f"the data folder {root} does not exist")
    if root.is_file():
        return [root] if root.suffix.lower() in exts else []
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames)
                  if not f.startswith(".") and f.lower().endswith(exts)]
    return files


def usable_melody(tokens: np.ndarray, min_notes: int = 2, max_silence: float = 0.5) -> str:
    """"" when a melody phrase is worth training on, else why not."""
    onsets = int((tokens >= FIRST_PITCH_TOKEN).sum())
    if onsets < min_notes:
        return "fewer than two notes"
    if (tokens == REST).mean() > max_silence:
        return "mostly silent"
    return ""


def load_midi_folder(
    root: str | os.PathLike[str],
    bars: int = 2,
    mode: str = "melody",
    melody: str = "auto",
    hop_bars: int = 1,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
    metre: str | Metre = FOUR_FOUR,
    strict: bool = False,
) -> PhraseSet:
    """Phrases from every MIDI file under ``root`` (melody tokens or piano-rolls).

    ``metre`` is the phrases' metre, or ``"auto"``: the one most of the data is in (see
    :func:`~plugins.music.engine.midi.best_metre`). Files in metres whose bars do not fit it
    are skipped with their metre named, and the report says which ``--metre`` would take them.
    ``strict`` keeps only bars exactly as long as the metre's (how runs saved before metres cut
    their data: resuming one must see the same phrases).

    Raises:
        UserError: the folder is missing, has no MIDI files, or gives no phrases at all.
    """
    if mode not in ("melody", "pianoroll"):
        raise UserError(f"MIDI data gives melody or pianoroll phrases, not {mode}")
    root = Path(root).expanduser()
    files = scan(root, midi_mod.MIDI_EXTS)
    if not files:
        raise UserError(f"{root} has no MIDI files (looked for {', '.join(midi_mod.MIDI_EXTS)}, "
                        "including sub-folders)")
    reports = [FileReport(f) for f in files]
    pieces: dict[int, midi_mod.Piece] = {}
    for i, f in enumerate(files):
        if check is not None:
            check()
        try:
            pieces[i] = midi_mod.read_midi(f)
        except midi_mod.MidiError as exc:
            reports[i].reason = str(exc)
        if progress is not None and (i % 16 == 0 or i == len(files) - 1):
            progress(i + 1, len(files))
    chosen = _choose_metre(metre, list(pieces.values()), bars)
    steps = bars * chosen.steps_per_bar
    rows: list[np.ndarray] = []
    index: list[int] = []
    parts: list[str] = []
    dropped: dict[str, int] = {}
    elsewhere: dict[str, int] = {}  # files left out for their metre, by the --metre they need
    for i, piece in pieces.items():
        rep = reports[i]
        try:
            starts = piece.bar_starts(bars, hop_bars, chosen, strict)
            if not starts:
                rep.reason, other = _no_phrase_reason(piece, bars, chosen, strict)
                if other:
                    elsewhere[other] = elsewhere.get(other, 0) + 1
                continue
            if mode == "melody":
                windows = midi_mod.melody_tokens(piece, bars, melody, hop_bars, chosen, strict)
                for start, tokens in zip(starts, windows, strict=True):
                    why = usable_melody(tokens)
                    if why:
                        dropped[why] = dropped.get(why, 0) + 1
                        continue
                    rows.append(tokens)
                    index.append(i)
                    parts.append(bar_span(start, bars) if strict
                                 else piece.bar_span(start, bars, chosen))
                    rep.phrases += 1
            else:
                windows = midi_mod.pianoroll_windows(piece, bars, hop_bars, chosen, strict)
                for start, window in zip(starts, windows, strict=True):
                    if not len(window):
                        dropped["silent"] = dropped.get("silent", 0) + 1
                        continue
                    rows.append(np.asarray(notes_to_roll(window, steps), dtype=np.uint8))
                    index.append(i)
                    parts.append(bar_span(start, bars) if strict
                                 else piece.bar_span(start, bars, chosen))
                    rep.phrases += 1
            if rep.phrases == 0:
                rep.reason = "no usable phrase (too few notes or mostly silent)"
        except midi_mod.MidiError as exc:
            rep.reason = str(exc)
    lines = []
    if dropped:
        lines.append("phrases left out: " + ", ".join(f"{n} {why}" for why, n in dropped.items()))
    if elsewhere:
        names = list(elsewhere)
        which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        lines.append(f"{sum(elsewhere.values())} file(s) in other metres ("
                     + ", ".join(f"{n} in {m}" for m, n in elsewhere.items())
                     + f"): train with --metre {which} to learn from them")
    if not rows:
        reasons = "; ".join(f"{r.path.name}: {r.reason}" for r in reports[:3] if r.reason)
        raise UserError(f"none of the {len(files)} MIDI files in {root} gave a {bars}-bar "
                        f"{mode} phrase in {chosen} ({reasons}{' …' if len(reports) > 3 else ''})"
                        + (f". {lines[-1]}" if elsewhere else ""))
    data = np.stack(rows)
    if mode == "melody":
        data = data.astype(np.int64)
    return PhraseSet(mode, bars, data, np.asarray(index, dtype=np.int64), files, reports, root,
                     "\n".join(lines), parts, str(chosen))


def _choose_metre(metre: str | Metre, pieces: list[midi_mod.Piece], bars: int) -> Metre:
    """The phrases' metre: the one asked for, or (``auto``) the data's best (4/4 when no file
    has phrases in any metre: each file's report line then says why)."""
    if isinstance(metre, Metre) or str(metre).strip().lower() not in AUTO:
        try:
            return Metre.parse(metre)
        except MetreError as exc:
            raise UserError(f"--metre: {exc}") from None
    return midi_mod.best_metre(pieces, bars) or FOUR_FOUR


def _no_phrase_reason(piece: midi_mod.Piece, bars: int, metre: Metre, strict: bool
                      ) -> tuple[str, str]:
    """Why a readable piece gave no ``bars``-bar window in ``metre``, and the ``--metre`` that
    would take it ("" when none would)."""
    own = piece.metres
    names = describe(own)
    fitting = [m for m in own if (m.steps_per_bar == metre.steps_per_bar if strict
                                  else m.fits(metre))]
    if fitting:
        return f"in {names}: shorter than {bars} bars of {metre}", ""
    off_grid = [m for m in own if m.unusable()]
    if len(off_grid) == len(own):
        return f"in {names}, whose bars {off_grid[0].unusable().removeprefix('has ')}", ""
    other = piece.model_metre(bars)
    if other is None:
        return f"in {names}, not {metre}, and shorter than {bars} bars", ""
    return f"in {names}, not {metre} (a model with --metre {other} learns from it)", str(other)


def bar_span(start_step: int, bars: int) -> str:
    """The bars a phrase starting at ``start_step`` covers, counted from 1 ("bars 9-10"), on a
    16-steps-per-bar grid over the whole file: how runs saved before metres (format 1) named
    their phrases, kept for them (a resumed run records the same examples). Newer runs count
    each file's own bars (:meth:`~plugins.music.engine.midi.Piece.bar_span`).

    After a bar in another metre the grid can put two windows in the same "bar", so the start
    step is added to keep every phrase of a file distinct."""
    first = start_step // STEPS_PER_BAR + 1
    span = f"bars {first}-{first + bars - 1}"
    return span if start_step % STEPS_PER_BAR == 0 else f"{span} (step {start_step})"


# ----------------------------------------------------------------------------------------------
# Augmentation by transposition (numpy; the trainer does the same in torch on batches)
# ----------------------------------------------------------------------------------------------
def transpose_range(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per phrase, the lowest and highest semitone shift that keeps every pitch on the keyboard."""
    pitched = tokens >= FIRST_PITCH_TOKEN
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    lo = np.where(pitched, tokens, big).min(axis=1) - FIRST_PITCH_TOKEN + MIN_PITCH
    hi = np.where(pitched, tokens, small).max(axis=1) - FIRST_PITCH_TOKEN + MIN_PITCH
    return MIN_PITCH - lo, MAX_PITCH - hi


def transpose_tokens(tokens: np.ndarray, shift: int) -> np.ndarray:
    out = tokens.copy()
    pitched = out >= FIRST_PITCH_TOKEN
    out[pitched] += shift
    return out


def roll_pitch_range() -> tuple[int, int]:
    return ROLL_LOW, ROLL_LOW + ROLL_PITCHES - 1


__all__ = ["HOLD", "MODES", "REST", "FileReport", "PhraseSet", "bar_span", "held_out_files",
           "load_midi_folder", "scan", "transpose_range", "transpose_tokens"]
