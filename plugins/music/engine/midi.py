"""MIDI files in and out (pretty_midi), quantised to a 16th-note grid.

Reading works in MIDI ticks, not seconds, so tempo changes never shift the grid: a note's step is
``round(4 * tick / ticks_per_quarter)``. Time-signature changes split a piece into segments; only
segments whose bars are 16 steps long (4/4, 2/2, 8/8) are cut into phrases, because a model sees a
fixed number of steps per bar. A bad file raises :class:`MidiError` with the reason, which the data
loader turns into a line of its per-file report.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugins.music.engine.phrase import (
    DEFAULT_VELOCITY,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    Phrase,
    empty_notes,
    notes_to_tokens,
    sort_notes,
    step_seconds,
)
from studio.storage import atomic_path

MIDI_EXTS = (".mid", ".midi", ".kar", ".smf")
MELODY_NAMES = ("soprano", "melody", "lead", "vocal", "voice", "tune")


class MidiError(ValueError):
    """A MIDI file that cannot be used; the message is the reason shown to the user."""


@dataclass
class Track:
    name: str
    program: int
    is_drum: bool
    notes: np.ndarray  # (K, 4) pitch, start, end, velocity in 16th steps


@dataclass
class Piece:
    """A MIDI file on the 16th grid."""

    path: Path
    tracks: list[Track]
    steps: int  # last note end, in steps
    segments: list[tuple[int, int, int]]  # (start step, end step, steps per bar)
    tempo: float  # the first tempo, quarter notes per minute

    def pitched_tracks(self) -> list[Track]:
        return [t for t in self.tracks if not t.is_drum and len(t.notes)]

    def all_notes(self) -> np.ndarray:
        tracks = self.pitched_tracks()
        return sort_notes(np.concatenate([t.notes for t in tracks])) if tracks else empty_notes()

    def melody_notes(self, melody: str = "auto") -> np.ndarray:
        """Notes of the melody line, chosen by ``melody``:

        ``auto``: a track named like soprano/melody/lead/vocal if there is one, else the highest
        voice of all tracks; ``highest``: the highest voice of all pitched tracks; a number: that
        track (0-based, in file order); any other text: the first track whose name contains it.
        The result may still be polyphonic; :func:`notes_to_tokens` takes its highest voice.
        """
        tracks = self.pitched_tracks()
        if not tracks:
            raise MidiError("no pitched notes (only drums or empty tracks)")
        choice = (melody or "auto").strip()
        low = choice.lower()
        if low == "auto":
            for t in tracks:
                if any(n in t.name.lower() for n in MELODY_NAMES):
                    return t.notes
            return self.all_notes()
        if low == "highest":
            return self.all_notes()
        if choice.isdigit():
            idx = int(choice)
            if idx >= len(self.tracks):
                raise MidiError(f"has no track {idx} (it has {len(self.tracks)})")
            t = self.tracks[idx]
            if t.is_drum or not len(t.notes):
                raise MidiError(f"track {idx} ('{t.name}') has no pitched notes")
            return t.notes
        for t in tracks:
            if low in t.name.lower():
                return t.notes
        names = ", ".join(repr(t.name) for t in tracks) or "none"
        raise MidiError(f"has no track named '{choice}' (tracks: {names})")

    def bar_starts(self, bars: int, hop_bars: int = 1) -> list[int]:
        """Start steps of every ``bars``-bar window inside a 16-steps-per-bar segment."""
        starts: list[int] = []
        for s, e, spb in self.segments:
            if spb != STEPS_PER_BAR:
                continue
            n_bars = (min(e, _ceil_to(self.steps, STEPS_PER_BAR, s)) - s) // STEPS_PER_BAR
            starts += [s + b * STEPS_PER_BAR for b in range(0, n_bars - bars + 1, hop_bars)]
        return starts


def _ceil_to(x: int, unit: int, origin: int) -> int:
    return origin + -(-(x - origin) // unit) * unit


def read_midi(path: str | os.PathLike[str]) -> Piece:
    """Parse a MIDI file onto the 16th grid. Raises :class:`MidiError` with a reason."""
    import pretty_midi

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MidiError(f"cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise MidiError("is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about odd tempo events
            pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido/pretty_midi raise OSError, EOFError, KeyError, ValueError…
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise MidiError(f"is not a readable MIDI file ({text})") from None
    return piece_from_pretty_midi(pm, path)


def piece_from_pretty_midi(pm: Any, path: Path = Path("<memory>")) -> Piece:
    tpq = float(pm.resolution)

    def to_step(t: float) -> int:
        return int(round(pm.time_to_tick(t) * STEPS_PER_QUARTER / tpq))

    tracks: list[Track] = []
    end = 0
    for inst in pm.instruments:
        rows = []
        for n in inst.notes:
            s, e = to_step(n.start), to_step(n.end)
            if e <= s:
                e = s + 1  # grace notes shorter than a 32nd still sound for one step
            rows.append((int(n.pitch), s, e, int(n.velocity) or DEFAULT_VELOCITY))
        notes = sort_notes(np.asarray(rows, dtype=np.int32).reshape(-1, 4))
        if len(notes):
            end = max(end, int(notes[:, 2].max()))
        tracks.append(Track(inst.name.strip() or f"track {len(tracks)}", int(inst.program),
                            bool(inst.is_drum), notes))
    if not any(len(t.notes) for t in tracks):
        raise MidiError("has no notes")
    segments: list[tuple[int, int, int]] = []
    changes = sorted(pm.time_signature_changes, key=lambda ts: ts.time)
    if not changes or to_step(changes[0].time) > 0:
        segments.append((0, to_step(changes[0].time) if changes else end + STEPS_PER_BAR,
                         STEPS_PER_BAR))  # no signature at the start: MIDI's default is 4/4
    for i, ts in enumerate(changes):
        start = to_step(ts.time)
        stop = to_step(changes[i + 1].time) if i + 1 < len(changes) else end + STEPS_PER_BAR
        spb = int(round(ts.numerator * STEPS_PER_QUARTER * 4 / ts.denominator))
        if stop > start:
            segments.append((start, stop, spb))
    tempo = float(pm.get_tempo_changes()[1][0]) if len(pm.get_tempo_changes()[1]) else 120.0
    return Piece(path, tracks, end, segments, tempo)


def window(notes: np.ndarray, start: int, steps: int) -> np.ndarray:
    """Notes sounding in ``[start, start + steps)``, shifted to start at 0 and clipped to it."""
    if not len(notes):
        return empty_notes()
    sel = (notes[:, 2] > start) & (notes[:, 1] < start + steps)
    w = notes[sel].copy()
    w[:, 1] = np.maximum(w[:, 1] - start, 0)
    w[:, 2] = np.minimum(w[:, 2] - start, steps)
    return w


def melody_tokens(piece: Piece, bars: int, melody: str = "auto", hop_bars: int = 1
                  ) -> list[np.ndarray]:
    """Every ``bars``-bar melody phrase of ``piece`` as tokens (see :mod:`.phrase`)."""
    notes = piece.melody_notes(melody)
    steps = bars * STEPS_PER_BAR
    return [notes_to_tokens(window(notes, s, steps), steps)
            for s in piece.bar_starts(bars, hop_bars)]


def pianoroll_windows(piece: Piece, bars: int, hop_bars: int = 1) -> list[np.ndarray]:
    """Every ``bars``-bar window of all pitched notes, as note arrays."""
    notes = piece.all_notes()
    steps = bars * STEPS_PER_BAR
    return [window(notes, s, steps) for s in piece.bar_starts(bars, hop_bars)]


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def phrases_to_pretty_midi(phrases: Sequence[Phrase], tempo: float = 120.0, program: int = 0,
                           gap_bars: int = 0) -> Any:
    """Phrases one after another (``gap_bars`` of silence between) in one 4/4 piano track."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=float(tempo))
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    inst = pretty_midi.Instrument(program=program, name="Melody" if all(
        p.kind == "melody" for p in phrases) else "Piano")
    dt = step_seconds(tempo)
    offset = 0
    for ph in phrases:
        for p, s, e, v in np.asarray(ph.notes).reshape(-1, 4).tolist():
            inst.notes.append(pretty_midi.Note(velocity=int(max(1, min(127, v))), pitch=int(p),
                                               start=(offset + s) * dt, end=(offset + e) * dt))
        offset += ph.steps + gap_bars * STEPS_PER_BAR
    pm.instruments.append(inst)
    return pm


