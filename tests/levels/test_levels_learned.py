"""Learned generators: train (and resume) through the CLI, sample, search the latent space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from plugins.levels.engine import files, search
from studio.cli import cmd_run
from studio.errors import UserError
from studio.runs import read_manifest, read_metrics


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
    assert len(read_manifest(run)["history"]) == 1

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
