"""Training the music VAE privately (DP-SGD through Opacus, one record = one phrase): exact
resume, the spent ε against Opacus's own accountant, the LSTMs Opacus replaces (said in the
log), and a private model that loads and generates like any other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from resume_check import assert_exact_resume

from plugins.common.privacy import METRIC
from plugins.music.params import TrainParams
from studio import manifest, storage

#: a fixed noise seed makes the run reproducible (a real run keeps it secret)
PRIVATE = {"private": True, "epsilon": 8.0, "noise_seed": 2}


def _opacus_epsilon(history: list[list[float]], delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(float(s), float(q), int(n)) for s, q, n in history]
    return float(acc.get_epsilon(delta=delta))


def test_a_private_melody_run_resumes_exactly_and_records_what_it_spent(
        melody_folder: Path, tmp_path: Path) -> None:
    def params(resume: bool) -> TrainParams:
        return TrainParams(data=str(melody_folder), steps=11, preset="tiny", holdout=0.25,
                           batch_size=8, resume=resume, **PRIVATE)

    cut = assert_exact_resume(tmp_path, "music", "train", params,
                              weights=lambda run: storage.load_tensors(run / "model.safetensors"))
    assert 0 < cut < 11
    run = tmp_path / "parts"
    dp = storage.load_state(run / "checkpoints" / "last.safetensors")["privacy"]
    assert sum(int(n) for _, _, n in dp["history"]) == 11
    spent = _opacus_epsilon(dp["history"], dp["delta"])
    assert 0 < spent <= 8.0 * 1.001
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    points = [(r["step"], r["value"]) for r in curve if r["name"] == METRIC]
    assert [s for s, _ in points] == [10, 11]
    assert points[-1][1] == pytest.approx(spent, rel=1e-9)
    config = json.loads((run / "config.json").read_text())
    assert config["privacy"]["epsilon"] == pytest.approx(spent)
    assert config["privacy"]["unit"] == "phrase"
    assert config["privacy_settings"]["epsilon"] == 8.0
    assert config["key_prior"] == [pytest.approx(1 / 24, abs=1e-4)] * 24  # not the data's mix
    m = manifest.read(run)
    assert m is not None and m.models()[-1].info["privacy"]["epsilon"] == pytest.approx(spent)


def test_a_private_model_loads_and_generates_like_any_other(
        melody_folder: Path, tmp_path: Path, run_job) -> None:
    import torch

    from plugins.music.engine import generate as gen

    rec = run_job("train", data=str(melody_folder), steps=3, preset="tiny", holdout=0.25,
                  batch_size=8, out=str(tmp_path / "run"), **PRIVATE)
    assert rec.state == "done", rec.error
    # the saved weights carry the plain LSTM names: the usual loader builds and fills the model
    loaded = gen.load_model(tmp_path / "run")
    names = set(storage.load_tensors(tmp_path / "run" / "model.safetensors"))
    assert "encoder.weight_ih_l0" in names and not any(".ih." in n for n in names)
    z = torch.zeros(1, loaded.model.cfg.latent)
    assert gen.decode(loaded.model, z, 0.0, torch.Generator().manual_seed(0))


def test_private_training_logs_the_replacements(melody_folder: Path, tmp_path: Path) -> None:
    from plugins.common.privacy import PrivacySpec
    from plugins.common.training import QuietReporter
    from plugins.music.engine.config import preset
    from plugins.music.engine.data import load_midi_folder
    from plugins.music.engine.train import MusicTask

    phrases = load_midi_folder(melody_folder, bars=2)
    mc, tc = preset("tiny", "melody", 2)
    tc.batch_size = 8
    rep = QuietReporter()
    task = MusicTask(mc, tc, phrases, None, tmp_path, rep,
                     privacy=PrivacySpec(epsilon=8.0, noise_seed=1))
    task.log_privacy()
    logs = " ".join(t for _, t in rep.logs)
    assert "LSTM layer(s) of the music model were replaced by Opacus's private version" in logs
    assert "every key evenly" in logs and "One record is one phrase" in logs
