"""The levels plugin's audit probe: the contract on tiny GAN and VAE runs trained here, the
critic's and the VAE's per-window scores, the standardised level features, and the audit's
memorisation and membership jobs end to end through the command line (reference models trained
by the levels train job)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from plugins.common.probes import check_probe
from plugins.levels.audit import LevelsProbe
from studio import cli
from studio import manifest as manifest_mod
from studio.errors import UserError

SMB = Path(__file__).resolve().parents[3] / "shared" / "data" / "vglc" / "Super_Mario_Bros"
LEVELS = ("mario-1-1.txt", "mario-1-2.txt", "mario-1-3.txt", "mario-2-1.txt", "mario-3-1.txt",
          "mario-3-3.txt")
TINY = ["--steps", "4", "--batch", "4", "--base", "4", "--latent", "4", "--eval-every", "2",
        "--holdout", "0.5"]


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny models train faster on one thread than on two contending ones (CI shares cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SMB.exists():
        pytest.fail("../shared/data/vglc (reference data) must sit beside the checkout")
    out = tmp_path_factory.mktemp("smb")
    for name in (*LEVELS, "smb.json"):
        shutil.copy(SMB / name, out / name)
    return out


@pytest.fixture(scope="module", params=["gan", "vae"])
def trained(request: pytest.FixtureRequest, data: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run of each model on six levels, half of them held out."""
    import torch

    root = tmp_path_factory.mktemp(f"levels_audit_{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(root / "home"))
        torch.set_num_threads(1)
        assert cli.cmd_run("levels", "train", ["--data", str(data), "--model", request.param,
                                               *TINY, "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture
def probe(trained: Path):  # type: ignore[no-untyped-def]
    p = LevelsProbe.load(trained, "cpu")
    yield p
    p.close()


def test_the_plugin_names_its_probe() -> None:
    from plugins.levels.plugin import LevelsPlugin

    assert LevelsPlugin().load_audit_probe() is LevelsProbe


def test_the_probe_keeps_the_contract(probe: LevelsProbe) -> None:
    assert check_probe(probe) == []
    examples = probe.examples()
    assert len(examples) == 6 and sum(e.member for e in examples) == 3


def test_read_gives_the_level_the_trainer_loaded(probe: LevelsProbe, data: Path) -> None:
    from plugins.levels.engine import files

    for e in probe.examples():
        assert probe.read(e) == files.load_level(data / e.path).lines()


def test_a_level_is_scored_on_its_training_windows(probe: LevelsProbe) -> None:
    """Every window of a level, each scored on its own: the same numbers whatever else is in
    the batch; a level smaller than the window is padded, not refused."""
    import torch

    items = [probe.read(e) for e in probe.examples()]
    whole = probe.per_example_loss(items)
    one_by_one = np.concatenate([probe.per_example_loss([it]) for it in items])
    assert np.allclose(whole, one_by_one, atol=1e-6) and np.all(np.isfinite(whole))
    wins = probe._windows(items[0])
    assert wins.shape[1:] == (probe.h, probe.w) and len(wins) == min(
        256, (len(items[0][0]) - probe.w + 1) * (len(items[0]) - probe.h + 1))
    small = [row[:10] for row in items[0][-6:]]
    assert probe._windows(small).shape == (1, probe.h, probe.w)
    assert np.isfinite(probe.per_example_loss([small])[0])
    x = probe._one_hot(wins[:8])
    with torch.no_grad():
        if "E" in probe.nets:  # the VAE: cross-entropy of the reconstruction + KL, per tile
            from torch.nn import functional as F

            mu, logvar = probe.nets["E"](x)
            rec = F.cross_entropy(probe.nets["G"](mu), x.argmax(1), reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            expected = float((rec + kl) / (8 * probe.h * probe.w))
        else:  # the GAN: the critic as it scores a batch whose variety is the fixed one
            probe._std = float(probe.nets["D"].net(x).std(0, unbiased=False).mean())
            expected = float(torch.nn.functional.softplus(-probe.nets["D"](x)).mean())
        assert float(probe._vae_loss(x) if "E" in probe.nets else probe._critic_loss(x)) == \
            pytest.approx(expected, rel=1e-5)


def test_samples_are_seeded_levels_of_the_models_tiles(probe: LevelsProbe) -> None:
    a = probe.sample(2, 3)
    assert a == probe.sample(2, 3) and a != probe.sample(2, 4) and probe.sample(0, 1) == []
    assert len(a[0]) == probe.h and len(a[0][0]) == 4 * probe.w  # four segments, side by side
    assert set("".join(a[0])) <= set(probe.legend.chars)


def test_features_are_standardised_level_measures(probe: LevelsProbe) -> None:
    items = [probe.read(e) for e in probe.examples()]
    f = probe.embed(items)
    assert f.shape == (6, len(probe.legend) + 5)
    assert np.allclose(f.mean(0), 0.0, atol=1e-9)  # standardised over the run's examples
    assert np.allclose(probe.embed(items[:1]), f[:1])  # per item, whatever the batch


def test_reference_job_is_the_runs_train_job_on_another_half(probe: LevelsProbe,
                                                               data: Path) -> None:
    job, params = probe.reference_job(0.5, 7)
    assert job == "train" and params["holdout"] == 0.5 and params["seed"] == 7
    assert params["resume"] is False and params["data"] == str(data.resolve())
    assert params["steps"] == 4 and params["base"] == 4


def test_a_run_without_its_checkpoint_says_so(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    (copy / "checkpoints" / "last.safetensors").unlink()
    with pytest.raises(UserError, match="no training checkpoint"):
        LevelsProbe.load(copy, "cpu")


def run(*argv: str) -> int:
    return cli.cmd_run(argv[0], argv[1], list(argv[2:]))


def test_memorization_and_mia_from_the_command_line(trained: Path, tmp_path: Path) -> None:
    assert run("audit", "memorization", "--run", str(trained), "--n", "8",
               "--out", str(tmp_path / "memo")) == 0
    memo = json.loads((tmp_path / "memo" / "audit.json").read_text())["result"]
    assert [r["kind"] for r in memo["results"]] == ["level", "features"]
    assert memo["samples"] == 8 and memo["training"] == 3
    assert list((tmp_path / "memo" / "pairs").glob("sample-*.txt"))

    assert run("audit", "mia", "--run", str(trained), "--reference-models", "2",
               "--out", str(tmp_path / "mia")) == 0
    mia = json.loads((tmp_path / "mia" / "audit.json").read_text())["result"]
    assert {a["attack"] for a in mia["attacks"]} == {"loss", "lira-online", "lira-offline",
                                                     "rmia", "rmia-offline"}
    assert (mia["members"], mia["nonmembers"]) == (3, 3)
    target = manifest_mod.read(trained)
    assert target is not None
    for k in (1, 2):
        ref = manifest_mod.read(tmp_path / "mia" / "references" / f"reference-{k}")
        assert ref is not None and ref.plugin == "levels" and ref.state == "done"
        assert ref.params["holdout"] == 0.5 and ref.params["seed"] != target.params["seed"]
        assert ref.params["model"] == target.params["model"]
        assert sorted(manifest_mod.membership(trained)) == sorted(
            manifest_mod.membership(tmp_path / "mia" / "references" / f"reference-{k}"))
