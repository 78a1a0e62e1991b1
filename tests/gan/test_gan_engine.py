"""GAN engine, headless: data, every architecture, exact resume, collapse watch, mixed precision,
what a run records about its data, and the command line's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gan_helpers import TINY, make_folder, run_job

from plugins.common.training import QuietReporter, Schedule, TrainLoop
from plugins.gan.engine import data as data_mod
from plugins.gan.engine.config import make_config
from plugins.gan.engine.diffaug import diff_augment, parse_policy
from plugins.gan.engine.task import GanTask
from plugins.gan.engine.trainer import GanTrainer, diversity
from studio import storage
from studio.errors import UserError


def _mean_stats(steps: list[dict]) -> dict[str, float]:
    """The loop's average of the 0-d tensors train_step returns."""
    return {k: float(sum(st[k] for st in steps)) / len(steps) for k in steps[0]}


def _tiny_trainer(arch: str, conditional: bool = True, **kw) -> GanTrainer:
    cfg = make_config(arch, "fast", size=16, channels=1, num_classes=2 if conditional else 0,
                      g_width=4, d_width=4, batch_size=8, **kw)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 255, size=(20, 1, 16, 16), dtype=np.uint8))
    y = torch.arange(20) % 2
    return GanTrainer(cfg, x, y if conditional else None)


# -- data -------------------------------------------------------------------------------------
def test_folder_loading_skips_broken_files_and_finds_classes(tiny_folder: Path) -> None:
    ds = data_mod.load_dataset(str(tiny_folder), tiny_folder, 32)
    assert len(ds) == 24 and ds.classes == ["bars_h", "bars_v"] and ds.channels == 1
    assert {s.path.name for s in ds.skipped} == {"truncated.png", "notes.jpg"}
    assert all(s.reason for s in ds.skipped)
    assert ds.images.shape == (24, 32, 32, 1)
    summary = data_mod.summary(ds)
    assert summary["class_counts"] == {"bars_h": 12, "bars_v": 12} and summary["skipped"] == 2


def test_empty_and_all_broken_folders_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        data_mod.load_dataset(str(tmp_path / "empty"), tmp_path, 32)
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"x{i}.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UserError, match="could be read"):
        data_mod.load_dataset(str(bad), tmp_path, 32)
    with pytest.raises(UserError, match="does not exist"):
        data_mod.load_dataset(str(tmp_path / "missing"), tmp_path, 32)
    few = make_folder(tmp_path / "few", n_per_class=2, broken=False)
    with pytest.raises(UserError, match="at least 8"):
        data_mod.load_dataset(str(few), tmp_path, 32)


def test_colour_detection_and_native_resolution(tmp_path: Path) -> None:
    from PIL import Image

    gray = make_folder(tmp_path / "gray", broken=False)
    assert data_mod.detect_channels(gray) == 1
    colour = tmp_path / "colour"
    colour.mkdir()
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, size=(12, 8, 8, 3), dtype=np.uint8)
    for i, im in enumerate(small):
        Image.fromarray(im).resize((32, 32), Image.Resampling.BICUBIC).save(colour / f"{i}.png")
    assert data_mod.detect_channels(colour) == 3
    ds = data_mod.load_dataset(str(colour), tmp_path, 32)
    # 8 px pictures enlarged to 32 carry no detail at 32 (nor at 16): learn at 16 or below
    assert data_mod.native_size(ds.images, 32) <= 16
    noise = rng.integers(0, 255, size=(12, 32, 32, 3), dtype=np.uint8)
    assert data_mod.native_size(noise, 32) == 32


# -- models -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,conditional,aug", [
    ("dcgan", True, "translation"), ("dcgan", False, ""),
    ("wgan-gp", True, "color,translation,cutout"), ("sngan", False, "cutout"),
    ("sngan", True, "translation")])