def write_midi(phrases: Phrase | Sequence[Phrase], target: str | os.PathLike[str],
               tempo: float = 120.0, gap_bars: int = 0) -> Path:
    """Write one phrase or a strip of phrases as a MIDI file, atomically."""
    items = [phrases] if isinstance(phrases, Phrase) else list(phrases)
    if not items:
        raise ValueError("no phrases to write")
    if any(p.kind == "audio" for p in items):
        raise MidiError("audio phrases have no notes: export them as WAV")
    pm = phrases_to_pretty_midi(items, tempo, gap_bars=gap_bars)
    with atomic_path(target, suffix=".mid") as tmp:
        pm.write(str(tmp))
    return Path(target)


def midi_notes_seconds(path: str | os.PathLike[str], tempo: float | None = None
                       ) -> tuple[np.ndarray, float]:
    """All pitched notes of a MIDI file in seconds, ``(K, 4)`` float: pitch, start, end, velocity.

    With ``tempo`` the file is re-timed from its ticks at that tempo; else its own tempo map is
    used. Returns the notes and the tempo used (the file's first tempo when ``tempo`` is None).
    """
    piece = read_midi(path)
    notes = piece.all_notes()
    if tempo is None:
        import pretty_midi  # the file's own timing, tempo changes included

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(path))
        rows = [(n.pitch, n.start, n.end, n.velocity) for inst in pm.instruments
                if not inst.is_drum for n in inst.notes]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 4), piece.tempo
    dt = step_seconds(tempo)
    out = notes.astype(np.float64)
    out[:, 1:3] *= dt
    return out, float(tempo)
