"""The GAN's audit probe: the contract on a tiny run trained here, the discriminator's score as
the loss, seeded samples, and the audit's memorisation and membership jobs end to end (their
reference models trained by the GAN's own train job)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gan_helpers import TINY, make_folder, run_job

from plugins.common.probes import check_probe
from plugins.gan.audit import GanProbe
from studio import cli
from studio import manifest as manifest_mod
from studio.errors import UserError


@pytest.fixture(scope="module")
def held_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny conditional run on 24 bars with half of them held out."""
    root = tmp_path_factory.mktemp("gan_audit")
    folder = make_folder(root / "data", broken=False)
    torch.set_num_threads(1)
    rec = run_job("train", data=str(folder), steps=4, holdout=0.5, out=str(root / "run"),
                  **TINY)
    assert rec.state == "done", rec.error
    return root / "run"


@pytest.fixture
def probe(held_run: Path):
    p = GanProbe.load(held_run, "cpu")
    yield p
    p.close()


def test_the_plugin_names_its_probe():
    from plugins.gan.plugin import GanPlugin

    assert GanPlugin().load_audit_probe() is GanProbe


def test_the_probe_keeps_the_contract(probe):
    problems = check_probe(probe)
    assert problems == []
    examples = probe.examples()
    assert sum(e.member for e in examples) == 12 and len(examples) == 24


def test_read_gives_the_image_the_loader_gave_training(probe):
    from plugins.common.images import load_image_folder

    ds = load_image_folder(probe.dataset.location, probe.config.size, probe.config.channels)
    by_path = {Path(f).relative_to(ds.root).as_posix(): img
               for f, img in zip(ds.files, ds.images, strict=True)}
    for e in probe.examples()[:6]:
        img = probe.read(e)
        assert img.dtype == np.uint8 and img.shape == (32, 32, 1)
        assert np.array_equal(img, by_path[e.path])


def test_the_loss_is_minus_log_sigmoid_of_the_discriminator(probe):
    """With the group statistic at zero (what the discriminator itself appends to a batch of
    one), the probe's score is the network's own forward pass, and the loss is its best class's
    ``-log sigmoid``."""
    import torch.nn.functional as F

    items = [probe.read(e) for e in probe.examples()[:5]]
    x = probe._net_input(items)
    assert x.shape[-1] == 16  # judged at the run's learning resolution, as in training
    probe._std = 0.0
    with torch.no_grad():
        own = torch.stack([torch.stack([probe.D(x[i:i + 1], torch.tensor([c]))[0]
                                        for c in range(probe.config.num_classes)])
                           for i in range(len(items))])
    assert torch.allclose(probe._logits(x), own, atol=1e-5)
    expected = F.softplus(-own.max(1).values).double().numpy()
    assert np.allclose(probe.per_example_loss(items), expected, atol=1e-6)


def test_the_group_statistic_is_fixed_on_real_images_the_same_for_any_model(held_run, probe):
    """Every model of the same data uses the same real images for the minibatch-std stand-in,
    so scores depend on the item alone, not on its batch."""
    items = [probe.read(e) for e in probe.examples()[:8]]
    whole = probe.per_example_loss(items)
    one_by_one = np.concatenate([probe.per_example_loss([it]) for it in items])
    assert np.allclose(whole, one_by_one, atol=1e-6)
    assert probe._std is not None and probe._std > 0


def test_samples_are_seeded_and_batches_do_not_repeat(probe):
    a, b = probe.sample(4, 3), probe.sample(4, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (32, 32, 1) and a[0].dtype == np.uint8
    nxt = probe.sample(4, 4)  # the audit's next batch: seed + 1
    assert not any(np.array_equal(x, y) for x in a for y in nxt)
    assert probe.sample(0, 1) == []


def test_embeddings_are_unit_vectors_of_the_discriminators_features(probe):
    items = [probe.read(e) for e in probe.examples()[:3]] + probe.sample(2, 0)
    f = probe.embed(items)
    assert f.shape[0] == 5 and f.shape[1] > 1
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0)


def test_reference_job_is_the_runs_train_job_on_another_half(probe, held_run):
    job, params = probe.reference_job(0.5, 7)
    assert job == "train"
    assert params["holdout"] == 0.5 and params["seed"] == 7 and params["resume"] is False
    assert params["data"] == probe.dataset.location and Path(params["data"]).is_absolute()
    assert params["steps"] == 4 and params["train_size"] == TINY["train_size"]


def test_a_run_without_its_discriminator_or_data_says_so(held_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(held_run, copy)
    (copy / "checkpoints" / "last.safetensors").unlink()
    with pytest.raises(UserError, match="discriminator"):
        GanProbe.load(copy, "cpu")
    (copy / "generator.safetensors").unlink()
    with pytest.raises(UserError, match="no trained generator"):
        GanProbe.load(copy, "cpu")
    # the data moved away: reading an example names the file
    data = tmp_path / "moved"
    folder = make_folder(data, n_per_class=8, broken=False)
    rec = run_job("train", data=str(folder), steps=1, out=str(tmp_path / "run2"), **TINY)
    assert rec.state == "done", rec.error
    shutil.rmtree(folder)
    p = GanProbe.load(tmp_path / "run2", "cpu")
    with pytest.raises(UserError, match="is gone"):
        p.read(p.examples()[0])


def run(*argv: str) -> int:
    return cli.cmd_run(argv[0], argv[1], list(argv[2:]))


def test_memorization_and_mia_from_the_command_line(held_run, tmp_path, capsys):
    """The issue's command forms on a GAN run: samples compared with the training images, and
    membership attacks with two reference models trained by the GAN's own train job."""
    assert run("audit", "memorization", "--run", str(held_run), "--n", "8",
               "--out", str(tmp_path / "memo")) == 0
    memo = json.loads((tmp_path / "memo" / "audit.json").read_text())["result"]
    kinds = [r["kind"] for r in memo["results"]]
    assert kinds == ["image", "features"] and memo["samples"] == 8
    assert len(memo["results"][0]["distances"]) == 8
    assert list((tmp_path / "memo" / "pairs").glob("sample-*.png"))

    assert run("audit", "mia", "--run", str(held_run), "--reference-models", "2",
               "--out", str(tmp_path / "mia")) == 0
    mia = json.loads((tmp_path / "mia" / "audit.json").read_text())["result"]
    names = {a["attack"] for a in mia["attacks"]}
    assert names == {"loss", "lira-online", "lira-offline", "rmia", "rmia-offline"}
    assert mia["members"] == 12 and mia["nonmembers"] == 12
    assert all(0.0 <= a["auc"] <= 1.0 for a in mia["attacks"])
    target_seed = manifest_mod.read(held_run).params["seed"]
    for k in (1, 2):
        ref = manifest_mod.read(tmp_path / "mia" / "references" / f"reference-{k}")
        assert ref is not None and ref.plugin == "gan" and ref.state == "done"
        assert ref.params["holdout"] == 0.5 and ref.params["seed"] != target_seed
        assert ref.dataset(manifest_mod.TRAIN).fingerprint == \
            manifest_mod.read(held_run).dataset(manifest_mod.TRAIN).fingerprint
    capsys.readouterr()