def test_each_architecture_trains_with_finite_losses(arch: str, conditional: bool,
                                                     aug: str) -> None:
    t = _tiny_trainer(arch, conditional, diffaug=aug)
    before = [p.detach().clone() for p in t.G.parameters()]
    steps = [t.train_step() for _ in range(3)]
    assert all(v.ndim == 0 for st in steps for v in st.values())  # no sync: 0-d tensors
    stats = _mean_stats(steps)
    assert stats and all(np.isfinite(v) for v in stats.values())
    assert ("gp" in stats) == (arch == "wgan-gp")
    assert any(not torch.equal(a, b) for a, b in zip(before, t.G.parameters(), strict=True))
    images, grid, ratio = t.preview()
    assert images.dtype == np.uint8 and images.shape[1:] == (16, 16, 1)
    assert grid.ndim == 3 and np.isfinite(ratio)


def test_diffaugment_is_seeded_and_group_consistent() -> None:
    x = torch.randn(8, 1, 16, 16)
    pol = parse_policy("color,translation,cutout")
    a = diff_augment(x, pol, torch.Generator().manual_seed(0), group=4)
    b = diff_augment(x, pol, torch.Generator().manual_seed(0), group=4)
    assert torch.equal(a, b)
    same = diff_augment(x[:1].repeat(8, 1, 1, 1), pol, torch.Generator().manual_seed(1), group=4)
    assert torch.equal(same[0], same[3]) and not torch.equal(same[0], same[4])
    with pytest.raises(UserError, match="unknown DiffAugment"):
        parse_policy("rotate")


def test_mixed_precision_path_with_grad_scaler_runs_on_cpu() -> None:
    """The CUDA fp16 path (autocast + GradScaler) exercised on the CPU, where torch supports
    both, so the code the GPU runs is not untested."""
    t = _tiny_trainer("wgan-gp", True)
    t.amp = torch.float16
    t.scaler_g = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    t.scaler_d = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    stats = _mean_stats([t.train_step() for _ in range(2)])
    assert all(np.isfinite(v) for v in stats.values())
    state = t.state_dict()
    assert state["scaler_g"]["scale"] > 0
    t.load_state_dict(state)  # scaler state round-trips


# -- checkpoints ------------------------------------------------------------------------------
def _state(run: Path) -> dict:
    return storage.load_state(run / "checkpoints" / "last.safetensors")


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    assert a["G_ema"]["updates"] == b["G_ema"]["updates"] == a["step"]
    for key, weights in (("G", a["G"]), ("D", a["D"]), ("G_ema", a["G_ema"]["model"])):
        other = b[key]["model"] if key == "G_ema" else b[key]
        for name in weights:
            assert torch.equal(weights[name], other[name]), f"{key}.{name} differs"
    for key in ("opt_g", "opt_d"):
        for idx, st in a[key]["state"].items():
            for name, v in st.items():
                assert torch.equal(v, b[key]["state"][idx][name]), f"{key}.{idx}.{name}"
    assert torch.equal(a["generator"], b["generator"])


def test_resume_reproduces_the_uninterrupted_run_exactly(tiny_folder: Path, tmp_path: Path
                                                         ) -> None:
    common = {**TINY, "data": str(tiny_folder), "arch": "dcgan",
              "diffaug": "color,translation,cutout", "checkpoint_every": 3}
    straight = run_job("train", steps=8, out=str(tmp_path / "straight"), **common)
    assert straight.state == "done", straight.error
    first = run_job("train", steps=4, out=str(tmp_path / "split"), **common)
    assert first.state == "done", first.error
    refused = run_job("train", steps=8, out=str(tmp_path / "split"), **common)
    assert refused.state == "failed" and "--resume" in refused.error
    second = run_job("train", steps=8, out=str(tmp_path / "split"), resume=True,
                     **{k: v for k, v in common.items() if k != "data"})
    assert second.state == "done", second.error
    _assert_same_state(_state(tmp_path / "straight"), _state(tmp_path / "split"))
    # the curves have no duplicated tail after resuming
    from studio.runs import read_metrics

    steps, _ = read_metrics(tmp_path / "split")["loss/D"]
    assert steps == sorted(set(steps)) and steps[-1] == 8


