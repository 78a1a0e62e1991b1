"""Helpers the music tests import by name (a unique module name: every test folder has a
conftest.py, so importing helpers "from conftest" picks whichever conftest loaded first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHRASE_A = np.array([[60, 0, 4, 90], [62, 4, 8, 90], [64, 8, 12, 90], [65, 12, 16, 90],
                     [67, 16, 24, 90], [64, 24, 32, 90]], dtype=np.int32)
PHRASE_B = np.array([[72, 0, 2, 90], [71, 2, 4, 90], [69, 4, 8, 90], [67, 8, 16, 90],
                     [69, 16, 20, 90], [65, 20, 28, 90]], dtype=np.int32)


def write_song(path: Path, seed: int, bars: int = 4, numerator: int = 4, tracks: int = 1,
               drums: bool = False) -> Path:
    """A diatonic melody (plus a bass track when ``tracks`` > 1) as a MIDI file."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, 4, 0.0))
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    tonic = 60 + int(rng.integers(-5, 6))
    lead = pretty_midi.Instrument(program=0, name="Lead")
    t = 0.0
    end = bars * numerator * 0.5
    while t < end - 1e-9:
        dur = float(rng.choice([0.25, 0.5, 0.5, 1.0]))
        pitch = tonic + int(scale[rng.integers(0, 7)]) + 12 * int(rng.integers(0, 2))
        lead.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=t,
                                           end=min(end, t + dur)))
        t += dur
    pm.instruments.append(lead)
    if tracks > 1:
        bass = pretty_midi.Instrument(program=32, name="Bass")
        for b in range(bars * numerator // 2):
            bass.notes.append(pretty_midi.Note(velocity=80, pitch=tonic - 24, start=b * 1.0,
                                               end=b * 1.0 + 0.9))
        pm.instruments.append(bass)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True, name="Drums")
        kit.notes.append(pretty_midi.Note(velocity=100, pitch=36, start=0.0, end=0.1))
        pm.instruments.append(kit)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path


def write_tune(path: Path, metre: str, bars: int = 8, seed: int = 0, pickup: bool = False
               ) -> Path:
    """A diatonic tune of eighth notes (an occasional quarter) in ``metre`` ("6/8", "2/4", ...),
    with its time signature, ``bars`` full bars long (plus an eighth-note pickup before the
    first bar line when ``pickup``, written as a 1/8 bar, as music21 exports a pickup)."""
    import pretty_midi

    num, den = (int(x) for x in metre.split("/"))
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    eighth = 0.25  # seconds at 120 quarter notes per minute
    t0 = 0.0
    if pickup:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(1, 8, 0.0))
        t0 = eighth
    pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, t0))
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    tune = pretty_midi.Instrument(program=0, name="Tune")
    t, end = 0.0, t0 + bars * num * 4 / den * 0.5
    while t < end - 1e-9:
        dur = eighth * (2 if rng.random() < 0.2 else 1)
        pitch = 62 + int(scale[rng.integers(0, len(scale))])
        tune.notes.append(pretty_midi.Note(90, pitch, t, min(end, t + dur)))
        t += dur
    pm.instruments.append(tune)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path
