"""Audio mode: sound files into log-mel clips (torchaudio) and generated mels back into sound.

Files are read with soundfile (WAV, FLAC, OGG/Vorbis, AIFF and, where libsndfile has it, MP3),
mixed to mono, resampled to the model's rate, cut into fixed-length clips and turned into
log-mel spectrograms scaled to [0, 1] against a fixed full-scale reference (so quiet clips stay
quiet). Griffin-Lim (torchaudio) turns a mel back into a waveform: the mel is first mapped to a
linear-frequency spectrogram by least squares (``InverseMelScale``), then phase is estimated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plugins.music.engine.config import AudioConfig
from plugins.music.engine.data import FileReport, PhraseSet, scan
from studio.errors import UserError

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
SILENCE_DBFS = -50.0
#: sample rates a sound file may have: outside them a header is broken (resampling from 4 GHz
#: would build a filter of billions of taps)
MIN_RATE, MAX_RATE = 1000, 768_000
MAX_SECONDS = 3600  # the longest sound file read (an hour at 48 kHz is 690 MB of samples)
#: float samples this far beyond full scale are a damaged file (their power overflows float32)
MAX_LEVEL = 64.0


class AudioError(ValueError):
    """An audio file that cannot be used; the message is the reason."""


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the file's sample rate. Raises :class:`AudioError`.

    The file is read in blocks, never by the length its header claims (a damaged header can
    claim billions of frames), up to :data:`MAX_SECONDS`."""
    import soundfile as sf

    path = Path(path)
    parts: list[np.ndarray] = []
    try:
        if path.stat().st_size == 0:
            raise AudioError("is empty (0 bytes)")
        with sf.SoundFile(str(path)) as fh:
            sr, channels = int(fh.samplerate), int(fh.channels)
            if not MIN_RATE <= sr <= MAX_RATE:
                raise AudioError(f"has a sample rate of {sr:,} Hz (sound files have "
                                 f"{MIN_RATE:,} to {MAX_RATE:,})")
            if channels < 1:
                raise AudioError("has no channels")
            block, total = max(1024, (1 << 20) // channels), 0
            while True:
                part = fh.read(block, dtype="float32", always_2d=True)
                if not len(part):
                    break
                parts.append(part.mean(axis=1, dtype=np.float32))
                total += len(part)
                if total > MAX_SECONDS * sr:
                    raise AudioError(f"lasts more than {MAX_SECONDS // 60} minutes: the studio "
                                     "reads sound files up to an hour long (split it)")
    except AudioError:
        raise
    except (RuntimeError, OSError, ValueError, TypeError, EOFError, MemoryError,
            OverflowError) as exc:  # sf.LibsndfileError et al.
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"is not a readable audio file ({text})") from None
    mono = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if not len(mono):
        raise AudioError("has no samples")
    if not np.isfinite(mono).all():
        raise AudioError("has samples that are not numbers (NaN or infinity): a damaged file?")
    if float(np.abs(mono).max()) > MAX_LEVEL:
        raise AudioError("has samples far beyond full scale (over 64 times louder): a damaged "
                         "file?")
    return mono, sr


def resample(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    """``x`` at ``sr`` resampled to ``target`` (windowed sinc, torchaudio).

    torchaudio's filter bank has one row per output phase and is as wide as the input's
    period, both set by the rates' ratio in lowest terms: 44,100 to 16,000 Hz is 441:160, but
    an odd rate such as 44,101 Hz would be 44,101:16,000 (a 2.8 GB filter; 767,999 Hz, 49 GB).
    The ratio is therefore taken to the nearest fraction with a denominator up to 1,000, which
    is exact for every common rate and off by a few millionths for the odd ones (44,101 Hz
    comes out at 16,000.06 Hz: a hundredth of a cent, no audible change)."""
    if sr == target:
        return np.asarray(x, dtype=np.float32)
    import torchaudio.functional as AF

    ratio = Fraction(target, sr).limit_denominator(1000)
    y = AF.resample(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                    ratio.denominator, ratio.numerator)
    return y.numpy()


def reference_db(cfg: AudioConfig) -> float:
    """Mel power (dB) of a full-scale sine: the top of the [0, 1] range."""
    return 20.0 * math.log10(cfg.n_fft / 4.0)


@lru_cache(maxsize=4)
def _mel(sample_rate: int, n_fft: int, hop: int, n_mels: int) -> Any:
    import torchaudio.transforms as T

    return T.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                            power=2.0)


