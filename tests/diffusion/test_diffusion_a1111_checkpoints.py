"""Single-file checkpoints offline: the configuration folders shipped for SD 1.x, SD 2.x (v and
epsilon) and SDXL describe the real networks (parameter counts of the published models), the CLIP
tokenizer built from the shipped vocabulary tokenizes as OpenAI's, the architecture is read from
the tensor names, and loading hands diffusers the shipped folder and tokenizers, never the
network. (No real checkpoint is loaded here: they are gigabytes; the wiring is checked with a
tiny pipeline standing in for diffusers' converter.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugins.diffusion.engine import loading
from studio.errors import UserError

# parameters of the published models (UNet, VAE, text encoder[, second text encoder])
PUBLISHED = {
    "sd15": (859_520_964, 83_653_863, 123_060_480),
    "sd15-inpaint": (859_535_364, 83_653_863, 123_060_480),
    "sd2": (865_910_724, 83_653_863, 340_387_840),
    "sd2-v": (865_910_724, 83_653_863, 340_387_840),
    "sdxl": (2_567_463_684, 83_653_863, 123_060_480, 694_659_840),
}


@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_shipped_configs_describe_the_published_networks(arch: str) -> None:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = loading.shipped_config(arch)
    assert folder is not None and (folder / "model_index.json").exists()

    def count(m: Any) -> int:
        return sum(p.numel() for p in m.parameters())

    with init_empty_weights():  # no memory: shapes only
        got = [count(UNet2DConditionModel.from_config(
                   UNet2DConditionModel.load_config(str(folder / "unet")))),
               count(AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder / "vae")))),
               count(CLIPTextModel(CLIPTextConfig.from_pretrained(str(folder / "text_encoder"))))]
        if (folder / "text_encoder_2").exists():
            got.append(count(CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(str(folder / "text_encoder_2")))))
    assert tuple(got) == PUBLISHED[arch]
    for name in ("tokenizer", "tokenizer_2"):
        if (folder / name).exists():
            tok = loading.clip_tokenizer(folder / name)
            assert len(tok) == 49408


def test_shipped_clip_tokenizer_matches_openai_clip() -> None:
    sd15 = loading.clip_tokenizer(loading.shipped_config("sd15") / "tokenizer")  # type: ignore[operator]
    assert sd15("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert sd15.pad_token == "<|endoftext|>"
    sd2 = loading.clip_tokenizer(loading.shipped_config("sd2") / "tokenizer")  # type: ignore[operator]
    assert sd2.pad_token == "!" and sd2.pad_token_id == 0  # OpenCLIP pads with "!"


def _fake_checkpoint(path: Path, kind: str) -> Path:
    """A header with the tensors diffusers looks at to tell the kinds apart (tiny values)."""
    import torch
    from safetensors.torch import save_file

    t: dict[str, Any] = {"model.diffusion_model.input_blocks.0.0.weight":
                         torch.zeros(2, 9 if kind == "inpainting" else 4, 1, 1)}
    if kind == "v1":
        t["model.diffusion_model.output_blocks.11.0.skip_connection.weight"] = torch.zeros(2, 2)
    if kind == "v2":
        t["model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"] = \
            torch.zeros(2, 1024)
    if kind == "xl_base":
        t["conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"] = \
            torch.zeros(2)
    if kind == "inpainting":
        t["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(2, 9, 1, 1)
    save_file(t, str(path))
    return path


@pytest.mark.parametrize(("kind", "arch"), [("v1", "sd15"), ("v2", "sd2-v"),
                                            ("xl_base", "sdxl"), ("inpainting", "sd15-inpaint")])
def test_architecture_is_read_from_tensor_names(tmp_path: Path, kind: str, arch: str) -> None:
    ckpt = _fake_checkpoint(tmp_path / "model.safetensors", kind)
    assert loading.detect_architecture(ckpt) == kind
    folder, found = loading.find_single_file_config(ckpt)
    assert (folder, found) == (loading.shipped_config(arch), arch)
    info = loading.inspect_model(ckpt)
    assert info.single_file and info.size == {"sd15": 512, "sd2-v": 768, "sdxl": 1024,
                                              "sd15-inpaint": 512}[arch]
    assert info.inpaint_model == (kind == "inpainting")
    # a configuration folder beside the file wins (a model of its own kind)
    beside = tmp_path / "model.config"
    beside.mkdir()
    (beside / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    assert loading.find_single_file_config(ckpt) == (beside, "configured")


def test_a_lora_is_not_a_checkpoint(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(2, 2)}, str(lora))
    with pytest.raises(UserError, match="not a complete single-file model checkpoint"):
        loading.detect_architecture(lora)


def test_loading_hands_diffusers_the_shipped_folder_and_tokenizers(
        tmp_path: Path, text_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``from_single_file`` receives for an SD 1.x and an SD 2.x file (stand-in converter:
    the tiny pipeline); an SD 2.x UNet that predicts noise gets the epsilon configuration."""
    import diffusers
    from diffusers import StableDiffusionPipeline

    calls: list[dict[str, Any]] = []

    def fake(cls: Any, path: str, **kwargs: Any) -> Any:
        calls.append({"path": path, **kwargs})
        return StableDiffusionPipeline.from_pretrained(str(text_model), local_files_only=True)

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_single_file",
                        classmethod(fake))
    loading.clear_cache()
    lm = loading.load_model(_fake_checkpoint(tmp_path / "dream.safetensors", "v1"))
    kw = calls[-1]
    assert kw["config"] == str(loading.shipped_config("sd15")) and kw["local_files_only"]
    assert len(kw["tokenizer"]) == 49408 and kw["safety_checker"] is None
    assert (lm.info.family, lm.info.single_file) == ("sd15", True)
    loading.clear_cache()
    lm = loading.load_model(_fake_checkpoint(tmp_path / "two.safetensors", "v2"))
    assert calls[-1]["config"] == str(loading.shipped_config("sd2-v"))
    assert calls[-1]["tokenizer"].pad_token == "!"
    # the tiny random UNet is no v-model: the 512 px epsilon configuration is used
    assert lm.pipe.scheduler.config.prediction_type == "epsilon"
    assert lm.base_scheduler_config["prediction_type"] == "epsilon"
    loading.clear_cache()
