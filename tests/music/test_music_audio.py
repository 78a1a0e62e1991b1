"""Audio mode (log-mel, Griffin-Lim, audio folders) and the synth / render job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugins.music.engine.config import AudioConfig
from studio.errors import UserError


def tone(seconds: float, sr: int, freqs: tuple[float, ...] = (220.0, 330.0, 440.0)
         ) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)  # some movement over time
    x = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate(freqs))
    return (0.3 * env * x).astype(np.float32)


def rich(n: int, sr: int) -> np.ndarray:
    """A bright chord with vibrato, a tremolo and a little noise: energy in every mel band."""
    t = np.arange(n) / sr
    vib = 1 + 0.003 * np.sin(2 * np.pi * 5 * t)
    x = sum(np.sin(2 * np.pi * f * h * t * vib) / h for f in (196, 247, 294)
            for h in range(1, 20) if f * h < sr / 2 - 200)
    noise = np.random.default_rng(0).standard_normal(n)
    return (0.1 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) + 0.01 * noise).astype(np.float32)


def test_mel_griffin_lim_mel_stays_close() -> None:
    from plugins.music.engine.audio import log_mel, mel_to_audio

    cfg = AudioConfig()
    wave = rich(cfg.clip_samples, cfg.sample_rate)
    mel = log_mel(wave, cfg)
    assert mel.shape == (cfg.n_mels, cfg.frames)
    assert mel.min() >= 0.0 and mel.max() <= 1.0
    back = mel_to_audio(mel, cfg)
    assert abs(len(back) - len(wave)) <= cfg.hop
    mel2 = log_mel(back[: len(wave)], cfg)[:, : cfg.frames]
    err_db = np.abs(mel2 - mel) * cfg.top_db
    assert err_db.mean() < 3.0, err_db.mean()  # about 1.4 dB here
    assert err_db[mel > 0.3].mean() < 2.0  # the loud part: about 0.8 dB
    silence = mel_to_audio(np.zeros_like(mel), cfg)
    assert np.abs(silence).max() < 1e-4  # the floor decodes to silence, not noise


def test_audio_folder_report(tmp_path: Path) -> None:
    import soundfile as sf

    from plugins.music.engine.audio import load_audio_folder

    cfg = AudioConfig()
    sf.write(tmp_path / "a.wav", tone(5.0, 22050), 22050)  # resampled to 16 kHz
    sf.write(tmp_path / "b.flac", np.stack([tone(2.5, 16000)] * 2, 1), 16000)  # stereo
    sf.write(tmp_path / "c.ogg", tone(2.2, 16000), 16000, format="OGG", subtype="VORBIS")
    sf.write(tmp_path / "quiet.wav", np.zeros(40000, np.float32), 16000)
    sf.write(tmp_path / "short.wav", tone(0.5, 16000), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (tmp_path / "empty.flac").write_bytes(b"")
    ps = load_audio_folder(tmp_path, cfg)
    reasons = {r.path.name: r.reason for r in ps.reports}
    assert reasons["a.wav"] == reasons["b.flac"] == reasons["c.ogg"] == ""
    assert "silent" in reasons["quiet.wav"]
    assert "shorter than one" in reasons["short.wav"]
    assert "not a readable audio file" in reasons["broken.wav"]
    assert "empty" in reasons["empty.flac"]
    assert ps.data.shape == (2 + 1 + 1, 1, cfg.n_mels, cfg.frames)
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(UserError, match="has no audio files"):
        load_audio_folder(empty, cfg)


def test_synth_pitch_and_length() -> None:
    from plugins.music.engine.synth import render_notes

    sr = 44100
    audio = render_notes(np.array([[69, 0.0, 1.0, 100]]), sr)
    assert audio.dtype == np.float32
    assert len(audio) == pytest.approx(sr * 1.08, abs=2)
    spec = np.abs(np.fft.rfft(audio[: sr // 2]))
    assert np.argmax(spec) * 2 == pytest.approx(440, abs=2)
    assert 0.05 < np.abs(audio).max() <= 0.95
    assert abs(audio[-1]) < 1e-3  # released, no click


def test_render_job_writes_wav(tmp_path: Path, run_job) -> None:
    import soundfile as sf

    from plugins.music.engine import midi as midi_mod
    from plugins.music.engine.phrase import Phrase

    notes = np.array([[60, 0, 8, 90], [64, 8, 16, 90], [67, 16, 32, 90]], dtype=np.int32)
    mid = midi_mod.write_midi(Phrase(notes, 32), tmp_path / "p.mid", tempo=120.0)
    rec = run_job("render", midi=str(mid), out=str(tmp_path / "p.wav"), synth="builtin")
    assert rec.state == "done", rec.error
    data, sr = sf.read(rec.result)
    assert sr == 44100 and len(data) / sr == pytest.approx(4.0 + 0.08, abs=0.01)
    rec = run_job("render", midi=str(mid), out=str(tmp_path / "slow.wav"), tempo=60.0,
                  synth="builtin")
    assert sf.info(rec.result).duration == pytest.approx(8.08, abs=0.01)
    rec = run_job("render", midi=str(tmp_path / "missing.mid"), out=str(tmp_path / "x.wav"))
    assert rec.state == "failed" and "missing.mid" in rec.error
    rec = run_job("render", midi=str(mid), out=str(tmp_path / "x.mp4"))
    assert rec.state == "failed" and ".wav" in rec.error
