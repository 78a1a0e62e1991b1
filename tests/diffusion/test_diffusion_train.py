"""Training: steps run, the run folder is complete, the export loads in plain diffusers, resume
is exact, Cancel keeps the work, bad data is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studio.errors import Cancelled, UserError

TINY = {"preset": "tiny", "size": 32, "batch_size": 4, "sample_every": 1000,
        "checkpoint_every": 1000}


def _metric_steps(run: Path, name: str) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["step"] for x in lines if json.loads(x)["name"] == name]


def test_train_writes_a_diffusers_pipeline_and_previews(run_job: Any, image_folder: Path,
                                                        tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = run_job("train", data=str(image_folder), steps=4, out=str(run),
                  **{**TINY, "sample_every": 2})
    assert res.state == "done", res.error
    model_dir = Path(res.result)
    assert model_dir == run / "model"
    # plain diffusers loads it and samples from it: the export is a standard pipeline
    from diffusers import DDPMPipeline

    pipe = DDPMPipeline.from_pretrained(model_dir, use_safetensors=True)
    assert pipe.unet.config.in_channels == 3 and pipe.unet.config.sample_size == 32
    # v-prediction sampled from the last timestep: every sampler starts where the noise belongs
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    out = pipe(batch_size=1, num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 32, 32, 3) and np.isfinite(out).all()
    assert sorted(p.name for p in (model_dir / "unet").iterdir()) == [
        "config.json", "diffusion_pytorch_model.safetensors"]
    # the loss was logged every step, a preview grid was sent and saved
    assert _metric_steps(run, "loss/train") == [1, 2, 3, 4]
    grids = res.previews("image")
    assert grids and grids[0]["payload"].ndim == 3 and grids[0]["payload"].dtype == np.uint8
    assert (run / "samples" / "step_000002.png").exists()
    # the corrupt file was skipped and said so; the config records what was trained
    assert any("broken.png" in text for text in res.logs())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["channels"] == 3 and cfg["preset"] == "tiny"
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["datasets"][0]["files"] == 12
    assert manifest["artifacts"][0]["kind"] == "diffusers-pipeline"


def test_resume_continues_exactly(run_job: Any, image_folder: Path, tmp_path: Path) -> None:
    import torch

    from studio import storage

    straight, split = tmp_path / "straight", tmp_path / "split"
    params = {**TINY, "data": str(image_folder), "checkpoint_every": 3}
    assert run_job("train", steps=6, out=str(straight), **params).state == "done"
    assert run_job("train", steps=3, out=str(split), **params).state == "done"
    again = run_job("train", steps=3, out=str(split), **params)
    assert again.state == "failed" and "--resume" in again.error  # never overwrite a run
    assert "checkpoint at step 3" in again.error
    resumed = run_job("train", steps=6, out=str(split), resume=True, **params)
    assert resumed.state == "done", resumed.error
    a = storage.load_state(straight / "checkpoints" / "last.safetensors")
    b = storage.load_state(split / "checkpoints" / "last.safetensors")
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a["ema"]["model"][key], b["ema"]["model"][key], rtol=1e-5,
                                   atol=1e-6)
    # no duplicated tail on the curves after the resume
    assert _metric_steps(split, "loss/train") == [1, 2, 3, 4, 5, 6]


class _CancelAt:
    """A job context that presses Cancel once ``step`` training steps are done."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.done = 0
        self.logs: list[str] = []

    def check(self) -> None:
        if self.done >= self.step:
            raise Cancelled()

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        if message.startswith("step"):
            self.done = int(done)

    def metric(self, *a: Any) -> None:
        pass

    def preview(self, *a: Any, **k: Any) -> None:
        pass

    def log(self, text: str, level: str = "info") -> None:
        self.logs.append(text)

    def warn(self, text: str) -> None:
        self.logs.append(text)


