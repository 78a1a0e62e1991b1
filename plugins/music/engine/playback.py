"""Real-time playback through PortAudio (sounddevice), designed so the audio thread never waits.

The rule: everything expensive happens *before* Play. The synth renders the whole strip into a
float32 numpy buffer on a render thread (:class:`Transport`); the PortAudio callback
(:meth:`Player._callback`) only copies slices of that buffer into the output block. The callback
takes no locks, allocates no arrays and touches neither torch nor Qt (this module imports
neither). The GUI talks to it through single-writer fields: it writes a play request and bumps a
sequence number; the callback, the only writer of the play position, picks the request up at its
next block. After playback the stream stays open and running (writing silence) for a few
seconds, so pressing Play again is a flag flip, not a stream start; after that it stops itself
and the next Play restarts it (measured by ``bench/music_playback.py``).

``import sounddevice`` raises OSError when the PortAudio library is missing: it is imported only
when playback is first wanted, and the failure becomes :class:`AudioUnavailable` with a message
that says what to install (export keeps working, it needs no audio device).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from plugins.music.engine.arrange import Instruments
from plugins.music.engine.phrase import Phrase
from plugins.music.engine.render import render_strip
from plugins.music.engine.soundfont import SynthChoice
from plugins.music.engine.synth import SAMPLE_RATE

PORTAUDIO_HELP = ("install the PortAudio library (Debian/Ubuntu: sudo apt install libportaudio2; "
                  "Fedora: sudo dnf install portaudio; macOS: brew install portaudio) and restart "
                  "the studio")
SILENCE = 1e-4
N_TIMINGS = 4096


class AudioUnavailable(RuntimeError):
    """Playback cannot work here; the message says why and what to do. Export still works."""


def load_sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into :class:`AudioUnavailable`."""
    try:
        import sounddevice
    except OSError as exc:
        raise AudioUnavailable(f"Playback is off: the PortAudio library was not found ({exc}). "
                               f"To play sound, {PORTAUDIO_HELP}. Export to MIDI and WAV still "
                               "works.") from None
    except ImportError as exc:
        raise AudioUnavailable(f"Playback is off: the sounddevice package is not installed "
                               f"({exc}). Export to MIDI and WAV still works.") from None
    return sounddevice


