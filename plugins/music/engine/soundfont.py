"""Rendering notes with FluidSynth and a General MIDI SoundFont: real instruments, in stereo.

The built-in synth (:mod:`.synth`) is a few sine harmonics: good for checking a phrase, not
for listening. With the FluidSynth library and a SoundFont (``.sf2``, e.g. FluidR3_GM, which
Debian/Ubuntu ship as ``fluid-soundfont-gm``) each part plays its General MIDI instrument, the
drums on channel 10, with the SoundFont's own samples, envelopes, reverb and chorus.

Which synth plays is decided once by :func:`choose` and said in words
(:meth:`SynthChoice.describe`): the user's SoundFont, else one installed on the computer, else
the built-in synth *with the reason* (no FluidSynth library, no SoundFont found). Asking for a
SoundFont explicitly (``synth="soundfont"``) and not getting one is an error, never a silent
fallback.

Rendering is offline (no audio driver): events are sorted by time and the synth is stepped
between them with ``fluid_synth_write_float``, so the result is the same on every machine with
the same SoundFont, and no sound card is needed. No torch, no Qt; ``pyfluidsynth`` (import name
``fluidsynth``) is imported on first use because it loads the C library at import.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plugins.music.engine import gm
from studio.errors import UserError

#: where Linux distributions, Homebrew and MacPorts put a General MIDI SoundFont
SYSTEM_SOUNDFONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/freepats-general-midi.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/opt/local/share/sounds/sf2/FluidR3_GM.sf2",
)
ENV = "STUDIO_SOUNDFONT"  # a SoundFont to use when none is chosen ("none": never look)
INSTALL_HELP = ("install FluidSynth and a General MIDI SoundFont (Debian/Ubuntu: sudo apt "
                "install libfluidsynth3 fluid-soundfont-gm; macOS: brew install fluid-synth) "
                "or choose any .sf2 file")
GAIN = 0.5
TAIL = 1.5  # seconds rendered after the last note, for releases and reverb
PEAK = 0.89  # the mix is normalised to this peak (-1 dBFS)
BLOCK = 4096  # frames per write between events


@dataclass(frozen=True)
class SynthChoice:
    """What plays the notes: FluidSynth with ``soundfont``, or the built-in synth (``note``
    says why when a SoundFont was wanted)."""

    soundfont: Path | None = None
    note: str = ""

    @property
    def uses_soundfont(self) -> bool:
        return self.soundfont is not None

    @property
    def name(self) -> str:
        return "FluidSynth" if self.uses_soundfont else "built-in synth"

    def describe(self) -> str:
        """ "FluidSynth with FluidR3_GM.sf2", or "the built-in synth (no SoundFont found…)"."""
        if self.soundfont is not None:
            return f"FluidSynth with {self.soundfont.name}"
        return f"the built-in synth ({self.note})" if self.note else "the built-in synth"


@dataclass
class Track:
    """One instrument's notes in seconds ``(K, 4)`` (pitch, start, end, velocity), and its
    controller changes ``(time, number, value)`` and pitch bends ``(time, value)``."""

    program: int
    is_drum: bool
    notes: np.ndarray
    controls: list[tuple[float, int, int]] = field(default_factory=list)
    bends: list[tuple[float, int]] = field(default_factory=list)


def load_fluidsynth() -> Any:
    """The ``fluidsynth`` module, or ImportError saying what is missing."""
    try:
        import fluidsynth
    except ImportError as exc:
        raise ImportError(f"the FluidSynth library is not installed ({exc})") from None
    except OSError as exc:  # a library that is there but cannot be loaded
        raise ImportError(f"the FluidSynth library cannot be loaded ({exc})") from None
    return fluidsynth


def find_soundfont(chosen: str | os.PathLike[str] | None = None) -> Path | None:
    """The SoundFont to use: ``chosen`` (it must exist and be a .sf2/.sf3 file), else
    ``$STUDIO_SOUNDFONT``, else the first General MIDI SoundFont installed in a usual place."""
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise UserError(f"the SoundFont {path.name} was not found: choose an .sf2 file")
        if path.suffix.lower() not in (".sf2", ".sf3"):
            raise UserError(f"{path.name} is not a SoundFont: choose an .sf2 (or .sf3) file")
        return path
    env = os.environ.get(ENV, "").strip()
    if env.lower() == "none":  # never look for one: always the built-in synth
        return None
    if env and Path(env).expanduser().is_file():
        return Path(env).expanduser()
    for place in SYSTEM_SOUNDFONTS:
        if Path(place).is_file():
            return Path(place).resolve()
    return None


def choose(synth: str = "auto", soundfont: str | os.PathLike[str] | None = None
           ) -> SynthChoice:
    """Which synth renders: ``builtin``, ``soundfont`` (FluidSynth or a UserError saying what
    to install) or ``auto`` (FluidSynth when it can, else the built-in synth with the reason)."""
    if synth == "builtin":
        return SynthChoice()
    if synth not in ("auto", "soundfont"):
        raise UserError(f"synth should be auto, soundfont or builtin, not {synth!r}")
    reason = ""
    try:
        path = find_soundfont(soundfont)
    except UserError:
        if synth == "soundfont" or soundfont:
            raise
        path = None
    if path is None:
        reason = "no General MIDI SoundFont found"
    else:
        try:
            load_fluidsynth()
        except ImportError as exc:
            reason = str(exc)
    if not reason:
        return SynthChoice(path)
    if synth == "soundfont":
        raise UserError(f"cannot render with a SoundFont: {reason}. To hear real instruments, "
                        f"{INSTALL_HELP}")
    return SynthChoice(None, reason)


def channels_for(tracks: Sequence[Track]) -> list[int]:
    """A MIDI channel per track: drums on channel 10 (9 from 0), pitched instruments on the
    other fifteen, one per program (tracks sharing a program share a channel)."""
    free = [c for c in range(16) if c != gm.DRUM_CHANNEL]
    by_program: dict[int, int] = {}
    out = []
    for t in tracks:
        if t.is_drum:
            out.append(gm.DRUM_CHANNEL)
            continue
        if t.program not in by_program:
            by_program[t.program] = free[len(by_program) % len(free)]
        out.append(by_program[t.program])
    return out


def _events(tracks: Sequence[Track], chans: Sequence[int], rate: int
            ) -> list[tuple[int, int, int, int, int]]:
    """(sample, order, kind, channel, a, b) sorted: note-offs before note-ons at one instant,
    so a repeated note is struck again. Kinds: 0 off, 1 control, 2 bend, 3 on."""
    ev: list[Any] = []
    for t, ch in zip(tracks, chans, strict=True):
        for time, num, val in t.controls:
            ev.append((int(round(time * rate)), 1, ch, int(num), int(val)))
        for time, val in t.bends:
            ev.append((int(round(time * rate)), 2, ch, int(val), 0))
        for p, s, e, v in np.asarray(t.notes, dtype=np.float64).reshape(-1, 4).tolist():
            if not 0 <= p <= 127:
                continue
            start = int(round(s * rate))
            stop = max(start + 1, int(round(e * rate)))
            ev.append((start, 3, ch, int(p), int(max(1, min(127, v)))))
            ev.append((stop, 0, ch, int(p), 0))
    ev.sort(key=lambda x: (x[0], x[1]))
    return ev


class _Writer:
    """Steps a synth and collects float stereo output (``fluid_synth_write_float``; the
    16-bit interface when a binding lacks it)."""

    def __init__(self, fs_mod: Any, synth: Any) -> None:
        self.synth = synth
        self.fn = getattr(getattr(fs_mod, "_fl", None), "fluid_synth_write_float", None)
        if self.fn is not None:
            vp, i = ctypes.c_void_p, ctypes.c_int
            self.fn.argtypes = [vp, i, vp, i, i, vp, i, i]
            self.fn.restype = i
        self.chunks: list[np.ndarray] = []
        self.frames = 0

    def write(self, n: int) -> None:
        while n > 0:
            k = min(n, BLOCK)
            if self.fn is not None:
                left = np.zeros(k, dtype=np.float32)
                right = np.zeros(k, dtype=np.float32)
                if self.fn(self.synth.synth, k, left.ctypes.data, 0, 1, right.ctypes.data,
                           0, 1) != 0:
                    raise RuntimeError("FluidSynth failed to render")
                block = np.stack([left, right], 1)
            else:
                raw = np.asarray(self.synth.get_samples(k), dtype=np.float32) / 32768.0
                block = raw.reshape(-1, 2)
            self.chunks.append(block)
            self.frames += k
            n -= k


def render_tracks(tracks: Sequence[Track], soundfont: str | os.PathLike[str],
                  sample_rate: int = 44100, length: float | None = None,
                  normalise: bool = True) -> np.ndarray:
    """Tracks through FluidSynth with ``soundfont``: stereo float32 ``(n, 2)``.

    ``length`` in seconds (default: the last note's end plus :data:`TAIL` for releases and
    reverb). The mix is normalised to :data:`PEAK` so phrases sound as loud whichever
    instruments play them. Raises UserError when the SoundFont cannot be read.
    """
    fs_mod = load_fluidsynth()
    synth = fs_mod.Synth(gain=GAIN, samplerate=float(sample_rate))
    try:
        sfid = synth.sfload(str(Path(soundfont)))
        if sfid < 0:
            raise UserError(f"{Path(soundfont).name} is not a SoundFont FluidSynth can read")
        chans = channels_for(tracks)
        for t, ch in zip(tracks, chans, strict=True):
            # drums: bank 128 (the SoundFont percussion bank), the standard kit
            synth.program_select(ch, sfid, 128 if t.is_drum else 0,
                                 0 if t.is_drum else int(t.program))
        events = _events(tracks, chans, sample_rate)
        last = max((e[0] for e in events), default=0)
        total = int(np.ceil((length if length is not None else last / sample_rate + TAIL)
                            * sample_rate))
        out = _Writer(fs_mod, synth)
        for pos, kind, ch, a, b in events:
            if pos >= total:
                break
            if pos > out.frames:
                out.write(pos - out.frames)
            if kind == 3:
                synth.noteon(ch, a, b)
            elif kind == 0:
                synth.noteoff(ch, a)
            elif kind == 1:
                synth.cc(ch, a, b)
            else:
                synth.pitch_bend(ch, a)
        if total > out.frames:
            out.write(total - out.frames)
    finally:
        synth.delete()
    audio = np.concatenate(out.chunks)[:total] if out.chunks else np.zeros((total, 2),
                                                                           np.float32)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if normalise and peak > 0:
        audio *= PEAK / peak
    return np.ascontiguousarray(audio, dtype=np.float32)


def tracks_of_midi(pm: Any) -> list[Track]:
    """A ``pretty_midi.PrettyMIDI``'s instruments as tracks, with their own programs, drum
    flags, controllers (sustain pedal, volume…) and pitch bends, in the file's own timing."""
    out = []
    for inst in pm.instruments:
        notes = np.asarray([(n.pitch, n.start, n.end, n.velocity) for n in inst.notes],
                           dtype=np.float64).reshape(-1, 4)
        out.append(Track(int(inst.program), bool(inst.is_drum), notes,
                         [(c.time, c.number, c.value) for c in inst.control_changes],
                         [(b.time, b.pitch) for b in inst.pitch_bends]))
    return out
