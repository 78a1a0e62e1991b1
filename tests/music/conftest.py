"""Fixtures for the music plugin's tests: small MIDI folders and a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from music_helpers import PHRASE_A, PHRASE_B, write_song


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train many times faster on one thread than on two busy ones."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def no_machine_soundfont(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite sounds the same whether or not this machine has a General MIDI SoundFont
    installed: tests that want one choose it (or delete the variable)."""
    monkeypatch.setenv("STUDIO_SOUNDFONT", "none")


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

    from plugins.common.training import QuietReporter, TrainLoop
    from plugins.music.engine.config import ModelConfig, TrainConfig
    from plugins.music.engine.data import PhraseSet
    from plugins.music.engine.phrase import notes_to_tokens
    from plugins.music.engine.train import MusicTask, schedule

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
        task = MusicTask(mc, tc, ps, None, run, QuietReporter(), extra_config={"tempo": 110.0})
        TrainLoop(task, schedule(tc), QuietReporter()).run()
    finally:
        torch.set_num_threads(n)
    return run


@pytest.fixture
def run_job(studio_home: Path):
    """Run one of the music plugin's jobs the way ``studio run music JOB`` does (a JobRunner,
    parameters read into the job's params dataclass) and return its finished record."""
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
