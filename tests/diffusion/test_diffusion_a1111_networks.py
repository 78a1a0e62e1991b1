"""LoRAs (several, with weights; kohya/A1111 and diffusers layouts), textual-inversion
embeddings by trigger word and VAE files: applied to a tiny SD-shaped model, recorded in the
PNG parameters as A1111 does, found by name in the model library for ``<lora:name:w>`` tags, and
switched off again without reloading the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from a1111_helpers import write_embedding, write_lora, write_vae
from PIL import Image

from plugins.diffusion.engine import hashes
from plugins.diffusion.engine.infotext import read_png_parameters


def _workspace() -> Path:
    from studio import settings as settings_mod

    return settings_mod.load().workspace_path()


@pytest.fixture
def loras(text_model: Path) -> dict[str, Path]:
    """Two LoRAs in the workspace's model folder (the library lists them)."""
    folder = _workspace() / "models" / "loras"
    return {"tiny": write_lora(text_model, folder / "tiny.safetensors", kohya=True, seed=0),
            "other": write_lora(text_model, folder / "other.safetensors", kohya=False, seed=1)}


def _img(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def _sample(run_job: Any, model: Path, out: Path, **kw: Any) -> np.ndarray:
    args = {"prompt": "a red fox", "n": 1, "steps": 3, "seed": 11, "guidance": 5.0,
            "scheduler": "DPM++ 2M Karras"} | kw
    res = run_job("sample", model=str(model), out=str(out), **args)
    assert res.state == "done", res.error
    return _img(out)


def test_loras_change_the_image_with_their_weights_and_are_recorded(
        run_job: Any, text_model: Path, loras: dict[str, Path], tmp_path: Path) -> None:
    plain = _sample(run_job, text_model, tmp_path / "plain.png")
    one = _sample(run_job, text_model, tmp_path / "one.png", lora=[f"{loras['tiny']}:0.8"])
    assert np.abs(one - plain).mean() > 0.5
    p = read_png_parameters(tmp_path / "one.png")
    assert p.prompt == "a red fox <lora:tiny:0.8>"  # A1111 reads the LoRA from the prompt
    assert p.extra["Lora hashes"] == f"tiny: {hashes.addnet_hash(loras['tiny'])}"
    # weight 0 is no LoRA at all; two LoRAs at once differ from one
    zero = _sample(run_job, text_model, tmp_path / "zero.png", lora=[f"{loras['tiny']}:0"])
    np.testing.assert_array_equal(zero, plain)
    both = _sample(run_job, text_model, tmp_path / "both.png",
                   lora=[f"{loras['tiny']}:0.8", str(loras["other"])])
    assert np.abs(both - one).mean() > 0.5
    assert read_png_parameters(tmp_path / "both.png").extra["Lora hashes"].count(":") == 2
    # the cached model without LoRAs again: exactly the first picture
    np.testing.assert_array_equal(_sample(run_job, text_model, tmp_path / "again.png"), plain)
    # the same LoRA named by a prompt tag and found in the model library: the same picture
    tagged = _sample(run_job, text_model, tmp_path / "tag.png",
                     prompt=p.prompt)
    np.testing.assert_array_equal(tagged, one)


def test_missing_lora_tag_warns_and_bad_files_are_refused(run_job: Any, text_model: Path,
                                                          tmp_path: Path) -> None:
    res = run_job("sample", model=str(text_model), prompt="a fox <lora:nowhere:1>", n=1,
                  steps=2, out=str(tmp_path / "x.png"))
    assert res.state == "done", res.error
    assert any("LoRA not found: nowhere" in t for t in res.logs())
    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"not really")
    res = run_job("sample", model=str(text_model), prompt="a fox", n=1, steps=2,
                  lora=[str(pickle)], out=str(tmp_path / "y.png"))
    assert res.state == "failed" and "pickle" in str(res.error)
    res = run_job("sample", model=str(text_model), prompt="a fox", n=1, steps=2,
                  lora=[str(tmp_path / "missing.safetensors")], out=str(tmp_path / "z.png"))
    assert res.state == "failed" and "does not exist" in str(res.error)


