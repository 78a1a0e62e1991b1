"""Fixtures for the diffusion plugin's tests: tiny models built here (nothing is downloaded), a
synchronous way to run a job through the real job runner, and small image files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diffusion_helpers import write_png

PLUGIN_ID = "diffusion"


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The models here are tiny: one thread is faster than two (no synchronisation), and it keeps
    the tests quick on a busy machine. The previous setting is restored for other plugins."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class JobResult:
    def __init__(self, record: Any, events: list[Any]) -> None:
        self.record = record
        self.events = events

    @property
    def state(self) -> str:
        return str(self.record.state)

    @property
    def result(self) -> Any:
        return self.record.result

    @property
    def error(self) -> str | None:
        return self.record.error

    def previews(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.kind == "preview" and e.data["kind"] == kind]

    def logs(self) -> list[str]:
        return [e.data["text"] for e in self.events if e.kind == "log"]


@pytest.fixture
def run_job() -> Iterator[Callable[..., JobResult]]:
    """``run_job("sample", model=..., n=2)``: runs the plugin's job on the real JobRunner (the
    same path as the window and the CLI) and returns its record and every event."""
    from plugins.diffusion.plugin import DiffusionPlugin
    from studio import settings as settings_mod
    from studio.jobs import JobRunner

    events: list[Any] = []
    runner = JobRunner(events.append, settings=settings_mod.load())
    plugin = DiffusionPlugin()

    def run(job: str, timeout: float = 120.0, **params: Any) -> JobResult:
        start = len(events)
        rec = runner.submit(PLUGIN_ID, plugin.job(job), params)
        runner.wait(rec.id, timeout)
        return JobResult(rec, [e for e in events[start:] if e.job_id == rec.id])

    yield run
    runner.shutdown(timeout=10)


# ----------------------------------------------------------------------------------------------
# Tiny models
# ----------------------------------------------------------------------------------------------
def build_pixel_pipeline(target: Path, channels: int = 3, size: int = 16) -> Path:
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                       layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), add_attention=False)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(target, safe_serialization=True)
    return target


def write_tokenizer(folder: Path) -> None:
    """A CLIP BPE vocabulary of single characters (with and without the end-of-word mark):
    every lower-case prompt tokenizes, and no merges are needed."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789,.!":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def build_text_pipeline(target: Path, inpaint: bool = False) -> Path:
    """A Stable-Diffusion-shaped pipeline a few hundred kilobytes big: CLIP text encoder, a
    4-channel KL VAE with a 2x downscale, and a cross-attention UNet (9 input channels for a
    dedicated inpainting model)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tok_dir = target.parent / f"{target.name}-tokenizer-src"
    write_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=16)
    text = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(tokenizer), max_position_embeddings=16))
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16,
        in_channels=9 if inpaint else 4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=4, sample_size=32)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = cls(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=sched,
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(target, safe_serialization=True)
    return target


@pytest.fixture(scope="session")
def pixel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pixel_pipeline(tmp_path_factory.mktemp("models") / "pixel")


@pytest.fixture(scope="session")
def gray_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pixel_pipeline(tmp_path_factory.mktemp("models") / "gray", channels=1)


@pytest.fixture(scope="session")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_text_pipeline(tmp_path_factory.mktemp("models") / "sd-tiny")


@pytest.fixture(scope="session")
def inpaint_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_text_pipeline(tmp_path_factory.mktemp("models") / "sd-tiny-inpaint",
                               inpaint=True)


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 40x48 colour image with structure (gradients and a disc)."""
    yy, xx = np.mgrid[0:48, 0:40]
    img = np.stack([xx * 6, yy * 5, ((xx - 20) ** 2 + (yy - 24) ** 2 < 150) * 220], axis=-1)
    return write_png(tmp_path / "photo.png", np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture
def photo_mask(tmp_path: Path) -> Path:
    m = np.zeros((48, 40), dtype=np.uint8)
    m[12:30, 8:26] = 255
    return write_png(tmp_path / "mask.png", m)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Twelve 32 px images in two class folders, plus a corrupt file the loader must skip."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i in range(12):
        img = np.zeros((32, 32, 3), dtype=np.uint8)
        x, y = rng.integers(4, 20, size=2)
        img[y:y + 10, x:x + 10] = rng.integers(80, 255, size=3)
        write_png(root / ("a" if i % 2 else "b") / f"img{i}.png", img)
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root
