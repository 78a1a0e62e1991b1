"""Training: steps run, the run folder is complete, the export loads in plain diffusers, resume
is exact (through the studio's one training loop), Cancel keeps the work, the run records which
images trained it and which were held out, bad data is refused clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plugins.common.training import LoopState, QuietReporter, TrainLoop
from plugins.diffusion.params import TrainParams
from studio import manifest as run_manifest
from studio.errors import Cancelled, UserError

TINY = {"preset": "tiny", "size": 32, "batch_size": 4, "sample_every": 1000,
        "checkpoint_every": 1000}


def _task(folder: Path, run: Path, **params: Any) -> tuple[Any, Any]:
    """The engine's task and config for ``TrainParams(**params)`` on ``folder``, built the way
    the train job builds them (no job runner)."""
    from plugins.diffusion.engine.train import DDPMTask, load_data, save_config
    from plugins.diffusion.jobs import train_config

    cfg = train_config(TrainParams(data=str(folder), **{**TINY, **params}))
    rep = QuietReporter()
    data = load_data(cfg, run.parent / "ws", rep)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run)
    return DDPMTask(cfg, data, run, "cpu", rep), cfg


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
    data = manifest["datasets"][0]
    assert (data["examples"], data["train"], data["held_out"], data["unit"]) == (12, 12, 0,
                                                                                 "image")
    assert data["location"] == str(image_folder.resolve())
    model = manifest["artifacts"][0]
    assert (model["kind"], model["model_kind"], model["path"]) == ("model", "diffusers-pipeline",
                                                                   "model")


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


def test_cancel_saves_a_checkpoint_and_model(image_folder: Path, tmp_path: Path) -> None:
    from plugins.diffusion.engine.train import CHECKPOINT
    from studio import storage

    run = tmp_path / "run"
    task, cfg = _task(image_folder, run, steps=50)
    rep = QuietReporter(cancel_after=2)  # Stop as the third step begins
    with pytest.raises(Cancelled):
        TrainLoop(task, cfg.schedule(evaluates=False), rep, run / CHECKPOINT).run()
    assert storage.load_state(run / CHECKPOINT)["step"] == 2
    assert (run / "model" / "model_index.json").exists()


def test_exact_resume_through_the_job_runner(image_folder: Path, tmp_path: Path) -> None:
    """Stop a real train job after its first logged point, Resume it, compare with an
    uninterrupted run: the same weights (raw and averaged), the same curves (held-out loss
    included), two sessions."""
    from resume_check import assert_exact_resume

    from plugins.diffusion.engine.train import CHECKPOINT
    from studio import storage

    def weights(run: Path) -> dict[str, Any]:
        st = storage.load_state(run / CHECKPOINT)
        return {**{f"model.{k}": v for k, v in st["model"].items()},
                **{f"ema.{k}": v for k, v in st["ema"]["model"].items()}}

    cut = assert_exact_resume(
        tmp_path, "diffusion", "train",
        lambda resume: TrainParams(data=str(image_folder), steps=6, holdout=0.25,
                                   resume=resume, **{**TINY, "batch_size": 2, "sample_every": 3}),
        weights)
    assert 1 <= cut < 6
    steps = _metric_steps(tmp_path / "parts", "loss/held_out")
    assert steps == [3, 6]


def test_the_run_records_its_images_and_the_held_out_ones(run_job: Any, image_folder: Path,
                                                          tmp_path: Path) -> None:
    from plugins.common.splits import held_out
    from studio import manifest

    run = tmp_path / "run"
    res = run_job("train", data=str(image_folder), steps=1, holdout=0.25, seed=3, out=str(run),
                  **TINY)
    assert res.state == "done", res.error
    split = manifest.membership(run)
    assert len(split) == 12  # the broken file is no example: it never trained anything
    assert all(i.split("@")[0].endswith(".png") and "broken" not in i for i in split)
    held = {i for i, s in split.items() if s == "held_out"}
    assert held == held_out(sorted(split), 0.25, 3) and len(held) == 3
    ds = manifest.read(run).dataset()
    assert (ds.examples, ds.train, ds.held_out) == (12, 9, 3)
    assert any("9 images" in text for text in res.logs())  # only the others trained
    # the held-out images are out of the task's training tensor, and in its evaluation
    task, _cfg = _task(image_folder, tmp_path / "direct", holdout=0.25, seed=3)
    assert len(task.x_all) == 9 and len(task.x_held) == 3
    assert "loss/held_out" in task.evaluate(LoopState(steps=1))
    # nothing held out (the default): every image trains, the evaluation has nothing to say
    task, _cfg = _task(image_folder, tmp_path / "all")
    assert len(task.x_all) == 12 and task.evaluate(LoopState(steps=1)) == {}


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
    from plugins.diffusion.engine.train import CHECKPOINT, MODEL_DIR

    assert len(unet_config("small", 64, 3)["block_out_channels"]) == 5
    run = tmp_path / "run"
    task, cfg = _task(image_folder, run, steps=1, size=64)
    TrainLoop(task, cfg.schedule(evaluates=False), QuietReporter(), run / CHECKPOINT).run()
    cfg_json = json.loads((run / MODEL_DIR / "unet" / "config.json").read_text())
    assert cfg_json["sample_size"] == 64 and len(cfg_json["block_out_channels"]) == 3


def test_learning_rate_schedule_and_time_budget(image_folder: Path, tmp_path: Path) -> None:
    from plugins.diffusion.engine.train import lr_factor

    assert lr_factor(0, 100, 1000) == pytest.approx(0.01)
    assert lr_factor(99, 100, 1000) == pytest.approx(1.0)
    assert lr_factor(100, 100, 1000) == pytest.approx(1.0)
    assert lr_factor(1000, 100, 1000) == pytest.approx(0.1)  # decays to 10% at the horizon
    assert lr_factor(550, 100, 1000) == pytest.approx(0.55)
    # a time budget: the loop estimates the horizon (LoopState.horizon, tested with the loop),
    # and the learning rate follows it rather than the step budget
    task, cfg = _task(image_folder, tmp_path / "run", steps=10**7, minutes=2.5)
    sch = cfg.schedule(evaluates=False)
    assert sch.max_seconds == 150.0 and sch.steps == 10**7
    task.train_step(LoopState(steps=10**7, step=550, horizon=1000))
    assert task.lr_now == pytest.approx(cfg.lr * 0.55)
    assert cfg.schedule(evaluates=False).log_every == 1  # the loss curve has every step


def test_an_unreadable_checkpoint_in_the_out_folder_is_named_not_overwritten(
        run_job: Any, image_folder: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "checkpoints" / "last.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a safetensors file")
    res = run_job("train", steps=2, out=str(tmp_path / "run"), **TINY, data=str(image_folder))
    assert res.state == "failed"
    assert "cannot be read" in res.error and "--resume" in res.error
    assert ckpt.read_bytes() == b"not a safetensors file"
    # and Resume says it cannot be read, still without touching it
    res = run_job("train", steps=2, out=str(tmp_path / "run"), resume=True, **TINY,
                  data=str(image_folder))
    assert res.state == "failed" and "cannot be read" in res.error
    assert ckpt.read_bytes() == b"not a safetensors file"


def test_a_checkpoint_of_the_trainer_before_the_shared_loop_resumes(
        run_job: Any, image_folder: Path, tmp_path: Path) -> None:
    """Runs started before the shared loop stored step, elapsed and rng at the top level of
    their checkpoint (and the EMA as model/updates/decay): they continue from their step."""
    from plugins.diffusion.engine.train import CHECKPOINT
    from studio import storage

    run = tmp_path / "run"
    params = {**TINY, "data": str(image_folder), "batch_size": 2}
    assert run_job("train", steps=2, out=str(run), **params).state == "done"
    st = storage.load_state(run / CHECKPOINT)
    old = {k: st[k] for k in ("step", "model", "ema", "optimizer", "generator")}
    old.update(elapsed=1.5, horizon=2, rng=st["__rng__"])
    storage.save_state(run / CHECKPOINT, old)
    res = run_job("train", steps=4, out=str(run), resume=True, **params)
    assert res.state == "done", res.error
    assert storage.load_state(run / CHECKPOINT)["step"] == 4
    assert _metric_steps(run, "loss/train") == [1, 2, 3, 4]


def test_resume_finds_its_images_from_any_folder(image_folder: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Trained with a relative --data from one folder, resumed from another: with the same
    images named another way (they win), or with none named (the run's own are used)."""
    from studio.cli import cmd_run

    work = tmp_path / "work"
    shutil.copytree(image_folder, work / "imgs" / "shapes")
    monkeypatch.chdir(work / "imgs")
    common = ["--preset", "tiny", "--size", "32", "--batch-size", "4", "--sample-every", "1000"]
    assert cmd_run("diffusion", "train", ["--data", "shapes", "--steps", "2", "--out", "../r",
                                          *common]) == 0
    monkeypatch.chdir(work)
    assert cmd_run("diffusion", "train", ["--data", "imgs/shapes", "--resume", "--steps", "3",
                                          "--out", "r", *common]) == 0
    assert cmd_run("diffusion", "train", ["--resume", "--steps", "4", "--out", "r",
                                          *common]) == 0
    m = run_manifest.read(work / "r")
    assert m.state == "done" and m.dataset().location == str(work / "imgs" / "shapes")
    assert len(m.sessions) == 2