def test_stop_keeps_a_checkpoint_and_resume_finishes_the_same_run(tiny_folder: Path,
                                                                  tmp_path: Path) -> None:
    from plugins.gan.plugin import GanPlugin
    from studio.jobs import JobRunner
    from studio.settings import Settings

    common = {**TINY, "data": str(tiny_folder), "checkpoint_every": 100}
    steps = 14
    runner = JobRunner(settings=Settings(device="cpu"))

    def stop_after_a_few_steps(event) -> None:
        # cancel from the job's own events, not by polling: a fast machine finishes 14 tiny
        # steps before a polling loop notices step 3 (CI did)
        # (the preview at step 3 carries its step; progress is throttled and may skip it)
        if event.kind == "preview" and event.data.get("step", 0) >= 3:
            runner.cancel(event.job_id)

    runner.add_listener(stop_after_a_few_steps)
    rec = runner.submit("gan", GanPlugin().job("train"),
                        {**common, "steps": steps, "out": str(tmp_path / "stopped")})
    runner.wait(rec.id, 60)
    runner.shutdown()
    assert rec.state == "cancelled"
    stopped_at = _state(tmp_path / "stopped")["step"]
    assert 0 < stopped_at < steps
    assert (tmp_path / "stopped" / "generator.safetensors").exists()
    again = run_job("train", steps=steps, out=str(tmp_path / "stopped"), resume=True)
    assert again.state == "done", again.error
    straight = run_job("train", steps=steps, out=str(tmp_path / "straight"), **common)
    assert straight.state == "done", straight.error
    _assert_same_state(_state(tmp_path / "straight"), _state(tmp_path / "stopped"))


def test_resume_without_checkpoint_and_bad_data_are_clear(tmp_path: Path) -> None:
    rec = run_job("train", steps=5, out=str(tmp_path / "nothing"), resume=True)
    assert rec.state == "failed" and "nothing to resume" in rec.error
    (tmp_path / "empty").mkdir()
    rec = run_job("train", data=str(tmp_path / "empty"), steps=5, out=str(tmp_path / "r"))
    assert rec.state == "failed" and "no images" in rec.error
    rec = run_job("train", steps=5, out=str(tmp_path / "r2"))
    assert rec.state == "failed" and "--data" in rec.error


# -- collapse ---------------------------------------------------------------------------------
def test_diversity_measure_and_collapse_warning(tmp_path: Path) -> None:
    x = torch.randn(16, 1, 8, 8)
    assert diversity(x[:1].repeat(16, 1, 1, 1)) == pytest.approx(0.0, abs=1e-6)
    assert diversity(x) > 0.5
    t = _tiny_trainer("sngan", conditional=True, diffaug="")
    with torch.no_grad():  # a generator that ignores its noise: the textbook collapse
        t.ema.model.to_image.weight.zero_()
        t.ema.model.to_image.bias.fill_(0.3)
    _, _, ratio = t.preview()
    assert ratio < 0.05
    rep = QuietReporter()
    t.G.to_image.weight.data.zero_()
    t.ema.decay = 0.0  # the EMA copy follows the (collapsed) generator
    task = GanTask(t, tmp_path, rep, {}, collapse_after=0, collapse_threshold=0.3)
    loop = TrainLoop(task, Schedule(steps=2, log_every=1, preview_every=1, checkpoint_every=10,
                                    preview_on_checkpoint=True), rep)
    loop.run()
    warnings = [text for level, text in rep.logs if level == "warning"]
    assert len(warnings) == 1 and "collapse" in warnings[0]  # once, not every preview
    assert rep.previews[-1][2]["collapse"] is True
    assert {"loss/D", "loss/G", "D/real", "D/fake", "diversity"} <= set(rep.history)
    assert (tmp_path / "generator.safetensors").exists()  # exported at the end
    assert task.state_dict()["collapsed"] is True  # resumes with the watch in the same state


def test_time_budget_ends_the_run_done_with_a_checkpoint(tiny_folder: Path, tmp_path: Path
                                                         ) -> None:
    rec = run_job("train", data=str(tiny_folder), steps=10_000, max_minutes=0.0001,
                  out=str(tmp_path / "budget"), **TINY)
    assert rec.state == "done", rec.error
    step = _state(tmp_path / "budget")["step"]
    assert 1 <= step < 10_000
    assert (tmp_path / "budget" / "generator.safetensors").exists()
