"""Fixtures for the GAN plugin tests: one thread, tiny image folders, one trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gan_helpers import TINY, make_folder, run_job


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train faster on one thread (and far faster on a shared, busy CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "bars")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny conditional run shared by the sampling / exploring tests."""
    root = tmp_path_factory.mktemp("gan_trained")
    folder = make_folder(root / "data", broken=False)
    torch.set_num_threads(1)
    rec = run_job("train", data=str(folder), steps=6, out=str(root / "run"), **TINY)
    assert rec.state == "done", rec.error
    return root / "run"