class Player:
    """Plays ranges of one preallocated buffer, once or looped.

    Args:
        sample_rate: of the buffer and the stream.
        channels: output channels (the mono buffer is copied to each).
        latency: PortAudio's suggested latency ("low", "high" or seconds).
        capture: keep a copy of every frame written (tests check what was really sent).
        keepalive: seconds of silence the stream keeps running after playback, so the next
            Play starts at the next block instead of waiting for a stream start.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, channels: int = 2,
                 latency: str | float = "low", blocksize: int = 0, device: Any = None,
                 capture: bool = False, keepalive: float = 3.0) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.latency = latency
        self.blocksize = blocksize
        self.device = device
        self._capture_on = capture
        self.capture: np.ndarray | None = None
        self._buf = np.zeros((0, 1), dtype=np.float32)
        # written by the GUI thread only
        self._req: tuple[int, int, int] = (0, 0, -1)  # start, end, first non-silent sample
        self._req_seq = 0
        self._stop_seq = 0
        self.loop = False
        self._want = False
        self.keepalive_frames = int(keepalive * sample_rate)
        # written by the audio callback only
        self._idle = 0
        self._seen_seq = 0
        self._seen_stop = 0
        self._pos = 0
        self._start = 0
        self._end = 0
        self._playing = False
        self._first_nz = -1
        self.t_first_audio = 0.0
        self.frames_out = 0
        self.underflows = 0
        self.timings = np.zeros(N_TIMINGS, dtype=np.float64)
        self.n_callbacks = 0
        # other
        self.t_play = 0.0
        self._sd: Any = None
        self._stream: Any = None
        self._lock = threading.Lock()  # GUI-side only (open/close), never taken by the callback

    # -- availability ---------------------------------------------------------------------------
    def ensure_audio(self) -> Any:
        if self._sd is None:
            self._sd = load_sounddevice()
        return self._sd

    @property
    def output_latency(self) -> float | None:
        """The stream's reported output latency in seconds (device buffering after the
        callback), once a stream is open."""
        return float(self._stream.latency) if self._stream is not None else None

    # -- buffer ---------------------------------------------------------------------------------
    def set_buffer(self, samples: np.ndarray) -> None:
        """Swap in a new rendered buffer (any thread): mono ``(n,)`` or stereo ``(n, 2)`` (mixed
        down here, not in the callback, for a one-channel device). Takes effect at the next
        block."""
        a = np.asarray(samples, dtype=np.float32)
        a = a.reshape(-1, 1) if a.ndim == 1 else a.reshape(a.shape[0], -1)
        if a.shape[1] not in (1, self.channels):
            a = a.mean(axis=1, keepdims=True)
        buf = np.ascontiguousarray(a)
        if self._capture_on:
            self.capture = np.zeros_like(buf)
        self._buf = buf

    @property
    def buffer_frames(self) -> int:
        return int(self._buf.shape[0])

    # -- transport ------------------------------------------------------------------------------
    def play(self, start: int = 0, end: int | None = None, loop: bool | None = None) -> None:
        """Play frames ``[start, end)`` of the buffer (all of it by default)."""
        buf = self._buf
        n = buf.shape[0]
        end = n if end is None else max(0, min(int(end), n))
        start = max(0, min(int(start), end))
        if loop is not None:
            self.loop = bool(loop)
        loud = np.flatnonzero(np.abs(buf[start:end, 0]) > SILENCE)
        first = start + int(loud[0]) if len(loud) else -1
        self.t_first_audio = 0.0
        self.t_play = time.perf_counter()
        self._req = (start, end, first)
        self._req_seq += 1
        self._want = True
        self._start_stream()

    def stop(self) -> None:
        """Silence from the next block (the stream idles on for ``keepalive`` seconds)."""
        self._want = False
        self._stop_seq += 1

    @property
    def playing(self) -> bool:
        """True from :meth:`play` until the range ends (not looping) or :meth:`stop`."""
        if not self._want or self._stream is None:
            return False
        return self._req_seq != self._seen_seq or (self._playing and self._stream.active)

    @property
    def position(self) -> int:
        """The frame the callback will write next."""
        return self._pos

    @property
    def latency_to_sound(self) -> float | None:
        """Seconds from the last :meth:`play` call to the callback writing its first non-silent
        frame (None until it has)."""
        return self.t_first_audio - self.t_play if self.t_first_audio else None

    def callback_times(self) -> np.ndarray:
        """Durations (s) of the most recent callbacks (up to 4096)."""
        return self.timings[:min(self.n_callbacks, N_TIMINGS)].copy()

    def _start_stream(self) -> None:
        sd = self.ensure_audio()
        with self._lock:
            if self._stream is None:
                try:
                    self._stream = sd.OutputStream(
                        samplerate=self.sample_rate, channels=self.channels, dtype="float32",
                        latency=self.latency, blocksize=self.blocksize, device=self.device,
                        callback=self._callback, finished_callback=self._finished)
                except Exception as exc:  # sd.PortAudioError, ValueError for bad devices
                    raise AudioUnavailable(
                        f"No audio output device could be opened ({exc}). Check the system's "
                        "sound settings; export to MIDI and WAV still works.") from None
            if not self._stream.active:
                if not self._stream.stopped:
                    self._stream.stop()  # it ran to its end: reset before starting again
                self._stream.start()

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.abort()
                    self._stream.close()
                finally:
                    self._stream = None

    # -- the audio thread -----------------------------------------------------------------------
    def _finished(self) -> None:
        self._playing = False

    def poll(self) -> None:
        """Called now and then by the GUI: restarts the stream if a Play request landed just as
        the previous playback ran out and the stream stopped before seeing it."""
        if self._req_seq != self._seen_seq and self._stream is not None \
                and not self._stream.active:
            self._start_stream()

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Copy the next ``frames`` of the buffer; runs on PortAudio's thread."""
        t0 = time.perf_counter()
        if status.output_underflow:
            self.underflows += 1
        if self._seen_stop != self._stop_seq:
            self._seen_stop = self._stop_seq
            self._playing = False
        seq = self._req_seq
        if seq != self._seen_seq:
            self._seen_seq = seq
            if self._want:  # a Stop pressed after this Play wins
                self._start, self._end, self._first_nz = self._req
                self._pos = self._start
                self._playing = True
        buf = self._buf
        pos, end = self._pos, min(self._end, buf.shape[0])
        filled = 0
        if self._playing:
            while filled < frames:
                if pos >= end:
                    if self.loop and end > self._start:
                        pos = self._start
                    else:
                        self._playing = False
                        break
                k = min(frames - filled, end - pos)
                outdata[filled:filled + k] = buf[pos:pos + k]
                if self.capture is not None and self.capture.shape[0] == buf.shape[0]:
                    self.capture[pos:pos + k] = buf[pos:pos + k]
                if not self.t_first_audio and pos <= self._first_nz < pos + k:
                    self.t_first_audio = time.perf_counter()
                pos += k
                filled += k
        if filled < frames:
            outdata[filled:] = 0.0
        self._pos = pos
        self.frames_out += frames
        self._idle = 0 if self._playing else self._idle + frames
        self.timings[self.n_callbacks % N_TIMINGS] = time.perf_counter() - t0
        self.n_callbacks += 1
        if self._idle > self.keepalive_frames and self._sd is not None:
            raise self._sd.CallbackStop  # idle long enough: release the device