@lru_cache(maxsize=4)
def _inverse(sample_rate: int, n_fft: int, hop: int, n_mels: int, iters: int) -> tuple[Any, Any]:
    import torchaudio.transforms as T

    inv = T.InverseMelScale(n_stft=n_fft // 2 + 1, n_mels=n_mels, sample_rate=sample_rate)
    gl = T.GriffinLim(n_fft=n_fft, hop_length=hop, power=2.0, n_iter=iters)
    return inv, gl


def log_mel(wave: np.ndarray | torch.Tensor, cfg: AudioConfig) -> np.ndarray:
    """``(n_mels, frames)`` in [0, 1] for a mono waveform (or ``(B, n_mels, frames)``)."""
    x = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    mel = _mel(cfg.sample_rate, cfg.n_fft, cfg.hop, cfg.n_mels)(x)
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    unit = ((db - reference_db(cfg)) / cfg.top_db + 1.0).clamp(0.0, 1.0)
    return unit.numpy().astype(np.float32)


def mel_to_audio(unit_mel: np.ndarray | torch.Tensor, cfg: AudioConfig,
                 seed: int = 0) -> np.ndarray:
    """Griffin-Lim: ``(n_mels, frames)`` (or batched) in [0, 1] back to float32 samples."""
    m = torch.as_tensor(np.asarray(unit_mel, dtype=np.float32))
    db = (m - 1.0) * cfg.top_db + reference_db(cfg)
    power = torch.pow(10.0, db / 10.0)
    power = torch.where(m <= 0.0, torch.zeros_like(power), power)  # the floor means silence
    inv, gl = _inverse(cfg.sample_rate, cfg.n_fft, cfg.hop, cfg.n_mels, cfg.griffin_lim_iters)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # Griffin-Lim starts from random phases: keep it reproducible
        wave = gl(inv(power))
    return wave.numpy().astype(np.float32)


def clips(wave: np.ndarray, cfg: AudioConfig) -> list[np.ndarray]:
    """Non-overlapping clips of ``cfg.clip_samples``; silent ones (below -50 dBFS RMS) dropped."""
    return [c for _, c in clip_spans(wave, cfg)]


def clip_spans(wave: np.ndarray, cfg: AudioConfig) -> list[tuple[int, np.ndarray]]:
    """:func:`clips` with the sample each one starts at (a run records which seconds of a file
    it trained on)."""
    n = cfg.clip_samples
    out = []
    for s in range(0, len(wave) - n + 1, n):
        c = wave[s:s + n]
        rms = float(np.sqrt(np.mean(c.astype(np.float64) ** 2)))
        if rms > 0 and 20 * math.log10(rms) > SILENCE_DBFS:
            out.append((s, c))
    return out


def load_audio_folder(
    root: str | os.PathLike[str],
    cfg: AudioConfig,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
    max_clips_per_file: int = 200,
) -> PhraseSet:
    """Log-mel clips of every audio file under ``root`` (with a per-file report)."""
    root = Path(root).expanduser()
    files = scan(root, AUDIO_EXTS)
    if not files:
        raise UserError(f"{root} has no audio files (looked for {', '.join(AUDIO_EXTS)}, "
                        "including sub-folders)")
    mels: list[np.ndarray] = []
    index: list[int] = []
    parts: list[str] = []
    reports: list[FileReport] = []
    for i, f in enumerate(files):
        if check is not None:
            check()
        rep = FileReport(f)
        reports.append(rep)
        try:
            wave, sr = read_audio(f)
        except AudioError as exc:
            rep.reason = str(exc)
            continue
        wave = resample(wave, sr, cfg.sample_rate)
        spans = clip_spans(wave, cfg)[:max_clips_per_file]
        cs = [c for _, c in spans]
        if not cs:
            secs = cfg.clip_samples / cfg.sample_rate
            rep.reason = (f"shorter than one {secs:.2f} s clip" if len(wave) < cfg.clip_samples
                          else "silent (below -50 dBFS)")
            continue
        batch = log_mel(np.stack(cs), cfg)
        mels += list(batch[:, None])
        index += [i] * len(cs)
        rate = cfg.sample_rate
        parts += [f"seconds {s / rate:.2f}-{(s + cfg.clip_samples) / rate:.2f}"
                  for s, _ in spans]
        rep.phrases = len(cs)
        if progress is not None:
            progress(i + 1, len(files))
    if not mels:
        reasons = "; ".join(f"{r.path.name}: {r.reason}" for r in reports[:3] if r.reason)
        raise UserError(f"none of the {len(files)} audio files in {root} gave a clip "
                        f"({reasons}{' …' if len(reports) > 3 else ''})")
    return PhraseSet("audio", 0, np.stack(mels).astype(np.float32),
                     np.asarray(index, dtype=np.int64), files, reports, root, parts=parts)


def first_clip(path: str | os.PathLike[str], cfg: AudioConfig) -> np.ndarray:
    """The first non-silent clip of a file as a ``(1, n_mels, frames)`` mel (for encoding)."""
    try:
        wave, sr = read_audio(path)
    except AudioError as exc:
        raise UserError(f"{Path(path).name} {exc}") from None
    wave = resample(wave, sr, cfg.sample_rate)
    if len(wave) < cfg.clip_samples:
        wave = np.pad(wave, (0, cfg.clip_samples - len(wave)))
    cs = clips(wave, cfg)
    if not cs:
        raise UserError(f"{Path(path).name} is silent: nothing to encode")
    return log_mel(cs[0], cfg)[None]

