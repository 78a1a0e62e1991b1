"""PNG parameters (A1111 ``parameters`` text) round trip, the command-line forms of the issue, and
bad input: non-images, masks of another size, pickle-only and custom-code models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plugins.diffusion.engine.infotext import (
    GenerationParams,
    format_parameters,
    parse_parameters,
    read_png_parameters,
)
from studio.errors import UserError


def test_parameters_round_trip_through_a_png(tmp_path: Path) -> None:
    from plugins.common.pngmeta import save_png

    p = GenerationParams(prompt="a lighthouse, at dusk: oil", negative_prompt="blurry\nugly",
                         steps=30, scheduler="DPM++ 2M SDE Karras", guidance=6.5, seed=1234,
                         width=512, height=768, mode="inpaint", strength=0.75, mask_blur=4,
                         model="my, model", model_hash="0badf00d",
                         extra={"Lora hashes": '"x: 1"'})
    save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png",
             {"parameters": format_parameters(p)})
    assert read_png_parameters(tmp_path / "a.png") == p


def test_reads_what_a1111_writes() -> None:
    text = ("masterpiece, a cat\nwearing a hat\nNegative prompt: lowres, bad hands\n"
            "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3071459468, "
            "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
            "Denoising strength: 0.7, Version: v1.6.0")
    p = parse_parameters(text)
    assert p.prompt == "masterpiece, a cat\nwearing a hat"
    assert p.negative_prompt == "lowres, bad hands"
    assert (p.steps, p.scheduler, p.guidance, p.seed) == (20, "DPM++ 2M Karras", 7.0, 3071459468)
    assert (p.width, p.height, p.model_hash, p.model) == (512, 512, "6ce0161689",
                                                           "v1-5-pruned-emaonly")
    assert p.strength == 0.7 and p.mode == "img2img"
    assert p.extra == {"Version": "v1.6.0"}
    with pytest.raises(ValueError):
        parse_parameters("just a caption")


def test_png_without_parameters_is_a_clear_error(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    with pytest.raises(UserError, match="no generation parameters"):
        read_png_parameters(tmp_path / "plain.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "photo.jpg")
    with pytest.raises(UserError, match="not a PNG"):
        read_png_parameters(tmp_path / "photo.jpg")


def test_cli_forms_of_the_issue(pixel_model: Path, image_folder: Path, photo: Path,
                                photo_mask: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """The four command lines of the issue, exactly, through ``studio.cli``."""
    from studio.cli import cmd_run

    run = tmp_path / "run"
    assert cmd_run("diffusion", "train", ["--data", str(image_folder), "--size", "32",
                                          "--steps", "2", "--out", str(run), "--preset", "tiny",
                                          "--batch-size", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "model")
    assert cmd_run("diffusion", "sample", ["--model", str(pixel_model), "--n", "4", "--steps",
                                           "3", "--scheduler", "dpm++", "--seed", "1", "--out",
                                           str(tmp_path / "grid.png")]) == 0
    assert cmd_run("diffusion", "img2img", ["--model", str(run), "--image", str(photo),
                                            "--strength", "0.6", "--steps", "3", "--seed", "1",
                                            "--out", str(tmp_path / "i2i.png")]) == 0
    assert cmd_run("diffusion", "inpaint", ["--model", str(pixel_model), "--image", str(photo),
                                            "--mask", str(photo_mask), "--steps", "3", "--seed",
                                            "1", "--out", str(tmp_path / "inp.png")]) == 0
    for name in ("grid.png", "i2i.png", "inp.png"):
        assert read_png_parameters(tmp_path / name).steps == 3
    assert read_png_parameters(tmp_path / "inp.png").mode == "inpaint"
    # a bad value is a usage error, not a traceback
    assert cmd_run("diffusion", "sample", ["--model", str(pixel_model), "--scheduler",
                                           "DPM fast"]) == 2
    assert "unknown sampler 'DPM fast'" in capsys.readouterr().err


@pytest.mark.parametrize(("job", "argv", "message"), [
    ("train", ["--steps", "0"], "--steps must be between 1 and 10_000_000"),
    ("train", ["--steps", "-1"], "--steps must be between 1"),
    ("train", ["--batch-size", "0"], "--batch-size must be between 1 and 4_096"),
    ("train", ["--holdout", "0.95"], "--holdout must be between 0 and 0.9"),
    ("train", ["--sample-every", "0"], "--sample-every must be between 1"),
    ("train", ["--checkpoint-every", "-5"], "--checkpoint-every must be between 1"),
    ("train", ["--minutes", "-1"], "--minutes must be between 0"),
    ("train", ["--size", "48"], "--size must be one of 32, 64"),
    ("sample", ["--model", "m", "--steps", "0"], "--steps must be between 1 and 1_000"),
    ("sample", ["--model", "m", "--steps", "-1"], "--steps must be between 1"),
    ("sample", ["--model", "m", "--n", "0"], "--n must be between 1"),
    ("sample", ["--model", "m", "--guidance", "-1"], "--guidance must be between 0"),
    ("sample", ["--model", "m", "--seed", "-3"], "--seed must be between 0"),
    ("sample", ["--model", "m", "--steps", "2.5"], "--steps expects a whole number"),
    ("sample", ["--model", "m", "--out", "grid.jpg"], "--out must be a .png file"),
    ("sample", ["--steps", "3"], "--model is required"),
    ("img2img", ["--model", "m", "--image", "x.png", "--strength", "0"],
     "--strength must be between 0.01 and 1"),
    ("img2img", ["--model", "m", "--image", "x.png", "--strength", "1.5"],
     "--strength must be between 0.01 and 1"),
    ("inpaint", ["--model", "m", "--image", "x.png", "--mask", "y.png", "--mask-blur", "-2"],
     "--mask-blur must be between -1 and 256"),
    ("outpaint", ["--model", "m", "--image", "x.png"], "give at least one margin"),
    ("outpaint", ["--model", "m", "--image", "x.png", "--left", "-8"],
     "--left must be between 0 and 2_048"),
])
def test_cli_refuses_values_out_of_range(job: str, argv: list[str], message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Every limit is checked before anything runs, with a message naming the flag."""
    from studio.cli import cmd_run

    assert cmd_run("diffusion", job, argv) == 2
    assert message in capsys.readouterr().err


