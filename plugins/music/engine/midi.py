"""MIDI files in and out (pretty_midi), quantised to a 16th-note grid.

Reading works in MIDI ticks, not seconds, so tempo changes never shift the grid: a note's step is
``round(4 * tick / ticks_per_quarter)``. Time-signature changes split a piece into segments, each
with its :class:`~plugins.music.engine.metre.Metre`; a model of one metre cuts phrases from the
segments whose bars fit it (two 2/4 bars make a 4/4 bar, a 12/8 bar is two 6/8 bars: see
:mod:`.metre`), because a model sees a fixed number of steps per bar. A bad file raises
:class:`MidiError` with the reason, which the data loader turns into a line of its per-file
report.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugins.music.engine.arrange import Instruments, arrange
from plugins.music.engine.metre import FOUR_FOUR, MAX_BAR_STEPS, Metre, model_metre_for
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
#: the longest piece read (20,000 bars of 4/4, about 11 hours at 120 bpm): notes running past it
#: are a broken file (a note-off a hundred million ticks late), not music to cut into phrases
MAX_STEPS = 20_000 * STEPS_PER_BAR


class MidiError(ValueError):
    """A MIDI file that cannot be used; the message is the reason shown to the user."""


@dataclass
class Track:
    name: str
    program: int
    is_drum: bool
    notes: np.ndarray  # (K, 4) pitch, start, end, velocity in 16th steps


@dataclass(frozen=True)
class Segment:
    """A stretch of a piece in one metre: ``[start, stop)`` in steps."""

    start: int
    stop: int
    metre: Metre


@dataclass
class Piece:
    """A MIDI file on the 16th grid."""

    path: Path
    tracks: list[Track]
    steps: int  # last note end, in steps
    segments: list[Segment]  # in order, one per time signature (4/4 where the file has none)
    tempo: float  # the first tempo, quarter notes per minute

    @property
    def metres(self) -> list[Metre]:
        """The piece's time signatures, in order of first appearance."""
        out: list[Metre] = []
        for seg in self.segments:
            if seg.metre not in out:
                out.append(seg.metre)
        return out

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

    def bar_starts(self, bars: int, hop_bars: int = 1, metre: Metre = FOUR_FOUR,
                   strict: bool = False) -> list[int]:
        """Start steps of every window of ``bars`` bars of ``metre`` inside a segment whose bars
        fit it (joined or split: see :meth:`Metre.fits`), ``hop_bars`` bars apart.

        ``strict`` takes only segments whose bars are exactly as long as ``metre``'s: the rule
        of the runs saved before metres (format 1), so resuming one sees the same phrases.
        A segment is counted in whole bars of its own metre (its last, partial bar included)
        and cut into whole bars of ``metre`` from its start; windows never cross segments.
        """
        unit = metre.steps_per_bar
        starts: list[int] = []
        if not unit or bars < 1 or hop_bars < 1:
            return starts
        for seg in self.segments:
            own = seg.metre.steps_per_bar
            if not own or not (own == unit if strict else seg.metre.fits(metre)):
                continue
            end = min(seg.stop, _ceil_to(self.steps, own, seg.start))
            n_bars = (end - seg.start) // unit
            starts += [seg.start + b * unit for b in range(0, n_bars - bars + 1, hop_bars)]
        return starts

    def model_metre(self, bars: int) -> Metre | None:
        """The metre a model would cut this piece's phrases in (most windows of ``bars`` bars;
        4/4 for simple duple bars), or None when no stretch of the piece is long enough."""
        return best_metre([self], bars)

    def bar_number(self, step: int) -> int:
        """The bar (counted from 1, in each segment's own metre) holding ``step``."""
        done = 0
        for seg in self.segments:
            length = seg.metre.bar_length or STEPS_PER_BAR
            if step < seg.stop:
                return done + int((max(step, seg.start) - seg.start) // length) + 1
            done += int(-(-(seg.stop - seg.start) // length))  # a partial bar counts as one
        length = self.segments[-1].metre.bar_length if self.segments else STEPS_PER_BAR
        return done + int((step - (self.segments[-1].stop if self.segments else 0))
                          // (length or STEPS_PER_BAR)) + 1

    def bar_span(self, start: int, bars: int, metre: Metre) -> str:
        """The bars a phrase of ``bars`` bars of ``metre`` starting at ``start`` covers, in the
        file's own bar numbers ("bars 9-10"; joined 2/4 bars: "bars 9-12")."""
        first = self.bar_number(start)
        last = self.bar_number(start + bars * metre.steps_per_bar - 1)
        return f"bars {first}-{last}" if last != first else f"bar {first}"


def _ceil_to(x: int, unit: int, origin: int) -> int:
    return origin + -(-(x - origin) // unit) * unit


def best_metre(pieces: list[Piece], bars: int) -> Metre | None:
    """The model metre most of ``pieces`` give ``bars``-bar phrases in (4/4 for simple duple
    bars): the one that learns from the most files, then from the most phrases; ties go to
    4/4, then to the metre met first. None when no piece has a stretch long enough in any
    metre on the grid. (By files, not by phrases: one long 12/8 piece should not outvote a
    folder of short 4/4 tunes.)"""
    candidates: list[Metre] = []
    for piece in pieces:
        for seg in piece.segments:
            if not seg.metre.unusable():
                m = model_metre_for(seg.metre)
                if m not in candidates:
                    candidates.append(m)
    candidates.sort(key=lambda m: m != FOUR_FOUR)  # stable: 4/4 first, then first met
    best, most = None, (0, 0)
    for m in candidates:
        counts = [len(p.bar_starts(bars, 1, m)) for p in pieces]
        score = (sum(1 for n in counts if n), sum(counts))
        if score > most:
            best, most = m, score
    return best


def read_midi(path: str | os.PathLike[str]) -> Piece:
    """Parse a MIDI file onto the 16th grid. Raises :class:`MidiError` with a reason."""
    path = Path(path)
    return piece_from_pretty_midi(open_midi(path), path)


def open_midi(path: Path) -> Any:
    """A MIDI file as a ``pretty_midi.PrettyMIDI``, read leniently where the damage does not
    matter and refused with a reason (:class:`MidiError`) where it does.

    mido reads the bytes (data bytes above 127 clipped, as most players do); empty track
    chunks, which some programs write and pretty_midi cannot read, are dropped; a tempo of
    zero, which would divide by zero, is named."""
    import mido
    import pretty_midi

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MidiError(f"cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise MidiError("is empty (0 bytes)")
    try:
        mid = mido.MidiFile(filename=str(path), clip=True)
    except EOFError:
        raise MidiError("is not a readable MIDI file (it ends in the middle of its data: cut "
                        "short?)") from None
    except Exception as exc:  # mido raises OSError, KeyError, ValueError, TypeError…
        raise MidiError(f"is not a readable MIDI file ({_reason(exc)})") from None
    if mid.ticks_per_beat <= 0:
        raise MidiError("is not a readable MIDI file (it counts time in frames per second, "
                        "not in beats)" if mid.ticks_per_beat < 0 else
                        "is not a readable MIDI file (its header gives 0 ticks per beat)")
    mid.tracks = [t for t in mid.tracks if len(t)]
    if not mid.tracks:
        raise MidiError("has no notes (its tracks are empty)")
    if any(m.type == "set_tempo" and m.tempo <= 0 for t in mid.tracks for m in t):
        raise MidiError("is not a readable MIDI file (it sets a tempo of zero)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about odd tempo events
            return pretty_midi.PrettyMIDI(mido_object=mid)
    except Exception as exc:  # pretty_midi raises ValueError, ZeroDivisionError, KeyError…
        raise MidiError(f"is not a readable MIDI file ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def piece_from_pretty_midi(pm: Any, path: Path = Path("<memory>")) -> Piece:
    tpq = float(pm.resolution)
    if not tpq > 0:
        raise MidiError(f"is not a readable MIDI file (its header gives {pm.resolution} ticks "
                        "per quarter note)")

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
    if end > MAX_STEPS:
        raise MidiError(f"has notes lasting past bar {end // STEPS_PER_BAR:,} (the studio reads "
                        f"pieces up to {MAX_STEPS // STEPS_PER_BAR:,} bars): a broken file?")
    segments: list[Segment] = []
    changes = sorted(pm.time_signature_changes, key=lambda ts: ts.time)
    if not changes or to_step(changes[0].time) > 0:
        segments.append(Segment(0, to_step(changes[0].time) if changes else end + MAX_BAR_STEPS,
                                FOUR_FOUR))  # no signature at the start: MIDI's default is 4/4
    for i, ts in enumerate(changes):
        start = to_step(ts.time)
        stop = to_step(changes[i + 1].time) if i + 1 < len(changes) else end + MAX_BAR_STEPS
        if stop > start:
            segments.append(Segment(start, stop, Metre(int(ts.numerator),
                                                       int(ts.denominator))))
    tempi = pm.get_tempo_changes()[1]
    tempo = float(tempi[0]) if len(tempi) and np.isfinite(tempi[0]) and tempi[0] > 0 else 120.0
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


def melody_tokens(piece: Piece, bars: int, melody: str = "auto", hop_bars: int = 1,
                  metre: Metre = FOUR_FOUR, strict: bool = False) -> list[np.ndarray]:
    """Every ``bars``-bar melody phrase of ``piece`` in ``metre`` as tokens (see
    :mod:`.phrase`), one per start of :meth:`Piece.bar_starts`."""
    notes = piece.melody_notes(melody)
    steps = bars * metre.steps_per_bar
    return [notes_to_tokens(window(notes, s, steps), steps)
            for s in piece.bar_starts(bars, hop_bars, metre, strict)]


def pianoroll_windows(piece: Piece, bars: int, hop_bars: int = 1, metre: Metre = FOUR_FOUR,
                      strict: bool = False) -> list[np.ndarray]:
    """Every ``bars``-bar window of all pitched notes in ``metre``, as note arrays."""
    notes = piece.all_notes()
    steps = bars * metre.steps_per_bar
    return [window(notes, s, steps) for s in piece.bar_starts(bars, hop_bars, metre, strict)]


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def phrases_to_pretty_midi(phrases: Sequence[Phrase], tempo: float = 120.0, program: int = 0,
                           gap_bars: int = 0, instruments: Instruments | None = None) -> Any:
    """Phrases one after another (``gap_bars`` of silence between) as a MIDI file's tracks: the
    melody, for piano-roll phrases the accompaniment, and the drums on channel 10 when asked
    (see :mod:`.arrange`), with the tempo and a time signature wherever the metre changes.
    ``program`` is the melody's instrument when ``instruments`` is not given."""
    import pretty_midi

    inst = instruments or Instruments(melody=program, accompaniment=program)
    arr = arrange(phrases, inst, gap_bars)
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(tempo))
    dt = step_seconds(tempo)
    for step, metre in arr.metres:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(
            metre.numerator, metre.denominator, step * dt))
    for part in arr.parts:
        track = pretty_midi.Instrument(program=0 if part.is_drum else part.program,
                                       is_drum=part.is_drum, name=part.name)
        for p, s, e, v in part.notes.tolist():
            track.notes.append(pretty_midi.Note(velocity=int(max(1, min(127, v))), pitch=int(p),
                                                start=s * dt, end=e * dt))
        pm.instruments.append(track)
    return pm


def write_midi(phrases: Phrase | Sequence[Phrase], target: str | os.PathLike[str],
               tempo: float = 120.0, gap_bars: int = 0,
               instruments: Instruments | None = None) -> Path:
    """Write one phrase or a strip of phrases as a MIDI file, atomically."""
    items = [phrases] if isinstance(phrases, Phrase) else list(phrases)
    if not items:
        raise ValueError("no phrases to write")
    if any(p.kind == "audio" for p in items):
        raise MidiError("audio phrases have no notes: export them as WAV")
    pm = phrases_to_pretty_midi(items, tempo, gap_bars=gap_bars, instruments=instruments)
    with atomic_path(target, suffix=".mid") as tmp:
        pm.write(str(tmp))
    return Path(target)


def midi_notes_seconds(path: str | os.PathLike[str], tempo: float | None = None
                       ) -> tuple[np.ndarray, float]:
    """All pitched notes of a MIDI file in seconds, ``(K, 4)`` float: pitch, start, end, velocity.

    With ``tempo`` the file is re-timed from its ticks at that tempo; else its own tempo map is
    used. Returns the notes and the tempo used (the file's first tempo when ``tempo`` is None).
    """
    path = Path(path)
    pm = open_midi(path)
    piece = piece_from_pretty_midi(pm, path)
    notes = piece.all_notes()
    if tempo is None:  # the file's own timing, tempo changes included
        rows = [(n.pitch, n.start, n.end, n.velocity) for inst in pm.instruments
                if not inst.is_drum for n in inst.notes]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 4), piece.tempo
    dt = step_seconds(tempo)
    out = notes.astype(np.float64)
    out[:, 1:3] *= dt
    return out, float(tempo)
