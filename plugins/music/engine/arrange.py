"""Phrases as a band: which General MIDI instrument plays each part, and the parts as tracks.

A strip of phrases becomes up to three parts, each a track of its own in an exported MIDI file
and a channel of its own for a SoundFont synth:

* **Melody**: a melody model's line; for piano-roll phrases, the highest voice (every note that
  is the top sounding note where it starts: the same "skyline" rule the melody models learn).
* **Accompaniment**: the rest of a piano-roll phrase's notes (only with ``split``; otherwise
  every note stays in one track).
* **Drums**: an optional beat on channel 10 (General MIDI percussion) that follows each
  phrase's metre: kick on the downbeat (and the middle of an even bar of four or more beats),
  snare on the off-beats, closed hi-hat on every eighth. The models learn no drums: this is a
  click with manners, so a phrase dropped into a DAW lines up with a groove.

Times are in 16th steps from the start of the strip. No torch, no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from plugins.music.engine import gm
from plugins.music.engine.metre import FOUR_FOUR, Metre
from plugins.music.engine.phrase import Phrase, skyline, sort_notes


@dataclass(frozen=True)
class Instruments:
    """Who plays what (General MIDI programs, counted from 0)."""

    melody: int = gm.PIANO
    accompaniment: int = gm.PIANO
    drums: bool = False
    split: bool = True  # piano-roll phrases: the highest voice and the rest as two parts

    def __post_init__(self) -> None:
        for name in ("melody", "accompaniment"):
            value = getattr(self, name)
            if not 0 <= int(value) < len(gm.PROGRAMS):
                raise ValueError(f"{name}: a General MIDI program is 0 to 127, not {value}")


@dataclass
class Part:
    """One track: its name, instrument and notes ``(K, 4)`` in steps from the strip's start."""

    name: str
    program: int
    is_drum: bool
    notes: np.ndarray
    channel: int

    @property
    def instrument(self) -> str:
        return "Drums" if self.is_drum else gm.program_name(self.program)


@dataclass
class Arrangement:
    """The parts of a strip, where each phrase starts, and the time signature changes."""

    parts: list[Part]
    starts: list[int]  # each phrase's first step, then the end
    metres: list[tuple[int, Metre]]  # (step, metre) wherever the metre changes

    @property
    def steps(self) -> int:
        return self.starts[-1] if self.starts else 0


def split_melody(notes: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(melody, rest)``: the notes that are the highest sounding one where they start, and
    the others."""
    notes = np.asarray(notes, dtype=np.int32).reshape(-1, 4)
    if not len(notes):
        return notes, notes
    _pitch, ident = skyline(notes, max(steps, int(notes[:, 2].max())))
    top = np.zeros(len(notes), dtype=bool)
    for k, (_p, s, _e, _v) in enumerate(notes.tolist()):
        if 0 <= s < len(ident) and ident[s] == k:
            top[k] = True
    return notes[top], notes[~top]


def beat(metre: Metre, bars: int) -> np.ndarray:
    """The drum part for ``bars`` bars of ``metre`` as notes in steps."""
    bar = metre.steps_per_bar
    unit = max(1, metre.beat_steps)
    n_beats = max(1, bar // unit)
    rows: list[tuple[int, int, int, int]] = []
    for b in range(bars):
        o = b * bar
        for s in range(0, bar, 2):  # hi-hat on every eighth, accented on the beat
            rows.append((gm.CLOSED_HAT, o + s, o + s + 1, 80 if s % unit == 0 else 60))
        rows.append((gm.KICK, o, o + 1, 110))
        if n_beats % 2 == 0 and n_beats >= 4:
            rows.append((gm.KICK, o + (n_beats // 2) * unit, o + (n_beats // 2) * unit + 1, 95))
        for k in range(1, n_beats):
            if n_beats % 2 == 0 and k % 2 == 0:
                continue
            rows.append((gm.SNARE, o + k * unit, o + k * unit + 1, 100 if n_beats % 2 == 0
                         else 75))
    return sort_notes(np.asarray(rows, dtype=np.int32).reshape(-1, 4))


def arrange(phrases: Sequence[Phrase], instruments: Instruments | None = None,
            gap_bars: int = 0) -> Arrangement:
    """The strip's note phrases (audio phrases keep their place, silent here) as parts."""
    inst = instruments or Instruments()
    melody: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    drums: list[np.ndarray] = []
    starts: list[int] = []
    metres: list[tuple[int, Metre]] = []
    offset = 0
    any_split = False
    for ph in phrases:
        metre = Metre.parse(ph.metre) if ph.metre else FOUR_FOUR
        if not metres or metres[-1][1] != metre:
            metres.append((offset, metre))
        starts.append(offset)
        notes = np.asarray(ph.notes, dtype=np.int32).reshape(-1, 4)
        if ph.kind == "pianoroll" and inst.split:
            top, others = split_melody(notes, ph.steps)
            any_split = True
        else:
            top, others = notes, notes[:0]
        for target, rows in ((melody, top), (rest, others)):
            if len(rows):
                moved = rows.copy()
                moved[:, 1:3] += offset
                target.append(moved)
        if inst.drums and ph.kind != "audio":
            d = beat(metre, max(1, ph.steps // metre.steps_per_bar))
            d[:, 1:3] += offset
            drums.append(d)
        offset += ph.steps + gap_bars * metre.steps_per_bar
    starts.append(offset)
    all_melody = all(p.kind == "melody" for p in phrases)
    parts = [Part("Melody" if all_melody or any_split else "Piano", inst.melody, False,
                  _joined(melody), 0)]
    if any_split:
        parts.append(Part("Accompaniment", inst.accompaniment, False, _joined(rest), 1))
    if inst.drums:
        parts.append(Part("Drums", 0, True, _joined(drums), gm.DRUM_CHANNEL))
    return Arrangement(parts, starts, metres)


def _joined(rows: list[np.ndarray]) -> np.ndarray:
    return sort_notes(np.concatenate(rows)) if rows else np.zeros((0, 4), np.int32)
