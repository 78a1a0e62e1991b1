"""Learned generators: train (and resume) through the CLI, sample, search the latent space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from resume_check import assert_exact_resume

from plugins.common.training import QuietReporter
from plugins.levels.engine import files, search
from plugins.levels.params import TrainParams
from studio import manifest as run_manifest
from studio.cli import cmd_run
from studio.errors import UserError
from studio.runs import read_metrics
from studio.storage import load_state, load_tensors, save_state


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny models train faster on one thread than on two contending ones (CI shares cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data(shared_dir: Path, tmp_path: Path) -> Path:
    src = shared_dir / "data" / "vglc" / "Super_Mario_Bros"
    out = tmp_path / "smb"
    out.mkdir()
    for name in ("mario-1-1.txt", "mario-1-3.txt", "smb.json"):
        shutil.copy(src / name, out / name)
    return out


def test_cma_es_minimises_a_shifted_sphere() -> None:
    target = np.linspace(-1, 1, 8)

    def cost(xs: np.ndarray) -> np.ndarray:
        return ((xs - target) ** 2).sum(axis=1)

    x, f, evals = search.minimise(cost, 8, seed=0, budget=3000, sigma=0.5, good_enough=1e-6)
    assert f < 1e-4 and np.allclose(x, target, atol=0.02)
    assert evals < 3000


def test_train_gan_resume_and_sample_from_the_cli(data: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc = cmd_run("levels", "train", ["--data", str(data), "--model", "gan", "--steps", "30",
                                     "--batch", "16", "--base", "8", "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(run)
    for name in ("config.json", "model.safetensors", "checkpoints/last.safetensors",
                 "metrics.jsonl", "run.json"):
        assert (run / name).exists(), name
    curves = read_metrics(run)
    assert {"loss/D", "loss/G", "quality/playable", "quality/tile_js"} <= set(curves)
    assert max(curves["loss/D"][0]) == 30
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["height"] == 14 and cfg["width"] == 28 and len(cfg["chars"]) > 5

    rc = cmd_run("levels", "train", ["--data", str(data), "--model", "gan", "--steps", "40",
                                     "--batch", "16", "--base", "8", "--resume",
                                     "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    curves = read_metrics(run)
    steps = curves["loss/D"][0]
    assert max(steps) == 40 and len(steps) == len(set(steps))  # no duplicated tail
    assert len(run_manifest.read(run).sessions) == 1

    out = tmp_path / "samples"
    capsys.readouterr()
    rc = cmd_run("levels", "sample", ["--model", str(run), "--n", "3", "--seed", "1",
                                      "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(out)
    made = sorted(out.glob("*.txt"))
    assert len(made) == 3
    lv = files.load_level(made[0])
    assert (lv.height, lv.width) == (14, 4 * 28)  # four stitched segments
    manifest = json.loads((out / "levels.json").read_text())
    assert all(e["check"]["playable"] in ("yes", "no") for e in manifest["levels"])
    # the same seed gives the same levels
    out2 = tmp_path / "again"
    assert cmd_run("levels", "sample", ["--model", str(run), "--n", "1", "--seed", "1",
                                        "--out", str(out2)]) == 0
    assert (out2 / made[0].name).read_text() == made[0].read_text()


def test_latent_search_returns_what_the_agent_confirms(data: Path, tmp_path: Path) -> None:
    from plugins.levels.engine import agents, learned
    from plugins.levels.engine.level import Level

    run = tmp_path / "run"
    assert cmd_run("levels", "train", ["--data", str(data), "--steps", "20", "--batch", "16",
                                       "--base", "8", "--out", str(run)]) == 0
    m = learned.LevelModel(run)
    codes, info = m.search_segment(3, learned.Targets(enemies=2), budget=36)
    assert codes.shape == (14, 28) and info["evaluations"] <= 36 + 12
    assert info["playable"] == agents.check(Level(codes, m.legend)).playable
    levels = m.generate(2, seed=5, segments=2, search=True, budget=24)
    assert all(lv.width == 56 and lv.meta["search"] for lv in levels)


def test_vae_trains_and_encodes(data: Path, tmp_path: Path) -> None:
    from plugins.levels.engine import learned

    run = tmp_path / "vae"
    assert cmd_run("levels", "train", ["--data", str(data), "--model", "vae", "--steps", "20",
                                       "--batch", "16", "--base", "8", "--out", str(run)]) == 0
    assert "loss/reconstruction" in read_metrics(run)
    m = learned.LevelModel(run)
    segs = m.segments(2, seed=0)
    z = m.encode(np.stack([s.grid for s in segs]))
    assert z.shape == (2, m.cfg.latent)


def test_model_folder_errors(tmp_path: Path, data: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from plugins.levels.engine import learned

    with pytest.raises(UserError, match="not a levels model folder"):
        learned.LevelModel(tmp_path)
    assert cmd_run("levels", "train", ["--data", str(tmp_path / "empty"), "--steps", "5",
                                       "--out", str(tmp_path / "r")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cmd_run("levels", "train", ["--data", str(data), "--steps", "5", "--resume",
                                       "--out", str(tmp_path / "fresh")]) == 1
    assert "nothing to resume" in capsys.readouterr().err



def _train_params(data: Path, resume: bool = False, **kw: object) -> TrainParams:
    values: dict[str, object] = {"data": data, "steps": 24, "batch": 8, "base": 4, "latent": 8,
                                 "eval_every": 10, "checkpoint_every": 0, "resume": resume}
    values.update(kw)
    return TrainParams(**values)  # type: ignore[arg-type]


def _weights(run: Path) -> dict[str, object]:
    """The kept model and the live networks at the end (the loop's last checkpoint)."""
    from plugins.levels.engine import learned

    out: dict[str, object] = dict(load_tensors(run / learned.WEIGHTS))
    ckpt = load_state(run / learned.CHECKPOINT)
    for net, state in ckpt["nets"].items():
        out.update({f"live.{net}.{k}": v for k, v in state.items()})
    return out


@pytest.mark.parametrize("model", ["gan", "vae"])
def test_stop_and_resume_give_the_uninterrupted_run(data: Path, tmp_path: Path,
                                                    model: str) -> None:
    """Stopped after its first logged point and resumed, a run ends with the same weights and
    the same curves as one that never stopped (evaluations, keep-best and the EMA included)."""
    cut = assert_exact_resume(tmp_path, "levels", "train",
                              lambda resume: _train_params(data, resume, model=model),
                              weights=_weights)
    assert 0 < cut < 24


def test_the_run_records_its_levels_and_the_held_out_ones(data: Path, tmp_path: Path) -> None:
    from plugins.common.splits import held_out

    src = data.parent / "more"
    src.mkdir()
    for name in ("mario-1-1.txt", "mario-1-3.txt", "smb.json"):
        shutil.copy(data / name, src / name)
    for i, name in enumerate(("mario-1-1.txt", "mario-1-3.txt")):  # four levels, two files each
        shutil.copy(data / name, src / f"copy{i}-{name}")
        (src / f"copy{i}-{name}").write_text((data / name).read_text() + "\n")
    run = tmp_path / "run"
    assert cmd_run("levels", "train", ["--data", str(src), "--steps", "4", "--batch", "4",
                                       "--base", "4", "--latent", "4", "--eval-every", "2",
                                       "--holdout", "0.5", "--seed", "3",
                                       "--out", str(run)]) == 0
    m = run_manifest.read(run)
    assert m is not None
    ds = m.dataset()
    assert ds is not None and ds.unit == "level" and ds.location == str(src.resolve())
    assert (ds.examples, ds.train, ds.held_out) == (4, 2, 2)
    split = run_manifest.membership(run)
    ids = sorted(split)
    assert held_out(ids, 0.5, 3) == {i for i, side in split.items() if side == "held_out"}
    rows = list(run_manifest.read_examples(run))
    assert sorted(r.path for r in rows) == sorted(
        p.name for p in src.iterdir() if p.suffix == ".txt")
    assert all(r.part == "" for r in rows)  # a whole level file is one example
    assert "quality/held_out_tile_js" in read_metrics(run)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["held_out"] == 2
    models = m.models()
    assert len(models) == 1 and models[0].model_kind == "level-model"


def test_checkpoints_from_before_the_shared_loop_still_resume(data: Path, tmp_path: Path
                                                             ) -> None:
    """The old trainer's checkpoint (averaged generator as nets/G_ema, step and best beside
    it, no loop state) continues where it stopped."""
    from dataclasses import asdict

    from plugins.levels.engine import learned
    from plugins.levels.engine.level import levels_legend

    levels = files.load_folder(data)
    segs = learned.make_segments(levels, None, 28, legend=levels_legend(levels))
    p = _train_params(data, steps=12)
    task = learned.LevelTrainer(segs, p.config(), tmp_path, QuietReporter())
    old = {"nets": {**{k: m.state_dict() for k, m in task.nets.items()},
                    "G_ema": task.ema.model.state_dict()},
           "opts": {k: o.state_dict() for k, o in task.opts.items()},
           "gen": task.gen.get_state(), "step": 7, "best": 0.25, "config": asdict(task.cfg)}
    run = tmp_path / "old"
    save_state(run / learned.CHECKPOINT, old)
    rep = QuietReporter()
    out = learned.train(rep, segs, _train_params(data, True, steps=12).config(), run,
                        resume=True)
    assert out.step == 12 and any("resumed from step 7" in t for _, t in rep.logs)
    assert min(s for s, _ in rep.history["loss/D"]) > 7
    # its best score came along: a worse evaluation does not replace the kept model
    assert out.best_value is not None and out.best_value >= 0.25


def test_train_and_sample_refuse_values_out_of_range(data: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in ((["--steps", "0"], "--steps must be between 1 and"),
                          (["--steps", "-1"], "--steps must be between 1 and"),
                          (["--batch", "1"], "--batch must be between 2 and"),
                          (["--holdout", "0.95"], "--holdout must be between 0 and 0.9"),
                          (["--width", "4"], "--width must be between 8 and"),
                          (["--height", "2"], "--height must be 0"),
                          (["--model", "rnn"], "--model must be one of gan, vae")):
        assert cmd_run("levels", "train", ["--data", str(data), *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    for argv, message in ((["--n", "0"], "--n must be between 1 and"),
                          (["--segments", "0"], "--segments must be between 1 and"),
                          (["--formats", "gif"], "--formats: unknown 'gif'")):
        assert cmd_run("levels", "sample", ["--model", str(data), *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_resume_finds_its_levels_from_any_folder(data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A resumed run needs no --data: it recorded where its levels are (absolute)."""
    work = tmp_path / "work"
    shutil.copytree(data, work / "lv" / "mario")
    monkeypatch.chdir(work / "lv")
    base = ["--steps", "4", "--batch", "8", "--eval-every", "2"]
    assert cmd_run("levels", "train", ["--data", "mario", *base, "--out", "../r"]) == 0
    monkeypatch.chdir(tmp_path)
    assert cmd_run("levels", "train", ["--resume", "--steps", "6", "--out", str(work / "r"),
                                       "--batch", "8", "--eval-every", "2"]) == 0
    m = run_manifest.read(work / "r")
    assert m.state == "done" and m.dataset().location == str(work / "lv" / "mario")
    assert cmd_run("levels", "train", ["--steps", "4", "--out", str(tmp_path / "x")]) == 2