def test_embedding_by_trigger_word(run_job: Any, text_model: Path, tmp_path: Path) -> None:
    emb = write_embedding(text_model,
                          _workspace() / "models" / "embeddings" / "zqstyle.safetensors")
    plain = _sample(run_job, text_model, tmp_path / "plain.png", prompt="a fox, zq")
    used = _sample(run_job, text_model, tmp_path / "used.png", prompt="a fox, zqstyle")
    assert np.abs(used - plain).mean() > 0.5
    p = read_png_parameters(tmp_path / "used.png")
    assert p.extra["TI hashes"] == f"zqstyle: {hashes.ti_hash(emb)}"
    # given on the command line but not used by the prompt: not recorded
    _sample(run_job, text_model, tmp_path / "unused.png", prompt="a fox", embedding=[str(emb)])
    assert "TI hashes" not in read_png_parameters(tmp_path / "unused.png").extra


def test_vae_file_replaces_the_models_own(run_job: Any, text_model: Path,
                                          tmp_path: Path) -> None:
    vae = write_vae(text_model, tmp_path / "vae" / "my-vae.safetensors")
    plain = _sample(run_job, text_model, tmp_path / "plain.png")
    other = _sample(run_job, text_model, tmp_path / "vae.png", vae=str(vae))
    assert np.abs(other - plain).mean() > 0.5
    p = read_png_parameters(tmp_path / "vae.png")
    assert (p.extra["VAE"], p.extra["VAE hash"]) == ("my-vae.safetensors", hashes.autov2(vae))
    np.testing.assert_array_equal(_sample(run_job, text_model, tmp_path / "back.png"), plain)


def test_cli_lora_is_repeatable_and_img2img_takes_it(text_model: Path, loras: dict[str, Path],
                                                     photo: Path, tmp_path: Path) -> None:
    from studio.cli import cmd_run

    out = tmp_path / "cli.png"
    assert cmd_run("diffusion", "sample", [
        "--model", str(text_model), "--prompt", "a fox", "--lora", f"{loras['tiny']}:0.5",
        "--lora", str(loras["other"]), "--scheduler", "DPM++ 2M Karras", "--steps", "2",
        "--n", "1", "--out", str(out)]) == 0
    p = read_png_parameters(out)
    assert p.prompt == "a fox <lora:tiny:0.5> <lora:other:1>"
    assert "tiny: " in p.extra["Lora hashes"] and "other: " in p.extra["Lora hashes"]
    out2 = tmp_path / "i2i.png"
    assert cmd_run("diffusion", "img2img", [
        "--model", str(text_model), "--image", str(photo), "--prompt", "a fox",
        "--lora", f"{loras['tiny']}:0.7", "--steps", "2", "--out", str(out2)]) == 0
    assert "<lora:tiny:0.7>" in read_png_parameters(out2).prompt


def test_exports_name_the_files_but_carry_no_paths(run_job: Any, text_model: Path,
                                                   loras: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """The A1111 record and the provenance stamp name the LoRA, embedding and VAE files, never
    where they are on this computer."""
    from plugins.common.pngmeta import read_png_text

    emb = write_embedding(text_model, tmp_path / "emb" / "zqstyle.safetensors")
    vae = write_vae(text_model, tmp_path / "vae" / "my-vae.safetensors")
    out = tmp_path / "out" / "x.png"
    _sample(run_job, text_model, out, prompt="a fox zqstyle", lora=[f"{loras['tiny']}:0.5"],
            embedding=[str(emb)], vae=str(vae))
    texts = "\n".join(read_png_text(out).values())
    assert "tiny" in texts and "my-vae.safetensors" in texts and "zqstyle" in texts
    for folder in (tmp_path, loras["tiny"].parent, text_model, Path.home()):
        assert str(folder) not in texts


def test_another_embedding_file_of_the_same_name_replaces_it(run_job: Any, text_model: Path,
                                                             tmp_path: Path) -> None:
    """Two folders each with a 'zqstyle' embedding (of two and of three vectors): the one
    given last is used, on the same cached model."""
    a = write_embedding(text_model, tmp_path / "a" / "zqstyle.safetensors", vectors=2, seed=1)
    b = write_embedding(text_model, tmp_path / "b" / "zqstyle.safetensors", vectors=3, seed=2)
    first = _sample(run_job, text_model, tmp_path / "a.png", prompt="zqstyle", embedding=[str(a)])
    second = _sample(run_job, text_model, tmp_path / "b.png", prompt="zqstyle",
                     embedding=[str(b)])
    assert np.abs(first - second).mean() > 0.5
    np.testing.assert_array_equal(
        _sample(run_job, text_model, tmp_path / "a2.png", prompt="zqstyle", embedding=[str(a)]),
        first)
