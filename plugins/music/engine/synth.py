"""A small numpy synthesiser: notes in, a float32 waveform out. No torch, no Qt.

Used ahead of time for playback (the audio callback only copies from the buffer it makes), for
the ``render`` job and for WAV export. Each note reads a wavetable (a few harmonics) at its
frequency, shaped by an envelope: a 5 ms attack, an exponential decay that is faster for high
notes (a plucked / piano-like tone), and an 80 ms release after the note ends so notes never
click.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plugins.music.engine.phrase import Phrase, step_seconds
from studio.storage import atomic_path

SAMPLE_RATE = 44100
TABLE = 4096
VOICES = ("piano", "organ", "pluck")
_HARMONICS = {"piano": (1.0, 0.45, 0.22, 0.12, 0.06), "organ": (1.0, 0.6, 0.0, 0.35, 0.0, 0.2),
              "pluck": (1.0, 0.3, 0.15, 0.08)}
_DECAY = {"piano": 1.6, "organ": 0.0, "pluck": 4.0}  # 1/s at middle C
ATTACK, RELEASE = 0.005, 0.08
GAIN = 0.22
MAX_SECONDS = 3600  # the longest render (an hour at 44.1 kHz is 635 MB of samples)


def _table(voice: str) -> np.ndarray:
    phase = np.arange(TABLE, dtype=np.float64) * (2 * np.pi / TABLE)
    t = sum(a * np.sin((h + 1) * phase) for h, a in enumerate(_HARMONICS[voice]))
    return (t / np.abs(t).max()).astype(np.float32)


_TABLES = {v: _table(v) for v in VOICES}


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def render_notes(notes: np.ndarray, sample_rate: int = SAMPLE_RATE, voice: str = "piano",
                 length: float | None = None) -> np.ndarray:
    """``notes`` as float ``(K, 4)`` (pitch, start s, end s, velocity) into mono float32.

    ``length`` in seconds (default: the last release). The mix is scaled down only if it would
    clip, so loudness is consistent between phrases.
    """
    if voice not in VOICES:
        raise ValueError(f"unknown voice {voice!r}; choose {', '.join(VOICES)}")
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    end = float(notes[:, 2].max()) + RELEASE if len(notes) else 0.0
    total = int(np.ceil((length if length is not None else end) * sample_rate))
    out = np.zeros(max(total, 1), dtype=np.float32)
    table = _TABLES[voice]
    rel = int(RELEASE * sample_rate)
    att = max(1, int(ATTACK * sample_rate))
    for pitch, start, stop, vel in notes:
        s = int(round(start * sample_rate))
        if s >= len(out):
            continue
        held = max(1, int(round((stop - start) * sample_rate)))
        n = min(held + rel, len(out) - s)
        if n <= 0:
            continue
        hz = midi_hz(pitch)
        idx = (np.arange(n, dtype=np.float64) * (hz * TABLE / sample_rate)).astype(np.int64)
        wave = table[idx & (TABLE - 1)]
        env = np.ones(n, dtype=np.float32)
        a = min(att, n)
        env[:a] = np.linspace(0.0, 1.0, a, dtype=np.float32)
        decay = _DECAY[voice] * (hz / 261.63) ** 0.5
        if decay:
            env *= np.exp(-decay * np.arange(n, dtype=np.float32) / sample_rate)
        if n > held:
            r = n - held
            env[held:] *= np.linspace(1.0, 0.0, r, dtype=np.float32)
        out[s:s + n] += wave * env * (GAIN * float(vel) / 127.0)
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 0.95:
        out *= 0.95 / peak
    return out


def phrase_notes_seconds(phrase: Phrase, tempo: float, offset: float = 0.0) -> np.ndarray:
    dt = step_seconds(tempo)
    n = np.asarray(phrase.notes, dtype=np.float64).reshape(-1, 4).copy()
    n[:, 1:3] = n[:, 1:3] * dt + offset
    return n


def render_strip(phrases: Sequence[Phrase], tempo: float, sample_rate: int = SAMPLE_RATE,
                 voice: str = "piano") -> tuple[np.ndarray, list[int]]:
    """Phrases one after another at ``tempo``; returns the waveform and each phrase's start
    sample (plus the end), so one buffer serves "play the strip" and "play this phrase".

    Audio phrases (Griffin-Lim output) are resampled to ``sample_rate`` and placed as they are.
    """
    bounds = [0]
    t = 0.0
    note_rows = []
    for ph in phrases:
        if ph.kind != "audio":
            note_rows.append(phrase_notes_seconds(ph, tempo, t))
        t += ph.seconds(tempo)
        bounds.append(int(round(t * sample_rate)))
    notes = np.concatenate(note_rows) if note_rows else np.zeros((0, 4))
    out = render_notes(notes, sample_rate, voice, length=t + RELEASE)
    for ph, s in zip(phrases, bounds, strict=False):
        if ph.kind == "audio" and ph.audio is not None and len(ph.audio):
            wave = resample_linear(np.asarray(ph.audio, dtype=np.float32), ph.sample_rate,
                                   sample_rate)
            n = min(len(wave), len(out) - s)
            out[s:s + n] += wave[:n]
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out, bounds


def resample_linear(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling: good enough to play back a Griffin-Lim preview, and
    cheap enough for the render thread (no torch there)."""
    if sr == target or not len(x):
        return x
    n = int(round(len(x) * target / sr))
    pos = np.arange(n, dtype=np.float64) * (sr / target)
    return np.interp(pos, np.arange(len(x)), x).astype(np.float32)


def write_wav(samples: np.ndarray, target: str | os.PathLike[str], sample_rate: int) -> Path:
    """16-bit PCM WAV, atomically (peaks above full scale are limited, not wrapped)."""
    import soundfile as sf

    x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with atomic_path(target, suffix=".wav") as tmp:
        sf.write(str(tmp), x, int(sample_rate), subtype="PCM_16", format="WAV")
    return Path(target)
