"""Sampling, evaluation and exploring a trained GAN: the sample / eval CLI jobs, seeded
generation, slerp + GIF, GANSpace edits, PNG metadata round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gan_helpers import run_job

from plugins.common import pngmeta
from plugins.gan.engine import explore
from plugins.gan.engine.modelfile import load_model
from studio.errors import UserError


def test_sample_job_writes_the_grid_with_its_recipe(trained_run: Path, tmp_path: Path) -> None:
    rec = run_job("sample", model=str(trained_run), n=6, seed=3, out=str(tmp_path / "g.png"),
                  individual=True)
    assert rec.state == "done", rec.error
    text = pngmeta.read_png_text(tmp_path / "g.png")
    assert text["gan:seed"] == "3" and text["gan:n"] == "6"
    singles = sorted((tmp_path / "g").glob("seed-*.png"))
    assert [p.name for p in singles] == [f"seed-{s}.png" for s in sorted(map(str, range(3, 9)))]
    bad = run_job("sample", model=str(tmp_path / "nowhere"), out=str(tmp_path / "x.png"))
    assert bad.state == "failed" and "does not exist" in bad.error
    wrong = run_job("sample", model=str(trained_run), label="cats", out=str(tmp_path / "y.png"))
    assert wrong.state == "failed" and "bars_h" in wrong.error


def test_seeded_samples_are_reproducible_one_by_one(trained_run: Path) -> None:
    m = load_model(trained_run)
    batch = explore.generate(m, explore.samples_for(m, 5, 10, None))
    alone = explore.generate(m, [explore.Sample(12, explore.label_for(m, 12, None))])
    assert np.abs(batch[2].astype(int) - alone[0].astype(int)).max() <= 1
    assert [s.label for s in explore.samples_for(m, 4, 0, None)] == [0, 1, 0, 1]
    assert all(s.label == 1 for s in explore.samples_for(m, 3, 0, explore.parse_label(m, "bars_v")))


def test_png_metadata_round_trip_regenerates_the_same_pixels(trained_run: Path,
                                                             tmp_path: Path) -> None:
    rec = run_job("export", model=str(trained_run), seed=42, label="bars_v", edits="1.5,-1",
                  out=str(tmp_path / "one.png"), scale=2)
    assert rec.state == "done", rec.error
    text = pngmeta.read_png_text(tmp_path / "one.png")
    assert text["gan:seed"] == "42" and text["gan:class_name"] == "bars_v"
    # the model is named, never its folder's path (a path names the user)
    assert text["gan:edits"] == "1.5,-1" and text["gan:model"] == trained_run.name
    z = explore.decode_latent(text["gan:latent"], load_model(trained_run).config.z_dim)
    assert not torch.equal(z, explore.latent(42, z.numel()))  # the edits are in the latent
    lost = run_job("regenerate", png=str(tmp_path / "one.png"), out=str(tmp_path / "two.png"))
    assert lost.state == "failed" and "choose the model (--model)" in lost.error
    again = run_job("regenerate", png=str(tmp_path / "one.png"), out=str(tmp_path / "two.png"),
                    model=str(trained_run))
    assert again.state == "done", again.error
    from PIL import Image

    a = np.asarray(Image.open(tmp_path / "one.png"))
    b = np.asarray(Image.open(tmp_path / "two.png"))
    assert a.shape == (64, 64) and np.array_equal(a, b)
    plain = tmp_path / "plain.png"
    Image.fromarray(a).save(plain)
    with pytest.raises(UserError, match="no GAN metadata"):
        explore.read_sample(plain)


def test_interpolation_strip_and_gif(trained_run: Path, tmp_path: Path) -> None:
    m = load_model(trained_run)
    a, b = explore.Sample(1, 0), explore.Sample(2, 1)
    frames = explore.interpolate(m, a, b, frames=5)
    assert frames.shape[0] == 5
    ends = explore.generate(m, [a, b])
    assert np.abs(frames[0].astype(int) - ends[0]).max() <= 1
    assert np.abs(frames[-1].astype(int) - ends[1]).max() <= 1
    za, zb = torch.randn(8), torch.randn(8)
    mid = explore.slerp(za, zb, 0.5)
    assert mid.norm() > 0.9 * min(za.norm(), zb.norm())  # stays on the shell, unlike lerp
    rec = run_job("interpolate", model=str(trained_run), seed_a=1, seed_b=2, frames=4,
                  out=str(tmp_path / "m.gif"))
    assert rec.state == "done", rec.error
    from PIL import Image

    with Image.open(tmp_path / "m.gif") as gif:
        assert gif.n_frames == 4 + 2  # forth and back


def test_ganspace_directions_edit_and_are_cached(trained_run: Path) -> None:
    m = load_model(trained_run)
    rec = run_job("directions", model=str(trained_run), k=3)
    assert rec.state == "done", rec.error
    assert rec.result["k"] == 3 and sum(rec.result["explained"]) <= 1.0
    assert (trained_run / explore.DIRECTIONS_FILE).exists()
    d = explore.load_directions(m, 3)
    assert d.vectors.shape == (3, m.config.z_dim) and (d.stdev > 0).all()
    plain = explore.generate(m, [explore.Sample(4, 0)])
    moved = explore.generate(m, [explore.Sample(4, 0, [3.0, 0.0, 0.0])])
    assert not np.array_equal(plain, moved)


def test_eval_job_reports_a_domain_fd(trained_run: Path, tiny_folder: Path) -> None:
    rec = run_job("eval", model=str(trained_run), data=str(tiny_folder), n=16,
                  classifier_steps=10)
    assert rec.state == "done", rec.error
    r = rec.result
    assert r["comparable"] is False and "domain" in r["extractor"]
    assert r["n_fake"] == 16 and r["n_real"] == 24 and r["fd"] >= 0 and np.isfinite(r["kid"])
    assert "class_agreement" in r
    assert list(trained_run.glob("eval-domain-*.safetensors"))  # cached for the next time
    again = run_job("eval", model=str(trained_run), data=str(tiny_folder), n=16,
                    classifier_steps=10)
    assert again.result["fd"] == pytest.approx(r["fd"])  # same classifier, same samples


def test_eval_with_a_wrong_inception_file_fails_clearly(trained_run: Path, tiny_folder: Path,
                                                        tmp_path: Path) -> None:
    bogus = tmp_path / "inception.pth"
    bogus.write_text("not weights")
    rec = run_job("eval", model=str(trained_run), data=str(tiny_folder), n=16,
                  inception=str(bogus))
    assert rec.state == "failed" and "not a readable weights file" in rec.error
