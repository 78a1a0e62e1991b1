"""Fixtures for the music plugin's tests: small MIDI folders and a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PHRASE_A = np.array([[60, 0, 4, 90], [62, 4, 8, 90], [64, 8, 12, 90], [65, 12, 16, 90],
                     [67, 16, 24, 90], [64, 24, 32, 90]], dtype=np.int32)
PHRASE_B = np.array([[72, 0, 2, 90], [71, 2, 4, 90], [69, 4, 8, 90], [67, 8, 16, 90],
                     [69, 16, 20, 90], [65, 20, 28, 90]], dtype=np.int32)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train many times faster on one thread than on two busy ones."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


@pytest.fixture(scope="session")
def melody_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight 4-bar songs in 4/4 (two with a bass track)."""
    root = tmp_path_factory.mktemp("midi")
    for i in range(8):
        write_song(root / f"song_{i}.mid", i, tracks=2 if i % 4 == 0 else 1)
    return root


@pytest.fixture(scope="session")
def memorised_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small melody VAE trained until it reconstructs PHRASE_A and PHRASE_B exactly."""
    import torch

    from plugins.music.engine.config import ModelConfig, TrainConfig
    from plugins.music.engine.data import PhraseSet
    from plugins.music.engine.phrase import notes_to_tokens
    from plugins.music.engine.train import QuietReporter, Trainer

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        toks = np.stack([notes_to_tokens(PHRASE_A, 32), notes_to_tokens(PHRASE_B, 32)] * 8)
        ps = PhraseSet("melody", 2, toks, np.arange(16) % 2, [Path("a.mid"), Path("b.mid")])
        mc = ModelConfig(latent=8, embed=16, enc_hidden=32, dec_hidden=64)
        tc = TrainConfig(steps=600, batch_size=16, lr=3e-3, lr_final=1e-3, beta=0.1,
                         free_bits=16.0, kl_warmup=50, eval_every=10**9,
                         checkpoint_every=10**9, seed=0)
        run = tmp_path_factory.mktemp("memorised")
        Trainer(mc, tc, ps, None, run, QuietReporter(), extra_config={"tempo": 110.0}).run()
    finally:
        torch.set_num_threads(n)
    return run


@pytest.fixture
def run_job(studio_home: Path):
    """Run one of the music plugin's jobs the way ``studio run music JOB`` does (a JobRunner,
    parameters bound from the job's signature) and return its finished record."""
    from plugins.music.plugin import MusicPlugin
    from studio import settings as settings_mod
    from studio.jobs import JobRunner

    runners: list[JobRunner] = []

    def run(job: str, timeout: float = 120.0, **params: object):
        runner = JobRunner(settings=settings_mod.load())
        runners.append(runner)
        rec = runner.submit("music", MusicPlugin().job(job), params)
        return runner.wait(rec.id, timeout)

    yield run
    for r in runners:
        r.shutdown(timeout=10)
