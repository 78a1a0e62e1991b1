"""A tiny SoundFont written by the tests: one looped pure sine, as a melodic preset (bank 0,
program 0) and as the drum kit (bank 128), so SoundFont rendering is tested without shipping or
downloading a 140 MB General MIDI SoundFont. A sine has no overtones, which the built-in synth's
voices all have: the spectrum says which synth played."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

SF_RATE = 44000  # 100 samples per period of A440: a loop of whole periods
PERIODS = 44


def _chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode("ascii")[:19].ljust(20, b"\0")


def write_sine_sf2(path: Path) -> Path:
    period = SF_RATE // 440
    n = period * PERIODS
    wave = (np.sin(2 * np.pi * np.arange(n) / period) * 20000).astype("<i2")
    smpl = wave.tobytes() + b"\0" * (46 * 2)  # 46 zero points after each sample
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)),
                 _chunk(b"isng", b"EMU8000\0"), _chunk(b"INAM", b"Sine test\0"))
    sdta = _list(b"sdta", _chunk(b"smpl", smpl))
    phdr = b"".join([
        _name("Sine") + struct.pack("<HHHIII", 0, 0, 0, 0, 0, 0),
        _name("Sine kit") + struct.pack("<HHHIII", 0, 128, 1, 0, 0, 0),
        _name("EOP") + struct.pack("<HHHIII", 0, 0, 2, 0, 0, 0)])
    pbag = struct.pack("<HHHHHH", 0, 0, 1, 0, 2, 0)
    pmod = b"\0" * 10
    pgen = struct.pack("<HHHHHH", 41, 0, 41, 0, 0, 0)  # instrument 0, twice; terminal
    inst = _name("Sine") + struct.pack("<H", 0) + _name("EOI") + struct.pack("<H", 1)
    ibag = struct.pack("<HHHH", 0, 0, 2, 0)
    imod = b"\0" * 10
    igen = struct.pack("<HHHHHH", 54, 1, 53, 0, 0, 0)  # loop continuously, sample 0
    shdr = (_name("sine") + struct.pack("<IIIIIBbHH", 0, n, 0, n, SF_RATE, 69, 0, 0, 1)
            + _name("EOS") + struct.pack("<IIIIIBbHH", 0, 0, 0, 0, 0, 0, 0, 0, 0))
    pdta = _list(b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", pmod),
                 _chunk(b"pgen", pgen), _chunk(b"inst", inst), _chunk(b"ibag", ibag),
                 _chunk(b"imod", imod), _chunk(b"igen", igen), _chunk(b"shdr", shdr))
    body = b"sfbk" + info + sdta + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def harmonic_ratio(audio: np.ndarray, rate: int, hz: float) -> float:
    """Energy at the 2nd harmonic of ``hz`` over that at ``hz`` (mono mix)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(1)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)

    def band(f: float) -> float:
        return float(spec[(freqs > f * 0.97) & (freqs < f * 1.03)].max())

    return band(2 * hz) / band(hz)
