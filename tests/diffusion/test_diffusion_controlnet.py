"""ControlNet (canny edges and scribbles) and A1111's Hires. fix on the tiny SD-shaped model: a
tiny ControlNet made here from its UNet (nothing downloaded), loaded as one .safetensors file
and as a diffusers folder through the job (the CLI's path), recorded in the PNG parameters as
A1111 and its ControlNet extension write them, and read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from plugins.diffusion.engine import control, hires
from plugins.diffusion.engine.infotext import (
    GenerationParams,
    format_parameters,
    parse_parameters,
    read_png_parameters,
)


def _controlnet(model: Path, folder: Path, seed: int = 0) -> Any:
    """The tiny UNet's ControlNet, with random (not zero) output convolutions so it steers;
    its hint encoder downsamples 2x, like the tiny VAE."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(str(model / "unet"))
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    with torch.no_grad():
        for p in net.parameters():
            if (p == 0).all():
                p.normal_(0, 0.5)
    return net


@pytest.fixture(scope="module")
def nets(text_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("controlnets")
    net = _controlnet(text_model, root)
    single = root / "tiny_canny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(single))
    net.save_pretrained(root / "tiny_scribble", safe_serialization=True)
    return {"file": single, "folder": root / "tiny_scribble"}


def _square(size: int = 32) -> np.ndarray:
    img = np.full((size, size, 3), 30, np.uint8)
    img[size // 4:3 * size // 4, size // 4:3 * size // 4] = 220
    return img


def test_canny_finds_the_edges_of_a_square_and_nothing_in_flat_areas() -> None:
    edges = control.canny(_square(64), 100, 200)[..., 0]
    assert edges.shape == (64, 64) and set(np.unique(edges)) <= {0, 255}
    border = np.zeros((64, 64), bool)
    border[14:19, 14:51] = border[46:51, 14:51] = True  # top and bottom edges (+-2 px)
    border[14:51, 14:19] = border[14:51, 46:51] = True
    on = edges > 0
    assert on[border].sum() >= 4 * 28  # every side is traced...
    assert not on[~border].any()  # ...and nothing else
    assert not control.canny(np.full((32, 32, 3), 128, np.uint8)).any()
    # higher thresholds keep fewer edges: a faint step disappears
    faint = np.full((32, 32, 3), 100, np.uint8)
    faint[:, 16:] = 130
    assert control.canny(faint, 10, 20).any() and not control.canny(faint, 100, 200).any()


def test_a_scribble_on_white_is_inverted_to_white_on_black() -> None:
    drawn = np.full((16, 16, 3), 255, np.uint8)
    drawn[8, 2:14] = 0
    img, inverted = control.scribble(drawn)
    assert inverted and img[8, 5, 0] == 255 and img[0, 0, 0] == 0
    again, inverted = control.scribble(img)
    assert not inverted and np.array_equal(again, img)


def _sample(run_job: Any, model: Path, out: Path, **kw: Any) -> np.ndarray:
    args = {"prompt": "a red fox", "n": 1, "steps": 3, "seed": 5, "guidance": 5.0,
            "scheduler": "Euler a", "width": 32, "height": 32} | kw
    res = run_job("sample", model=str(model), out=str(out), **args)
    assert res.state == "done", res.error
    return np.asarray(Image.open(out), dtype=np.int16)


def test_controlnet_steers_the_picture_and_is_recorded(
        run_job: Any, text_model: Path, nets: dict[str, Path], tmp_path: Path) -> None:
    plain = _sample(run_job, text_model, tmp_path / "plain.png")
    canny = _sample(run_job, text_model, tmp_path / "canny.png", controlnet=str(nets["file"]),
                    control_image=_square(), control="canny", control_scale=1.0)
    assert np.abs(canny - plain).mean() > 0.5
    zero = _sample(run_job, text_model, tmp_path / "zero.png", controlnet=str(nets["file"]),
                   control_image=_square(), control_scale=0.0)
    np.testing.assert_array_equal(zero, plain)  # weight 0: the model's own picture
    p = read_png_parameters(tmp_path / "canny.png")
    rec = control.read_control(p.extra)
    assert rec is not None and rec.kind == "canny" and rec.module == "canny"
    assert rec.model == "tiny_canny" and len(rec.model_hash) == 8 and rec.scale == 1.0
    assert (rec.low, rec.high) == (100, 200)
    assert p.mode == "txt2img" and p.strength is None
    # a diffusers folder, a scribble, and img2img following the image being edited
    drawn = np.full((32, 32, 3), 255, np.uint8)
    drawn[10:12, 4:28] = 0
    _sample(run_job, text_model, tmp_path / "scribble.png", controlnet=str(nets["folder"]),
            control_image=drawn, control="scribble", control_scale=0.7)
    rec = control.read_control(read_png_parameters(tmp_path / "scribble.png").extra)
    assert rec is not None and rec.kind == "scribble" and rec.module == "invert"
    assert rec.model == "tiny_scribble" and rec.scale == 0.7
    res = run_job("img2img", model=str(text_model), image=_square(), strength=0.8, steps=3,
                  prompt="a fox", controlnet=str(nets["file"]), out=str(tmp_path / "i2i.png"))
    assert res.state == "done", res.error
    assert "ControlNet 0" in read_png_parameters(tmp_path / "i2i.png").extra


def test_controlnet_mistakes_are_explained(run_job: Any, text_model: Path,
                                           nets: dict[str, Path], tmp_path: Path) -> None:
    res = run_job("sample", model=str(text_model), controlnet=str(nets["file"]), n=1)
    assert res.state == "failed" and "control image" in (res.error or "")
    bad = tmp_path / "other.safetensors"
    import torch
    from safetensors.torch import save_file

    save_file({"controlnet_cond_embedding.conv_in.weight": torch.zeros(8, 3, 3, 3)}, str(bad))
    res = run_job("sample", model=str(text_model), controlnet=str(bad),
                  control_image=_square(), n=1, steps=2)
    assert res.state == "failed" and "another base model" in (res.error or "")
    pickled = tmp_path / "net.pth"
    pickled.write_bytes(b"x")
    res = run_job("sample", model=str(text_model), controlnet=str(pickled),
                  control_image=_square(), n=1, steps=2)
    assert res.state == "failed" and "pickle" in (res.error or "")


@pytest.mark.parametrize("upscaler", ["latent", "lanczos"])
def test_hires_fix_doubles_the_size_and_is_recorded(run_job: Any, text_model: Path,
                                                    tmp_path: Path, upscaler: str) -> None:
    out = tmp_path / f"hires-{upscaler}.png"
    res = run_job("sample", model=str(text_model), prompt="a fox", n=1, steps=3, seed=2,
                  width=32, height=24, hires_scale=2.0, hires_steps=2, denoise=0.5,
                  hires_upscaler=upscaler, out=str(out))
    assert res.state == "done", res.error
    assert Image.open(out).size == (64, 48)
    p = read_png_parameters(out)
    assert (p.width, p.height) == (32, 24)  # A1111: Size is the first pass's
    assert p.mode == "txt2img" and p.strength == 0.5
    spec = hires.read_hires(p.extra, p.strength)
    assert spec == hires.HiresSpec(scale=2.0, steps=2, denoise=0.5, upscaler=upscaler)
    # the second pass redraws: not just the first pass enlarged
    first = tmp_path / "first.png"
    run_job("sample", model=str(text_model), prompt="a fox", n=1, steps=3, seed=2, width=32,
            height=24, out=str(first))
    big = np.asarray(Image.open(first).resize((64, 48), Image.Resampling.LANCZOS), np.int16)
    assert np.abs(np.asarray(Image.open(out), np.int16) - big).mean() > 1.0


def test_hires_fix_is_refused_where_it_does_not_apply(run_job: Any, text_model: Path) -> None:
    res = run_job("sample", model=str(text_model), n=1, steps=2, hires_scale=1.0)
    assert res.state == "failed" and "above 1" in (res.error or "")


def test_a1111_controlnet_and_hires_text_round_trip() -> None:
    text = ("a castle\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: "
            "Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 6ce0161689, "
            "Model: v1-5, Denoising strength: 0.45, ControlNet 0: \"Module: canny, Model: "
            "control_v11p_sd15_canny [d14c016b], Weight: 0.8, Resize Mode: Crop and Resize, "
            "Low Vram: False, Processor Res: 512, Threshold A: 50, Threshold B: 150, "
            "Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: "
            "Balanced\", Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, "
            "Version: v1.10.1")
    p = parse_parameters(text)
    assert p.mode == "txt2img" and p.strength == 0.45 and (p.width, p.height) == (512, 512)
    rec = control.read_control(p.extra)
    assert rec == control.ControlRecord(kind="canny", module="canny",
                                        model="control_v11p_sd15_canny", model_hash="d14c016b",
                                        scale=0.8, low=50, high=150, start=0.0, end=1.0)
    assert hires.read_hires(p.extra, p.strength) == hires.HiresSpec(2.0, 10, 0.45, "latent")
    again = parse_parameters(format_parameters(p))
    assert again == p
    # ours, written from a spec, reads back the same
    spec = control.ControlSpec(model=Path("x/depthy.safetensors"), image=_square(),
                               kind="scribble", scale=0.6)
    gp = GenerationParams(prompt="p", steps=4, seed=1, strength=0.3,
                          extra={**control.infotext(spec, "invert"),
                                 **hires.infotext(hires.HiresSpec(1.5, 0, 0.3, "lanczos"))})
    back = parse_parameters(format_parameters(gp))
    rec = control.read_control(back.extra)
    assert rec is not None and rec.kind == "scribble" and rec.scale == 0.6
    assert hires.read_hires(back.extra, back.strength) == hires.HiresSpec(1.5, 0, 0.3,
                                                                          "lanczos")


def test_editor_control_box_feeds_the_jobs(qtbot: Any, make_host: Any, text_model: Path,
                                           nets: dict[str, Path]) -> None:
    """The box is folded at first (Generate stays in view); a ControlNet picked there, a
    layer as the scribble and hires fix reach the job's params."""
    from plugins.diffusion.plugin import DiffusionPlugin
    from plugins.diffusion.ui.panel import DiffusionPanel

    panel = DiffusionPanel(make_host(DiffusionPlugin()))
    panel.resize(1280, 720)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    try:
        edit = panel.edit
        box = edit.control
        assert not box.body.isVisible() and edit.generate_button.isVisible()
        edit.set_model(text_model)
        qtbot.waitUntil(lambda: edit.model_info is not None, timeout=60_000)
        p = edit.params()
        assert p is not None and p.controlnet is None and p.hires_scale == 0
        edit.doc.open_image(_square(32))
        drawn = np.zeros((32, 32, 3), np.uint8)
        edit.doc.add_result(drawn, "lines")
        box.set_open(True)
        box.picker.set_path(nets["folder"])
        box.kind.setCurrentIndex(box.kind.findData("scribble"))
        box.source.setCurrentIndex(box.source.findText("Layer: lines"))
        box.scale.setValue(0.7)
        box.hires.setChecked(True)
        edit.set_mode("sample")
        p = edit.params()
        assert p is not None and p.controlnet == nets["folder"] and p.control == "scribble"
        assert p.control_scale == 0.7 and p.control_image.shape == (32, 32, 3)
        assert p.hires_scale == 2.0 and p.denoise == 0.5
        assert "tiny_scribble" in box.toggle.text()
    finally:
        panel.shutdown()