def test_cli_reads_image_and_mask_files_into_arrays(photo: Path, photo_mask: Path) -> None:
    """On the command line the image and mask are files; the job receives arrays (as from the
    window), the mask checked against the image's size."""
    from plugins.diffusion.params import InpaintParams
    from studio import params as params_mod

    p = params_mod.from_cli(InpaintParams, ["--model", "m", "--image", str(photo), "--mask",
                                            str(photo_mask)])
    params_mod.read_objects(p)
    assert p.image.shape == (48, 40, 3) and p.image.dtype == np.uint8
    assert p.mask.shape == (48, 40) and p.mask.max() == 1.0
    assert params_mod.to_json(p)["image"] == {"$object": {"image": "40x48"}}


def test_non_image_and_mismatched_mask_are_refused(run_job: Any, pixel_model: Path, photo: Path,
                                                   tmp_path: Path) -> None:
    from diffusion_helpers import write_png

    notes = tmp_path / "notes.png"
    notes.write_text("not an image at all")
    res = run_job("img2img", model=str(pixel_model), image=str(notes), steps=2)
    assert res.state == "failed" and "notes.png is not an image" in res.error
    small = write_png(tmp_path / "small_mask.png", np.full((10, 10), 255, np.uint8))
    res = run_job("inpaint", model=str(pixel_model), image=str(photo), mask=str(small), steps=2)
    assert res.state == "failed"
    assert "is 10x10 but the image is 40x48" in res.error
    empty = write_png(tmp_path / "empty_mask.png", np.zeros((48, 40), np.uint8))
    res = run_job("inpaint", model=str(pixel_model), image=str(photo), mask=str(empty), steps=2)
    assert res.state == "failed" and "mask is empty" in res.error
    res = run_job("img2img", model=str(pixel_model), image=str(photo), strength=0.01, steps=5)
    assert res.state == "failed" and "no denoising step" in res.error
    res = run_job("sample", model=str(pixel_model), out=str(tmp_path / "x.jpg"), n=1, steps=1)
    assert res.state == "failed" and ".png" in res.error


def test_pickle_only_checkpoints_are_refused(run_job: Any, pixel_model: Path,
                                             tmp_path: Path) -> None:
    import shutil

    import torch

    folder = tmp_path / "pickled"
    shutil.copytree(pixel_model, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    res = run_job("sample", model=str(folder), n=1, steps=1)
    assert res.state == "failed"
    assert "only has pickle weights" in res.error and "safetensors" in res.error
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04pickle")
    res = run_job("sample", model=str(ckpt), n=1, steps=1)
    assert res.state == "failed" and "pickle checkpoint" in res.error


def test_custom_code_and_foreign_files_are_refused(pixel_model: Path, tmp_path: Path) -> None:
    import shutil

    from plugins.diffusion.engine.loading import inspect_model, load_model

    custom = tmp_path / "custom"
    shutil.copytree(pixel_model, custom)
    index = json.loads((custom / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "MyPipeline"]
    (custom / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="remote code"):
        load_model(custom)
    index["_class_name"] = "DDPMPipeline"
    index["unet"] = ["my_package", "EvilUNet"]
    (custom / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="custom code is never run"):
        inspect_model(custom)
    with pytest.raises(UserError, match=r"no model_index\.json"):
        inspect_model(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        inspect_model(tmp_path / "nowhere")


def test_single_file_checkpoint_without_local_config_is_a_clear_error(tmp_path: Path) -> None:
    """A .safetensors single file of a kind the studio ships no configuration for (an SDXL
    refiner) needs its diffusers configuration on disk; offline, the studio says so (diffusers
    itself would try to download it). An incomplete SD 1.x file says what is missing."""
    import torch
    from safetensors.torch import save_file

    from plugins.diffusion.engine.loading import load_model

    ckpt = tmp_path / "refiner.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3),
               "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias":
                   torch.zeros(4)}, ckpt)
    with pytest.raises(UserError, match=r"refiner.config"):
        load_model(ckpt)
    partial = tmp_path / "dreamy.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
               "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight":
                   torch.zeros(8, 768)}, partial)
    with pytest.raises(UserError, match=r"could not load dreamy.safetensors.*is the file complete"):
        load_model(partial)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"nonsense")
    with pytest.raises(UserError, match="not a readable safetensors"):
        load_model(junk)


def test_info_job_describes_models(run_job: Any, pixel_model: Path, inpaint_model: Path) -> None:
    res = run_job("info", model=str(pixel_model))
    assert res.state == "done" and res.result["kind"] == "pixel"
    assert res.result["size"] == 16 and res.result["channels"] == 3
    res = run_job("info", model=str(inpaint_model))
    assert res.result["kind"] == "text" and res.result["inpaint_model"] is True
