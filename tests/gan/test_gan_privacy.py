"""Training a GAN privately (DP-SGD on the discriminator through Opacus): exact resume, the
spent ε against Opacus's own accountant, what a private run records and says, and what it
refuses."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from gan_helpers import TINY, run_job
from resume_check import assert_exact_resume

from plugins.common.privacy import METRIC
from plugins.gan.params import TrainParams
from studio import manifest, params, storage
from studio.errors import UserError

CKPT = Path("checkpoints") / "last.safetensors"
#: a fixed noise seed makes the private run reproducible (a real run keeps it secret)
PRIVATE = {"private": True, "epsilon": 8.0, "noise_seed": 11}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    st = storage.load_state(run / CKPT)
    out = {f"G.{k}": v for k, v in st["G"].items()}
    out |= {f"D.{k}": v for k, v in st["D"].items()}
    out |= {f"export.{k}": v
            for k, v in storage.load_tensors(run / "generator.safetensors").items()}
    out["sampler"] = st["privacy"]["sampler"]
    out["noise"] = st["privacy"]["noise"]
    return out


def _opacus_epsilon(history: list[list[float]], delta: float) -> float:
    """What Opacus's own RDP accountant says for a history (nothing of ours in between)."""
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(float(s), float(q), int(n)) for s, q, n in history]
    return float(acc.get_epsilon(delta=delta))


def test_a_private_run_resumes_exactly_and_spends_what_opacus_counts(tiny_folder: Path,
                                                                     tmp_path: Path) -> None:
    def make(resume: bool) -> TrainParams:
        return TrainParams(data=str(tiny_folder), steps=8, resume=resume, arch="dcgan",
                           **{**TINY, "checkpoint_every": 3}, **PRIVATE)

    cut = assert_exact_resume(tmp_path, "gan", "train", make, _weights, cancel_after_metrics=5)
    assert 0 < cut < 8
    run = tmp_path / "parts"
    st = storage.load_state(run / CKPT)
    dp = st["privacy"]
    assert sum(int(n) for _, _, n in dp["history"]) == 8  # one private step per critic step
    spent = _opacus_epsilon(dp["history"], dp["delta"])
    assert 0 < spent <= 8.0 * 1.001  # calibrated to the target, never above it
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    eps_points = [(r["step"], r["value"]) for r in curve if r["name"] == METRIC]
    assert eps_points[-1][0] == 8 and eps_points[-1][1] == pytest.approx(spent, rel=1e-9)
    assert all(a[1] < b[1] for a, b in itertools.pairwise(eps_points))
    # the model and the manifest carry what was spent
    info = json.loads((run / "config.json").read_text())
    assert info["privacy"]["epsilon"] == pytest.approx(spent)
    assert info["config"]["private"]["epsilon"] == 8.0
    m = manifest.read(run)
    assert m is not None
    assert m.models()[-1].info["privacy"]["epsilon"] == pytest.approx(spent)
    assert m.params["private"] is True


def test_a_stopped_private_run_records_what_it_spent(tiny_folder: Path, tmp_path: Path) -> None:
    from plugins.gan.plugin import GanPlugin
    from studio.jobs import CANCELLED, JobRunner
    from studio.settings import Settings

    runner: JobRunner
    seen = {"n": 0}

    def listen(ev) -> None:
        if ev.kind == "metrics":
            before = seen["n"]
            seen["n"] += len(ev.data["points"])
            if before < 4 <= seen["n"]:
                runner.cancel(ev.job_id)

    runner = JobRunner(listen, settings=Settings(device="cpu", cpu_threads=1))
    try:
        rec = runner.submit("gan", GanPlugin().job("train"),
                            TrainParams(data=str(tiny_folder), steps=40, **TINY, **PRIVATE),
                            out=tmp_path / "run")
        runner.wait(rec.id, 240)
    finally:
        runner.shutdown()
    assert rec.state == CANCELLED
    st = storage.load_state(tmp_path / "run" / CKPT)
    stopped_at = int(st["__loop__"]["step"])
    dp = st["privacy"]
    assert 0 < stopped_at < 40
    assert sum(int(n) for _, _, n in dp["history"]) == stopped_at
    spent = _opacus_epsilon(dp["history"], dp["delta"])
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["privacy"]["steps"] == stopped_at
    assert info["privacy"]["epsilon"] == pytest.approx(spent)
    assert spent < 8.0  # the target is reached at step 40, not at the stop


def test_the_run_says_what_it_replaced(tiny_folder: Path, tmp_path: Path) -> None:
    events: list = []
    rec = run_job("train", events, data=str(tiny_folder), steps=2, arch="dcgan",
                  out=str(tmp_path / "run"), **TINY, **PRIVATE)
    assert rec.state == "done", rec.error
    logs = " ".join(e.data["text"] for e in events if e.kind == "log")
    assert "2 batch-norm layer(s) of the discriminator were replaced by group norm" in logs
    assert "minibatch-variety feature is off" in logs
    assert "Training privately (DP-SGD with Opacus)" in logs
    assert "Privacy spent: ε =" in logs


def test_the_discriminator_of_a_private_config_has_only_layers_opacus_can_train() -> None:
    from opacus.validators import ModuleValidator

    from plugins.gan.engine.config import make_config
    from plugins.gan.engine.models import Discriminator

    for arch, said in (("dcgan", "group norm"), ("sngan", "Spectral normalisation")):
        cfg = make_config(arch, "fast", size=16, num_classes=2, private={"epsilon": 8.0})
        assert cfg.mbstd_group == 0 and cfg.amp == "off"
        d = Discriminator(cfg)
        assert ModuleValidator.validate(d, strict=False) == []
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
        assert any(said in note for note in d.private_notes)
        # rebuilt from the same config (resume, the audit), it has the same weights' names
        assert d.state_dict().keys() == Discriminator(cfg).state_dict().keys()


def test_private_training_refuses_what_it_cannot_do(tiny_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="WGAN-GP cannot train privately"):
        params.prepare(TrainParams, {"data": str(tiny_folder), "arch": "wgan-gp",
                                     "private": True})
    with pytest.raises(UserError, match="max-grad-norm"):
        params.prepare(TrainParams, {"data": str(tiny_folder), "private": True,
                                     "max_grad_norm": 0.0})
    # more images a step than there are: a clear message, not a crash
    rec = run_job("train", data=str(tiny_folder), steps=2, out=str(tmp_path / "run"),
                  **{**TINY, "batch_size": 64}, **PRIVATE)
    assert rec.state == "failed" and "lower the batch size" in rec.error
