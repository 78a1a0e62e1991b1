"""Training the DDPM privately (DP-SGD through Opacus, one record = one image): exact resume,
the spent ε against Opacus's own accountant, what the run records and says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugins.common.privacy import METRIC
from plugins.diffusion.params import TrainParams
from studio import manifest, storage

TINY = {"preset": "tiny", "size": 32, "batch_size": 3, "sample_every": 1000,
        "checkpoint_every": 1000}
#: a fixed noise seed makes the run reproducible (a real run keeps it secret)
PRIVATE = {"private": True, "epsilon": 8.0, "noise_seed": 4}


def _opacus_epsilon(history: list[list[float]], delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(float(s), float(q), int(n)) for s, q, n in history]
    return float(acc.get_epsilon(delta=delta))


def test_a_private_run_resumes_exactly_and_records_what_it_spent(image_folder: Path,
                                                                 tmp_path: Path) -> None:
    from resume_check import assert_exact_resume

    from plugins.diffusion.engine.train import CHECKPOINT

    def weights(run: Path) -> dict[str, Any]:
        st = storage.load_state(run / CHECKPOINT)
        return {**{f"model.{k}": v for k, v in st["model"].items()},
                **{f"ema.{k}": v for k, v in st["ema"]["model"].items()},
                "noise": st["privacy"]["noise"], "sampler": st["privacy"]["sampler"]}

    cut = assert_exact_resume(
        tmp_path, "diffusion", "train",
        lambda resume: TrainParams(data=str(image_folder), steps=5, resume=resume,
                                   **TINY, **PRIVATE),
        weights, cancel_after_metrics=4)
    assert 1 <= cut < 5
    run = tmp_path / "parts"
    dp = storage.load_state(run / CHECKPOINT)["privacy"]
    assert sum(int(n) for _, _, n in dp["history"]) == 5
    spent = _opacus_epsilon(dp["history"], dp["delta"])
    assert 0 < spent <= 8.0 * 1.001
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    points = [(r["step"], r["value"]) for r in curve if r["name"] == METRIC]
    assert [s for s, _ in points] == [1, 2, 3, 4, 5]
    assert points[-1][1] == pytest.approx(spent, rel=1e-9)
    config = json.loads((run / "config.json").read_text())
    assert config["private"]["epsilon"] == 8.0
    assert config["privacy_spent"]["epsilon"] == pytest.approx(spent)
    assert config["privacy_spent"]["unit"] == "image"
    m = manifest.read(run)
    assert m is not None and m.models()[-1].info["privacy"]["epsilon"] == pytest.approx(spent)


def test_the_run_says_it_trains_privately_and_what_the_guarantee_covers(
        run_job: Any, image_folder: Path, tmp_path: Path) -> None:
    res = run_job("train", data=str(image_folder), steps=2, out=str(tmp_path / "run"),
                  **TINY, **PRIVATE)
    assert res.state == "done", res.error
    logs = " ".join(res.logs())
    assert "Training privately (DP-SGD with Opacus)" in logs
    assert "12 training images" in logs
    assert "nothing was replaced" in logs
    assert "Privacy spent: ε =" in logs
