"""The diffusion plugin's audit probe: the contract on a tiny run trained here, the denoising
error as the loss, seeded samples, and the audit's memorisation and membership jobs end to end
(their reference models trained by the plugin's own train job)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusion_helpers import write_png

from plugins.common.probes import check_probe
from plugins.diffusion import audit as audit_mod
from plugins.diffusion.audit import DiffusionProbe
from studio import cli
from studio import manifest as manifest_mod
from studio.errors import UserError

TINY = {"preset": "tiny", "batch_size": 4, "sample_every": 1000, "checkpoint_every": 1000}


def _images(root: Path, n: int = 12, grey: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.zeros((32, 32, 3), dtype=np.uint8)
        x, y = rng.integers(4, 20, size=2)
        img[y:y + 10, x:x + 10] = rng.integers(80, 255) if grey else rng.integers(80, 255, 3)
        write_png(root / ("a" if i % 2 else "b") / f"img{i:02d}.png", img)
    return root


def _train(out: Path, data: Path, **params: object) -> Path:
    from studio import registry
    from studio.jobs import JobRunner
    from studio.settings import Settings

    runner = JobRunner(None, settings=Settings(device="cpu"))
    try:
        rec = runner.submit("diffusion", registry.get("diffusion").job("train"),
                            {"data": str(data), "steps": 2, "holdout": 0.5, **TINY, **params},
                            out=out)
        runner.wait(rec.id, 240)
        assert rec.state == "done", rec.error
    finally:
        runner.shutdown()
    return out


@pytest.fixture(scope="module")
def held_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny colour run on 12 images with half of them held out."""
    root = tmp_path_factory.mktemp("diffusion_audit")
    torch.set_num_threads(1)
    return _train(root / "run", _images(root / "images"))


@pytest.fixture
def probe(held_run: Path):
    p = DiffusionProbe.load(held_run, "cpu")
    yield p
    p.close()


def test_the_plugin_names_its_probe():
    from plugins.diffusion.plugin import DiffusionPlugin

    assert DiffusionPlugin().load_audit_probe() is DiffusionProbe


def test_the_probe_keeps_the_contract(probe):
    assert check_probe(probe) == []
    examples = probe.examples()
    assert len(examples) == 12 and sum(e.member for e in examples) == 6


def test_read_gives_the_images_training_read(probe, held_run):
    from plugins.common.images import load_image_folder

    ds = load_image_folder(probe.dataset.location, 32, 3)
    by_path = {Path(f).relative_to(ds.root).as_posix(): img
               for f, img in zip(ds.files, ds.images, strict=True)}
    for e in probe.examples()[:4]:
        img = probe.read(e)
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert np.array_equal(img, by_path[e.path])


def test_grey_runs_read_and_sample_one_channel(tmp_path):
    run = _train(tmp_path / "run", _images(tmp_path / "grey", n=8, grey=True), steps=1)
    p = DiffusionProbe.load(run, "cpu")
    try:
        assert p.channels == 1
        img = p.read(p.examples()[0])
        assert img.shape == (32, 32, 1)
        assert p.sample(1, 0)[0].shape == (32, 32, 1)
        assert p.per_example_loss([img, img[:, :, 0]]).shape == (2,)  # (H, W) items too
    finally:
        p.close()


def test_the_loss_is_the_noise_error_over_fixed_draws(probe):
    """The loss is the mean squared error of the predicted noise over the fixed (timestep,
    noise) draws, recomputed here from the UNet and the scheduler directly (the model is
    v-prediction, so its output is converted to noise)."""
    items = [probe.read(e) for e in probe.examples()[:3]]
    x0 = torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    sched, unet = probe.noise_sched, probe.unet
    assert probe.config.prediction == "v_prediction"
    errs = []
    with torch.no_grad():
        for j, t in enumerate(audit_mod.TIMESTEPS):
            for k in range(audit_mod.DRAWS):
                g = torch.Generator().manual_seed(audit_mod.NOISE_SEED + j * audit_mod.DRAWS + k)
                eps = torch.randn((3, 32, 32), generator=g).expand_as(x0)
                ts = torch.full((3,), t)
                xt = sched.add_noise(x0, eps, ts)
                a = sched.alphas_cumprod[t]
                v = unet(xt, ts).sample
                errs.append(((a.sqrt() * v + (1 - a).sqrt() * xt - eps) ** 2).mean((1, 2, 3)))
    expected = torch.stack(errs).mean(0).double().numpy()
    got = probe.per_example_loss(items)
    assert np.allclose(got, expected, rtol=1e-5)
    # one at a time gives the same numbers: the score depends on the item alone
    assert np.allclose(np.concatenate([probe.per_example_loss([i]) for i in items]), got,
                       rtol=1e-6)


def test_samples_are_seeded_and_batches_do_not_repeat(probe):
    a, b = probe.sample(2, 5), probe.sample(2, 5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (32, 32, 3) and a[0].dtype == np.uint8
    assert not any(np.array_equal(x, y) for x in a for y in probe.sample(2, 6))


def test_embeddings_are_the_encoders_last_downsampled_map(probe):
    items = [probe.read(e) for e in probe.examples()[:3]]
    f = probe.embed(items)
    # tiny has two levels: the first down block's output, 16 channels at 16 px
    assert f.shape == (3, probe.unet.config.block_out_channels[0] * 16 * 16)
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0)
    assert np.allclose(probe.embed(items[:1]), f[:1], atol=1e-6)


def test_reference_job_is_the_runs_train_job_on_another_half(probe):
    job, params = probe.reference_job(0.5, 9)
    assert job == "train" and params["holdout"] == 0.5 and params["seed"] == 9
    assert params["resume"] is False and params["preset"] == "tiny"
    assert params["data"] == probe.dataset.location


def test_a_run_without_a_model_or_data_says_so(held_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(held_run, copy)
    shutil.rmtree(copy / "model")
    with pytest.raises(UserError, match="no trained model yet"):
        DiffusionProbe.load(copy, "cpu")
    moved = _train(tmp_path / "run2", _images(tmp_path / "moved", n=4), steps=1)
    shutil.rmtree(tmp_path / "moved")
    p = DiffusionProbe.load(moved, "cpu")
    with pytest.raises(UserError, match="is gone"):
        p.read(p.examples()[0])


def run(*argv: str) -> int:
    return cli.cmd_run(argv[0], argv[1], list(argv[2:]))


def test_memorization_and_mia_from_the_command_line(held_run, tmp_path, capsys):
    assert run("audit", "memorization", "--run", str(held_run), "--n", "8",
               "--out", str(tmp_path / "memo")) == 0
    memo = json.loads((tmp_path / "memo" / "audit.json").read_text())["result"]
    assert [r["kind"] for r in memo["results"]] == ["image", "features"]
    assert len(memo["results"][0]["distances"]) == 8

    assert run("audit", "mia", "--run", str(held_run), "--reference-models", "2",
               "--out", str(tmp_path / "mia")) == 0
    mia = json.loads((tmp_path / "mia" / "audit.json").read_text())["result"]
    assert {a["attack"] for a in mia["attacks"]} == {"loss", "lira-online", "lira-offline",
                                                     "rmia", "rmia-offline"}
    assert mia["members"] == 6 and mia["nonmembers"] == 6
    for k in (1, 2):
        ref = manifest_mod.read(tmp_path / "mia" / "references" / f"reference-{k}")
        assert ref is not None and ref.plugin == "diffusion" and ref.state == "done"
        assert ref.params["holdout"] == 0.5 and ref.params["preset"] == "tiny"
    capsys.readouterr()
