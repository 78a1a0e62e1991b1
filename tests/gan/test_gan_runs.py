"""A GAN training run as the platform sees it: exact resume through the shared loop, the data it
records (trained and held-out images), old checkpoints, and the command line's limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gan_helpers import TINY, run_job
from resume_check import assert_exact_resume

from plugins.gan.params import (
    EvalParams,
    ExportParams,
    GenerateParams,
    InterpolateParams,
    SampleParams,
    TrainParams,
)
from studio import manifest, params, storage
from studio.errors import UserError

CKPT = Path("checkpoints") / "last.safetensors"


def _weights(run: Path) -> dict[str, torch.Tensor]:
    """Every trained tensor of a run: both networks, the EMA generator, the exported one."""
    st = storage.load_state(run / CKPT)
    out = {f"G.{k}": v for k, v in st["G"].items()}
    out |= {f"D.{k}": v for k, v in st["D"].items()}
    out |= {f"ema.{k}": v for k, v in st["G_ema"]["model"].items()}
    out |= {f"export.{k}": v
            for k, v in storage.load_tensors(run / "generator.safetensors").items()}
    out["generator_rng"] = st["generator"]
    return out


def test_stop_and_resume_match_the_uninterrupted_run(tiny_folder: Path, tmp_path: Path) -> None:
    """The shared check: Stop mid-run, Resume, compare weights and every curve point (losses,
    diversity, the held-out score) with the run that was never stopped."""
    def make(resume: bool) -> TrainParams:
        return TrainParams(data=str(tiny_folder), steps=10, resume=resume, holdout=0.25,
                           **{**TINY, "preview_every": 3, "checkpoint_every": 4})

    cut = assert_exact_resume(tmp_path, "gan", "train", make, _weights, cancel_after_metrics=6)
    assert 0 < cut < 10


def test_the_run_records_its_images_and_the_held_out_ones(tiny_folder: Path,
                                                          tmp_path: Path) -> None:
    rec = run_job("train", data=str(tiny_folder), steps=3, holdout=0.25,
                  out=str(tmp_path / "run"), **TINY)
    assert rec.state == "done", rec.error
    m = manifest.read(tmp_path / "run")
    assert m is not None
    ds = m.dataset()
    assert ds is not None and ds.unit == "image" and ds.name == "bars"
    assert Path(ds.location) == tiny_folder.resolve()  # absolute: resume works from anywhere
    split = manifest.membership(tmp_path / "run")
    assert len(split) == 24  # the two broken files are not examples
    held = sorted(i for i, s in split.items() if s == "held_out")
    assert len(held) == 6 and (ds.train, ds.held_out) == (18, 6)
    assert all(i.split("@")[0].startswith(("bars_h/", "bars_v/")) for i in split)
    # the held-out choice depends only on the ids, the share and the seed
    from plugins.common.splits import held_out

    assert set(held) == held_out(list(split), 0.25, 0)
    # the held-out images feed the discriminator's held-out score, never a training step
    from studio.runs import read_metrics

    curves = read_metrics(tmp_path / "run")
    assert "D/held_out" in curves and "D/trained" in curves
    models = m.models()
    assert len(models) == 1 and models[0].model_kind == "gan" and models[0].path == "."
    assert models[0].info["weights"]["generator.safetensors"] == manifest.sha256_file(
        tmp_path / "run" / "generator.safetensors")
    # training on everything (the default) records every image as trained
    rec = run_job("train", data=str(tiny_folder), steps=2, out=str(tmp_path / "all"), **TINY)
    assert rec.state == "done", rec.error
    assert set(manifest.membership(tmp_path / "all").values()) == {"train"}
    assert "D/held_out" not in read_metrics(tmp_path / "all")


def test_resume_finds_the_recorded_data_and_reads_old_checkpoints(tiny_folder: Path,
                                                                  tmp_path: Path) -> None:
    """A checkpoint written before the shared loop (format 1: the EMA as bare weights, the
    step and elapsed time at the top, no loop state) still resumes, without --data."""
    run = tmp_path / "old"
    rec = run_job("train", data=str(tiny_folder), steps=4, out=str(run), **TINY)
    assert rec.state == "done", rec.error
    st = storage.load_state(run / CKPT)
    old = {k: v for k, v in st.items() if not k.startswith("__")}
    old.update(format=1, G_ema=st["G_ema"]["model"], elapsed=1.5)
    del old["collapsed"]
    storage.save_state(run / CKPT, old)
    again = run_job("train", steps=6, resume=True, out=str(run))
    assert again.state == "done", again.error
    st = storage.load_state(run / CKPT)
    assert st["step"] == 6 and st["G_ema"]["updates"] == 6
    assert st["__loop__"]["step"] == 6 and st["__loop__"]["elapsed"] > 1.5


def test_command_line_limits_are_refused_with_the_flag_named() -> None:
    def refused(cls: type, *argv: str) -> str:
        with pytest.raises(UserError) as err:
            params.from_cli(cls, list(argv))
        return str(err.value)

    for bad in ("0", "-1"):
        assert refused(TrainParams, "--steps", bad) == "--steps must be between 1 and 10_000_000"
    assert "--batch-size must be between 2" in refused(TrainParams, "--batch-size", "1")
    assert "--holdout must be between 0 and 0.9" in refused(TrainParams, "--holdout", "0.95")
    assert "--preview-every" in refused(TrainParams, "--preview-every", "0")
    assert "--checkpoint-every" in refused(TrainParams, "--checkpoint-every", "0")
    assert "--size must be one of 32, 64, 128" in refused(TrainParams, "--size", "48")
    assert "--train-size must be a power of two" in refused(TrainParams, "--train-size", "24")
    assert "--diffaug" in refused(TrainParams, "--diffaug", "rotate")
    assert "--max-minutes" in refused(TrainParams, "--max-minutes", "0")
    assert "--seed" in refused(TrainParams, "--seed", "-3")
    assert "--n must be between 1" in refused(GenerateParams, "--model", "m", "--n", "0")
    assert "--edits" in refused(GenerateParams, "--model", "m", "--edits", "1,abc")
    assert "--frames must be between 2" in refused(
        InterpolateParams, "--model", "m", "--seed-a", "1", "--seed-b", "2", "--frames", "1")
    assert "--n must be between 10" in refused(EvalParams, "--model", "m", "--data", "d",
                                               "--n", "5")
    assert ".png" in refused(ExportParams, "--model", "m", "--seed", "1", "--out", "x.jpg")
    assert "--scale" in refused(SampleParams, "--model", "m", "--scale", "0")
    assert "--seed-a is required" in refused(InterpolateParams, "--model", "m", "--seed-b", "2")
    # a list of numbers is a list, parsed from commas on the command line only
    p = params.from_cli(GenerateParams, ["--model", "m", "--edits", "1.5,0,-2"])
    assert p.edits == [1.5, 0.0, -2.0] and p.model == Path("m")
    p = params.from_cli(TrainParams, ["--data", "digits", "--diffaug", "off", "--resume"])
    assert p.resume and p.diffaug == "off" and p.arch is None and p.batch_size is None


def test_cli_exits_2_on_a_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    from studio.cli import cmd_run

    assert cmd_run("gan", "train", ["--data", "digits", "--steps", "0"]) == 2
    assert "--steps must be between 1 and 10_000_000" in capsys.readouterr().err
