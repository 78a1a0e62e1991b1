"""The issue's "done when": an A1111 PNG of an SD 1.5-shaped image made with a LoRA and
"DPM++ 2M Karras", dropped on the editor, loads with its settings (model and LoRA found in the
model library) and Generate makes the same picture again. Also: ComfyUI and InvokeAI PNGs map
onto the same settings, and the editor's LoRA/embedding/VAE box feeds the job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from a1111_helpers import write_lora
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from plugins.diffusion.engine import hashes
from plugins.diffusion.engine.pnginfo import read_generation
from plugins.diffusion.plugin import DiffusionPlugin

WAIT_MS = 90_000


def _workspace() -> Path:
    from studio import settings as settings_mod

    return settings_mod.load().workspace_path()


@pytest.fixture
def library_model(text_model: Path) -> tuple[Path, Path]:
    """The tiny SD 1.5-shaped model and a kohya-layout LoRA, in the workspace's model folder
    (where the library finds them, as an artist's A1111 folders would be)."""
    models = _workspace() / "models"
    model = models / "sd15-tiny"
    shutil.copytree(text_model, model)
    lora = write_lora(text_model, models / "Lora" / "inkstyle.safetensors", kohya=True)
    return model, lora


@pytest.fixture
def panel(qtbot: Any, make_host: Any) -> Any:
    from plugins.diffusion.ui.panel import DiffusionPanel

    widget = DiffusionPanel(make_host(DiffusionPlugin()))
    widget.resize(1280, 720)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def _a1111_png(pixels: np.ndarray, target: Path, text: str) -> Path:
    """A PNG as A1111 saves it: the picture and its ``parameters`` text chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)
    Image.fromarray(pixels).save(target, pnginfo=info)
    return target


def _drop(widget: Any, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)


def test_a1111_png_with_lora_and_karras_reproduces_when_dropped(
        qtbot: Any, panel: Any, run_job: Any, library_model: tuple[Path, Path],
        tmp_path: Path) -> None:
    model, lora = library_model
    # the picture, made with the LoRA and DPM++ 2M Karras...
    made = tmp_path / "made.png"
    res = run_job("sample", model=str(model), prompt="a red (fox:1.2), ink <lora:inkstyle:0.8>",
                  negative_prompt="blurry", n=1, steps=4, seed=1234, guidance=6.0,
                  scheduler="DPM++ 2M Karras", width=32, height=32, out=str(made))
    assert res.state == "done", res.error
    pixels = np.asarray(Image.open(made).convert("RGB"))
    # ...saved as A1111 1.10 writes it (another tool's file: our own record is not used)
    text = ("a red (fox:1.2), ink <lora:inkstyle:0.8>\nNegative prompt: blurry\n"
            "Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 1234, "
            f"Size: 32x32, Model hash: {hashes.model_hash(model)}, Model: sd15-tiny, "
            f'Lora hashes: "inkstyle: {hashes.addnet_hash(lora)}", Version: v1.10.1')
    png = _a1111_png(pixels, tmp_path / "00042-1234.png", text)

    edit = panel.edit
    _drop(edit, png)
    assert not edit.doc.is_empty and (edit.doc.width, edit.doc.height) == (32, 32)
    g = edit.gen.p
    assert g.prompt == "a red (fox:1.2), ink <lora:inkstyle:0.8>"
    assert (g.negative_prompt, g.steps, g.guidance, g.seed) == ("blurry", 4, 6.0, 1234)
    assert edit.gen.editor("scheduler").currentText() == "DPM++ 2M Karras"
    assert g.model == model and edit.mode == "sample"
    assert "not in your model library" not in edit.status.text()
    qtbot.waitUntil(lambda: edit.model_info is not None, timeout=WAIT_MS)
    handle = edit.generate()
    assert handle is not None, edit.status.text()
    qtbot.waitUntil(lambda: edit.handle is None, timeout=WAIT_MS)
    assert len(edit.doc.layers) == 2, edit.status.text()
    np.testing.assert_array_equal(edit.doc.flatten(), pixels)  # the result layer, on top
    # the A1111 record of the result says the same
    again = read_generation(Path(str(handle.record.result)))
    assert again.scheduler == "DPM++ 2M Karras" and again.seed == 1234
    assert again.extra["Lora hashes"] == f"inkstyle: {hashes.addnet_hash(lora)}"


def test_reading_names_what_the_library_lacks(panel: Any, tmp_path: Path) -> None:
    png = _a1111_png(np.zeros((8, 8, 3), np.uint8), tmp_path / "x.png",
                     "a cat <lora:nowhere:1>\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
                     "Seed: 5, Model: some-model, VAE: kl-f8.safetensors")
    edit = panel.edit
    assert edit.load_png(png)
    text = edit.status.text()
    assert "some-model" in text and "kl-f8.safetensors" in text and "nowhere" in text
    assert edit.gen.p.scheduler == "Euler a" and edit.gen.p.seed == 5


def test_networks_box_feeds_the_job(panel: Any, library_model: tuple[Path, Path]) -> None:
    model, lora = library_model
    edit = panel.edit
    edit.set_model(model)
    edit.networks.loras.add(lora, 0.6)
    p = edit.params()
    assert p is not None and p.lora == [f"{lora}:0.6"] and p.vae is None
    edit.networks.set_values([], [], None)
    assert edit.params().lora == []


def test_comfyui_graph_maps_to_the_same_settings() -> None:
    from plugins.diffusion.engine.pnginfo import from_comfyui

    graph = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1234, "steps": 25, "cfg": 6.5, "sampler_name": "dpmpp_2m",
            "scheduler": "karras", "denoise": 1.0, "model": ["11", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": "SD15\\dreamshaper_8.safetensors"}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 512, "height": 768, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["10", 1]}},
        "10": {"class_type": "LoraLoader", "inputs": {
            "lora_name": "detail.safetensors", "strength_model": 0.7, "strength_clip": 0.7,
            "model": ["4", 0], "clip": ["4", 1]}},
        "11": {"class_type": "LoraLoader", "inputs": {
            "lora_name": "ink.safetensors", "strength_model": 1.0, "strength_clip": 1.0,
            "model": ["10", 0], "clip": ["10", 1]}},
        "12": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2}},
    }
    p = from_comfyui(json.loads(json.dumps(graph)))
    assert p.prompt == "a castle <lora:detail:0.7> <lora:ink:1>"
    assert (p.negative_prompt, p.seed, p.steps, p.guidance) == ("fog", 1234, 25, 6.5)
    assert p.scheduler == "DPM++ 2M Karras" and p.model == "dreamshaper_8"
    assert (p.width, p.height, p.mode) == (512, 768, "txt2img")
    assert p.extra["Clip skip"] == "2"


def test_invokeai_metadata_maps(tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    meta = {"positive_prompt": "a lighthouse", "negative_prompt": "text", "seed": 99,
            "steps": 30, "cfg_scale": 7.5, "scheduler": "dpmpp_sde_k", "width": 640,
            "height": 512, "model": {"name": "juggernaut", "hash": "blake3:abc"},
            "loras": [{"model": {"name": "film grain"}, "weight": 0.5}],
            "vae": {"name": "sdxl-vae-fp16"}, "generation_mode": "txt2img"}
    info = PngInfo()
    info.add_text("invokeai_metadata", json.dumps(meta))
    Image.new("RGB", (4, 4)).save(tmp_path / "i.png", pnginfo=info)
    p = read_generation(tmp_path / "i.png")
    assert p.prompt == "a lighthouse <lora:film grain:0.5>"
    assert (p.seed, p.steps, p.guidance, p.scheduler) == (99, 30, 7.5, "DPM++ SDE Karras")
    assert (p.model, p.extra["VAE"], p.mode) == ("juggernaut", "sdxl-vae-fp16", "txt2img")