class Transport:
    """The strip as sound: renders ahead of time on its own thread, plays through a
    :class:`Player`.

    ``set_strip`` (GUI thread) returns at once; the render runs on a worker thread and swaps the
    buffer in when done. ``play`` with a buffer ready starts within one stream start; pressed
    while rendering, playback starts the moment the render lands.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, player: Player | None = None) -> None:
        self.sample_rate = sample_rate
        self.player = player or Player(sample_rate)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="music-render")
        self._version = 0
        self._ready_version = -1
        self.bounds: list[int] = [0]
        self._pending: tuple[int | None, bool] | None = None
        self._future: Future[None] | None = None
        self.phrase_count = 0
        self.tempo = 120.0
        self.rendered_with = ""  # which synth made the buffer, in words
        self.render_error = ""

    def set_strip(self, phrases: Sequence[Phrase], tempo: float, voice: str = "piano",
                  choice: SynthChoice | None = None, instruments: Instruments | None = None
                  ) -> Future[None]:
        """Render the strip (on the render thread) with ``choice``'s synth; a SoundFont that
        fails to render falls back to the built-in synth and says so in ``rendered_with``."""
        self._version += 1
        version = self._version
        items = list(phrases)
        self.tempo = float(tempo)

        def work() -> None:
            try:
                done = render_strip(items, tempo, self.sample_rate, voice, choice, instruments)
                error = ""
            except Exception as exc:  # a damaged SoundFont: play the built-in synth, say why
                if choice is None or not choice.uses_soundfont:
                    raise
                done = render_strip(items, tempo, self.sample_rate, voice,
                                    SynthChoice(None, f"the SoundFont failed: {exc}"),
                                    instruments)
                error = str(exc)
            if version != self._version:
                return  # a newer strip was asked for meanwhile
            self.player.set_buffer(done.audio)
            self.bounds = done.bounds
            self.rendered_with = done.describe()
            self.render_error = error
            self.phrase_count = len(items)
            self._ready_version = version
            pending, self._pending = self._pending, None
            if pending is not None:
                self._play_now(*pending)

        self._future = self._pool.submit(work)
        return self._future

    @property
    def ready(self) -> bool:
        return self._ready_version == self._version

    def wait_ready(self, timeout: float | None = None) -> bool:
        fut = self._future
        if fut is None:
            return True
        fut.result(timeout)
        return self.ready

    def play(self, index: int | None = None, loop: bool = False) -> None:
        """Play phrase ``index`` (None: the whole strip). Raises AudioUnavailable."""
        self.player.ensure_audio()
        if self.ready:
            self._play_now(index, loop)
        else:
            self._pending = (index, loop)

    def _play_now(self, index: int | None, loop: bool) -> None:
        b = self.bounds
        if index is None or not 0 <= index < len(b) - 1:
            start, end = 0, self.player.buffer_frames
        else:
            start, end = b[index], b[index + 1]
        self.player.play(start, end, loop)

    def stop(self) -> None:
        self._pending = None
        self.player.stop()

    def set_loop(self, loop: bool) -> None:
        self.player.loop = bool(loop)

    def audio(self, index: int | None = None, timeout: float = 30.0) -> np.ndarray:
        """The rendered samples of one phrase or the strip (waits for the render)."""
        self.wait_ready(timeout)
        buf = self.player._buf
        buf = buf[:, 0] if buf.shape[1] == 1 else buf
        if index is None:
            return buf.copy()
        return buf[self.bounds[index]:self.bounds[index + 1]].copy()

    def playhead(self) -> tuple[int, float] | None:
        """(phrase index, fraction through it) while playing, else None."""
        self.player.poll()
        if not self.player.playing:
            return None
        pos = self.player.position
        b = self.bounds
        for i in range(len(b) - 1):
            if b[i] <= pos < b[i + 1]:
                return i, (pos - b[i]) / max(1, b[i + 1] - b[i])
        return None

    def close(self) -> None:
        self._pending = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.player.close()
