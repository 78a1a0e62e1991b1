"""Notes into sound with whichever synth was chosen, and the words for which one it was.

One entry point per source: :func:`render_strip` (the panel's phrases: playback and WAV export)
and :func:`render_midi` (a MIDI file: the ``render`` job). Both take a
:class:`~plugins.music.engine.soundfont.SynthChoice` and return a :class:`Rendered` that says
which synth made the sound, so the window and the job log can tell the user. FluidSynth plays
each part with its General MIDI instrument and the drums; the built-in synth plays every pitched
part with one voice (and no drums, which it says). No torch, no Qt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugins.music.engine import soundfont as sf_mod
from plugins.music.engine import synth
from plugins.music.engine.arrange import Instruments, arrange
from plugins.music.engine.phrase import Phrase, step_seconds
from plugins.music.engine.soundfont import SynthChoice, Track


@dataclass
class Rendered:
    """Samples (mono ``(n,)`` from the built-in synth, stereo ``(n, 2)`` from FluidSynth), their
    rate, each phrase's first sample (then the end) for strips, and which synth made them."""

    audio: np.ndarray
    sample_rate: int
    synth: SynthChoice
    bounds: list[int]
    note: str = ""  # anything the synth left out ("the built-in synth plays no drums")

    def describe(self) -> str:
        text = f"rendered with {self.synth.describe()}"
        return f"{text}; {self.note}" if self.note else text


def render_strip(phrases: Sequence[Phrase], tempo: float, sample_rate: int = synth.SAMPLE_RATE,
                 voice: str = "piano", choice: SynthChoice | None = None,
                 instruments: Instruments | None = None) -> Rendered:
    """The strip's phrases one after another at ``tempo``, with the chosen synth."""
    choice = choice or SynthChoice()
    if not choice.uses_soundfont:
        audio, bounds = synth.render_strip(phrases, tempo, sample_rate, voice)
        drums = instruments is not None and instruments.drums
        return Rendered(audio, sample_rate, choice, bounds,
                        "the built-in synth plays no drums" if drums else "")
    assert choice.soundfont is not None
    arr = arrange(phrases, instruments)
    dt = step_seconds(tempo)
    tracks = []
    for part in arr.parts:
        notes = part.notes.astype(np.float64)
        notes[:, 1:3] *= dt
        tracks.append(Track(part.program, part.is_drum, notes))
    seconds, bounds = 0.0, [0]
    for ph in phrases:
        seconds += ph.seconds(tempo)
        bounds.append(int(round(seconds * sample_rate)))
    audio = sf_mod.render_tracks(tracks, choice.soundfont, sample_rate,
                                 length=seconds + sf_mod.TAIL)
    _mix_audio_phrases(audio, phrases, bounds, sample_rate)
    return Rendered(audio, sample_rate, choice, bounds)


def _mix_audio_phrases(out: np.ndarray, phrases: Sequence[Phrase], bounds: list[int],
                       sample_rate: int) -> None:
    """Sound phrases (an audio model's) placed where they belong, in both channels."""
    for ph, s in zip(phrases, bounds, strict=False):
        if ph.kind == "audio" and ph.audio is not None and len(ph.audio):
            wave = synth.resample_linear(np.asarray(ph.audio, np.float32), ph.sample_rate,
                                         sample_rate)
            n = min(len(wave), len(out) - s)
            out[s:s + n] += wave[:n, None] if out.ndim == 2 else wave[:n]
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 0.99:
        out *= 0.99 / peak


def render_midi(path: str | os.PathLike[str], tempo: float | None = None,
                sample_rate: int = synth.SAMPLE_RATE, voice: str = "piano",
                choice: SynthChoice | None = None) -> tuple[Rendered, float, int]:
    """A MIDI file's notes, with its own instruments, drums, pedals and bends when FluidSynth
    plays it. Returns the sound, the tempo used (the file's first when ``tempo`` is None) and
    the number of notes. Raises :class:`~plugins.music.engine.midi.MidiError`."""
    from plugins.music.engine import midi as midi_mod

    choice = choice or SynthChoice()
    if not choice.uses_soundfont:
        notes, used = midi_mod.midi_notes_seconds(path, tempo)
        _check_length(notes, path, used)
        audio = synth.render_notes(notes, sample_rate, voice)
        pm = midi_mod.open_midi(Path(path))
        drums = any(i.is_drum and i.notes for i in pm.instruments)
        return (Rendered(audio, sample_rate, choice, [0, len(audio)],
                         "the built-in synth plays no drums" if drums else ""), used, len(notes))
    assert choice.soundfont is not None
    pm = midi_mod.open_midi(Path(path))
    piece = midi_mod.piece_from_pretty_midi(pm, Path(path))
    used = piece.tempo if tempo is None else float(tempo)
    tracks = sf_mod.tracks_of_midi(pm)
    if tempo is not None:  # re-timed from the ticks at one tempo, as the built-in path does
        scale = _retime(pm, float(tempo))
        for t in tracks:
            t.notes[:, 1:3] = scale(t.notes[:, 1:3])
            t.controls = [(float(scale(np.array([c[0]]))[0]), c[1], c[2]) for c in t.controls]
            t.bends = [(float(scale(np.array([b[0]]))[0]), b[1]) for b in t.bends]
    rows = [t.notes for t in tracks if len(t.notes)]
    allnotes = np.concatenate(rows) if rows else np.zeros((0, 4))
    _check_length(allnotes, path, used)
    audio = sf_mod.render_tracks(tracks, choice.soundfont, sample_rate)
    return Rendered(audio, sample_rate, choice, [0, len(audio)]), used, len(allnotes)


def _retime(pm: Any, tempo: float) -> Callable[[np.ndarray], np.ndarray]:
    """Seconds in the file's own tempo map to seconds at one steady ``tempo``."""
    res = float(pm.resolution)
    time_to_tick = pm.time_to_tick
    per_tick = 60.0 / tempo / res

    def scale(t: np.ndarray) -> np.ndarray:
        flat = np.asarray(t, dtype=np.float64)
        return np.vectorize(lambda x: time_to_tick(float(x)) * per_tick)(flat) if flat.size \
            else flat

    return scale


def _check_length(notes: np.ndarray, path: str | os.PathLike[str], tempo: float) -> None:
    from studio.errors import UserError

    seconds = float(notes[:, 2].max()) if len(notes) else 0.0
    if seconds > synth.MAX_SECONDS:
        raise UserError(f"{Path(path).name} lasts {seconds / 3600:.1f} hours at {tempo:g} bpm: "
                        f"the render job writes up to {synth.MAX_SECONDS // 60} minutes (try a "
                        "faster --tempo)")