def test_cancel_saves_a_checkpoint_and_model(image_folder: Path, tmp_path: Path) -> None:
    from plugins.diffusion.engine.train import TrainConfig, train
    from studio import storage

    ctx = _CancelAt(2)
    cfg = TrainConfig(data=str(image_folder), steps=50, **TINY)
    with pytest.raises(Cancelled):
        train(ctx, cfg, tmp_path / "run", workspace=tmp_path / "ws")
    assert storage.load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")["step"] == 2
    assert (tmp_path / "run" / "model" / "model_index.json").exists()


def test_grayscale_folders_train_one_channel_models(run_job: Any, tmp_path: Path) -> None:
    from diffusion_helpers import write_png

    rng = np.random.default_rng(1)
    for i in range(4):
        write_png(tmp_path / "gray" / f"g{i}.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    res = run_job("train", data=str(tmp_path / "gray"), steps=1, out=str(tmp_path / "run"), **TINY)
    assert res.state == "done", res.error
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["channels"] == 1 and cfg["unet"]["in_channels"] == 1


def test_bad_training_data_is_refused_clearly(run_job: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_job("train", data=str(empty), steps=1, out=str(tmp_path / "r1"), **TINY)
    assert res.state == "failed" and "has no images" in res.error
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_text("this is not an image")
    res = run_job("train", data=str(junk), steps=1, out=str(tmp_path / "r2"), **TINY)
    assert res.state == "failed" and "could be read" in res.error
    res = run_job("train", data=str(tmp_path / "missing"), steps=1, out=str(tmp_path / "r3"),
                  **TINY)
    assert res.state == "failed" and "does not exist" in res.error
    with pytest.raises(UserError):
        from plugins.diffusion.engine.presets import unet_config

        unet_config("small", 48, 3)


def test_64px_training_adds_a_level(image_folder: Path, tmp_path: Path) -> None:
    from plugins.diffusion.engine.presets import unet_config
    from plugins.diffusion.engine.train import TrainConfig, train

    assert len(unet_config("small", 64, 3)["block_out_channels"]) == 5
    cfg = TrainConfig(data=str(image_folder), steps=1, **{**TINY, "size": 64})
    model = train(_CancelAt(10**6), cfg, tmp_path / "run", workspace=tmp_path / "ws")
    cfg_json = json.loads((model / "unet" / "config.json").read_text())
    assert cfg_json["sample_size"] == 64 and len(cfg_json["block_out_channels"]) == 3


def test_learning_rate_schedule_and_time_budget() -> None:
    from plugins.diffusion.engine.train import _budget_horizon, lr_factor

    assert lr_factor(0, 100, 1000) == pytest.approx(0.01)
    assert lr_factor(99, 100, 1000) == pytest.approx(1.0)
    assert lr_factor(100, 100, 1000) == pytest.approx(1.0)
    assert lr_factor(1000, 100, 1000) == pytest.approx(0.1)  # decays to 10% at the horizon
    assert lr_factor(550, 100, 1000) == pytest.approx(0.55)
    # 0.1 s per step, 100 s budget, 50 s spent at step 500: about 500 more steps fit
    times = [0.1] * 50
    horizon = _budget_horizon(500, 10**7, 10**7, 50.0, 100.0, times)
    assert 950 <= horizon <= 1000
    assert _budget_horizon(500, 10**7, 700, 50.0, 100.0, times) == 700  # --steps still caps
    assert _budget_horizon(700, 1000, 10**7, 100.5, 100.0, times) == 700  # out of time: stop
    assert _budget_horizon(900, 1000, 10**7, 90.0, 100.0, times) == 1000  # frozen near the end


def test_an_unreadable_checkpoint_in_the_out_folder_is_named_not_overwritten(
        run_job: Any, image_folder: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "checkpoints" / "last.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a safetensors file")
    res = run_job("train", steps=2, out=str(tmp_path / "run"), **TINY, data=str(image_folder))
    assert res.state == "failed"
    assert "cannot be read" in res.error and "--resume" in res.error
    assert ckpt.read_bytes() == b"not a safetensors file"
