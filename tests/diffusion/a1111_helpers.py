"""Tiny LoRA, embedding and VAE files for the A1111 tests, made here from the tiny SD-shaped
test model (nothing is downloaded). Imported by this unique name (see diffusion_helpers)."""

from __future__ import annotations

from pathlib import Path


def write_lora(model: Path, target: Path, kohya: bool = True, seed: int = 0,
               text_encoder: bool = True) -> Path:
    """A rank-4 LoRA on the UNet's attention (and the text encoder's) with random, not zero,
    up-weights, so it changes the picture; in kohya/A1111 key layout (``lora_unet_…``) by
    default, else diffusers/PEFT's."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    pipe = StableDiffusionPipeline.from_pretrained(str(model), local_files_only=True)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    unet = get_peft_model_state_dict(pipe.unet)
    te: dict[str, torch.Tensor] = {}
    if text_encoder:
        # PEFT directly: transformers 5's add_adapter asks for an unreleased PEFT
        inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                           target_modules=["q_proj", "v_proj"]),
                                pipe.text_encoder)
        te = {f"text_model.{k}": v for k, v in get_peft_model_state_dict(
            pipe.text_encoder).items()}  # the layout LoRA files have
    state = {f"unet.{k}": v for k, v in unet.items()} | {
        f"text_encoder.{k}": v for k, v in te.items()}
    state = {k: v * 3.0 if "lora_B" in k else v for k, v in state.items()}
    if kohya:
        from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

        state = {k.replace("lora_te1_", "lora_te_"): v  # SD 1.x files say lora_te_
                 for k, v in convert_state_dict_to_kohya(state).items()}
    else:
        state = convert_state_dict_to_diffusers(state)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(target),
              metadata={"ss_network_dim": "4"})
    return target


def write_embedding(model: Path, target: Path, vectors: int = 2, seed: int = 0) -> Path:
    """A textual-inversion embedding (A1111's safetensors layout: ``emb_params``)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig

    dim = CLIPTextConfig.from_pretrained(str(model / "text_encoder")).hidden_size
    torch.manual_seed(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(vectors, dim) * 2.0}, str(target))
    return target


def write_vae(model: Path, target: Path, seed: int = 1) -> Path:
    """The model's VAE with other random weights, as a single diffusers-layout file."""
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    cfg = AutoencoderKL.load_config(str(model / "vae"))
    torch.manual_seed(seed)
    vae = AutoencoderKL.from_config(cfg)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(target))
    return target


def write_char_tokenizer(folder: Path) -> None:
    """A CLIP BPE vocabulary of single characters, as the tiny SD test model's (conftest is
    not importable by name from here)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789,.!":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
