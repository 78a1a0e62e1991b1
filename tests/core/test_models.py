"""The model library finds the user's models wherever they are, and knows what each one is."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio import models
from studio.runs import RunDir
from studio.settings import Settings


def _tensors(path: Path, keys: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(2) for k in keys}, str(path))
    return path


def _hf_cache_model(cache: Path, repo: str) -> Path:
    """A tiny GPT-2 laid out as huggingface_hub stores downloads: blobs, a snapshot of
    symlinks and a ref."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tmp = cache / "_build"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=32,
                               n_positions=16)).save_pretrained(tmp)
    root = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 39 + "1"
    snap = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in tmp.iterdir():
        blob = root / "blobs" / f"blob-{f.name}"
        f.rename(blob)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    tmp.rmdir()
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return snap


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    a1111 = tmp_path / "a1111" / "models"
    diffusers = a1111 / "diffusers" / "my-pipeline"
    diffusers.mkdir(parents=True)
    (diffusers / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.0"}))
    ckpt = _tensors(a1111 / "Stable-diffusion" / "dreamy.safetensors", [
        "model.diffusion_model.input_blocks.0.0.weight",
        "cond_stage_model.transformer.text_model.embeddings.position_ids"])
    xl = _tensors(a1111 / "Stable-diffusion" / "xl.safetensors", [
        "model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.1.model.ln"])
    lora = _tensors(a1111 / "Lora" / "ink.safetensors", [
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"])
    vae = _tensors(a1111 / "VAE" / "sharp.safetensors", ["encoder.down.0.block.0.conv1.weight",
                                                         "decoder.up.0.block.0.conv1.weight"])
    emb = _tensors(a1111 / "embeddings" / "style.safetensors", ["emb_params"])
    (a1111 / "old.ckpt").write_bytes(b"\x80\x04not loaded")
    gguf = tmp_path / "gguf" / "tiny.Q4_K_M.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    (tmp_path / "gguf" / "notes.gguf").write_bytes(b"text")  # not a GGUF: not listed
    cache = tmp_path / "hf"
    snap = _hf_cache_model(cache, "someone/tiny-gpt2")
    ws = tmp_path / "ws"
    run = RunDir.open(ws / "runs" / "gan" / "r1", "gan", "train", {}, "cpu", "Train GAN", ws)
    gen = _tensors(run.path / "generator.safetensors", ["net.0.weight"])
    run.add_artifact(gen, "model", model_kind="gan")
    run.finish("done")
    return {"a1111": a1111, "diffusers": diffusers, "ckpt": ckpt, "xl": xl, "lora": lora,
            "vae": vae, "emb": emb, "gguf": gguf, "cache": cache, "snap": snap, "ws": ws,
            "gen": gen}


def test_library_finds_every_kind_in_every_place(places: dict[str, Path]) -> None:
    lib = models.ModelLibrary(places["ws"], [places["a1111"], places["gguf"].parent],
                              hf_cache=places["cache"])
    found = {e.path: e for e in lib.scan()}
    expect = {"diffusers": "diffusers-pipeline", "ckpt": "sd-checkpoint", "xl": "sd-checkpoint",
              "lora": "lora", "vae": "vae", "emb": "embedding", "gguf": "gguf",
              "snap": "causal-lm", "gen": "gan"}
    for key, kind in expect.items():
        assert found[places[key]].kind == kind, key
    assert found[places["ckpt"]].info["base"] == "SD 1.x"
    assert found[places["xl"]].info["base"] == "SDXL"
    assert found[places["snap"]].name == "someone/tiny-gpt2"
    assert found[places["snap"]].source == "hf-cache"
    assert found[places["gen"]].source == "run" and found[places["gen"]].plugin == "gan"
    assert found[places["a1111"] / "old.ckpt"].kind == "pickle"
    assert places["gguf"].parent / "notes.gguf" not in found
    # a panel asks for its kinds only; the run's model comes first
    assert [e.kind for e in lib.scan(["gan"])] == ["gan"]
    assert {e.kind for e in lib.scan(["lora", "sd-checkpoint"])} == {"lora", "sd-checkpoint"}


def test_library_is_cached_until_refreshed(places: dict[str, Path]) -> None:
    lib = models.ModelLibrary(places["ws"], [places["a1111"]], hf_cache=False)
    n = len(lib.scan())
    _tensors(places["a1111"] / "Lora" / "new.safetensors", ["x.lora_A.weight"])
    assert len(lib.scan()) == n
    assert len(lib.scan(refresh=True)) == n + 1


def test_library_for_settings_reads_the_users_folders(places: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(places["cache"]))
    s = Settings(workspace=str(places["ws"]), model_folders=[str(places["a1111"])])
    kinds = {e.kind for e in models.library(s).scan()}
    assert {"gan", "lora", "sd-checkpoint", "causal-lm", "diffusers-pipeline"} <= kinds


def test_a_broken_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "half.safetensors").write_bytes(b"\xff" * 20)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    lib = models.ModelLibrary(tmp_path / "ws", [tmp_path], hf_cache=False)
    assert lib.scan() == []


def test_model_picker_lists_and_remembers(places: dict[str, Path], qtbot) -> None:
    from studio.widgets.modelpicker import ModelPicker

    lib = models.ModelLibrary(places["ws"], [places["a1111"]], hf_cache=places["cache"])
    picker = ModelPicker(kinds=("lora",), library=lib)
    qtbot.addWidget(picker)
    picker.refresh(wait=True)
    assert [e.path for e in picker.entries] == [places["lora"]]
    seen: list[object] = []
    picker.path_changed.connect(seen.append)
    picker.combo.setCurrentIndex(0)
    assert picker.path() == places["lora"] and seen == [places["lora"]]
    picker.set_path(places["vae"])  # chosen by hand: shown even though it is not a LoRA
    assert "chosen by hand" in picker.combo.currentText()
