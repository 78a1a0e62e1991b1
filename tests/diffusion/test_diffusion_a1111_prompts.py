"""Prompts as A1111 writes them: attention weights, escaped brackets, BREAK, long prompts in
75-token chunks, LoRA tags; the conditioning equals diffusers' own for a plain prompt, and the
weights change it the way A1111's emphasis does (mean kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugins.diffusion.engine.prompts import (
    extract_networks,
    parse_attention,
    tokenize_chunks,
)


def _close(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [round(w, 6) for _, w in got] == [round(w, 6) for _, w in want]


@pytest.mark.parametrize(("text", "want"), [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.1 * 1.1 * 1.3), (" ", 1.1), ("on", 1.0), (" a ", 1.1),
      ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.1 ** 4), (".", 1.1)]),
    ("[faded]", [("faded", 1 / 1.1)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
])
def test_attention_follows_a1111(text: str, want: list[tuple[str, float]]) -> None:
    _close(parse_attention(text), want)


def test_lora_tags_come_out_of_the_prompt() -> None:
    text, tags = extract_networks("a cat <lora:detail:0.8>, hat <lora:Style Two> <lyco:x:-1>")
    assert text == "a cat , hat  "
    assert [(t.kind, t.name, t.weight) for t in tags] == [
        ("lora", "detail", 0.8), ("lora", "Style Two", 1.0), ("lora", "x", -1.0)]
    with pytest.raises(ValueError, match="not a number"):
        extract_networks("<lora:a:strong>")


def _tokenizer(text_model: Path) -> Any:
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(text_model / "tokenizer"))


def test_long_prompts_are_cut_into_windows_with_start_and_end(text_model: Path) -> None:
    """The tiny tokenizer's window is 16 (14 tokens + start + end); each chunk has both ends,
    weights follow their tokens, and a chunk breaks after a nearby comma (A1111's backtrack)."""
    tok = _tokenizer(text_model)
    chunks = tokenize_chunks(tok, "abc " * 10, 16)  # a b c </w> = 3 tokens a word: 30 tokens
    assert len(chunks) == 3 and all(len(c.ids) == 16 == len(c.weights) for c in chunks)
    for c in chunks:
        assert c.ids[0] == tok.bos_token_id and tok.eos_token_id in c.ids[1:]
    chunks = tokenize_chunks(tok, "(ab:1.5) cd", 16)
    assert chunks[0].weights[1:5] == [1.5, 1.5, 1.0, 1.0]
    # "aaa," is 4 tokens, "bbbbbb" 6: the window fills inside the b's, 3 tokens after the last
    # comma, so the chunk ends at the comma and the b's move to the next one whole
    chunks = tokenize_chunks(tok, "aaa, aaa, aaa, bbbbbb", 16)
    first = [t for t in chunks[0].ids[1:] if t not in (tok.eos_token_id, tok.pad_token_id)]
    assert len(first) == 12 and tok.decode(first).replace(" ", "") == "aaa,aaa,aaa,"
    second = [t for t in chunks[1].ids[1:] if t not in (tok.eos_token_id, tok.pad_token_id)]
    assert tok.decode(second).replace(" ", "") == "bbbbbb"
    assert len(tokenize_chunks(tok, "a BREAK b", 16)) == 2


def test_plain_prompt_gives_diffusers_own_conditioning(text_model: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    from plugins.diffusion.engine.prompts import encode

    pipe = StableDiffusionPipeline.from_pretrained(str(text_model), local_files_only=True)
    ours = encode(pipe, "a red fox", "blur")
    theirs, theirs_neg = pipe.encode_prompt("a red fox", "cpu", 1, True, "blur")
    torch.testing.assert_close(ours.prompt_embeds, theirs)
    torch.testing.assert_close(ours.negative_prompt_embeds, theirs_neg)
    # weights: the weighted token's vector grows relative to the others, the mean stays
    w = encode(pipe, "a (red:1.5) fox", "blur").prompt_embeds
    assert w.shape == theirs.shape and not torch.allclose(w, theirs)
    torch.testing.assert_close(w.mean(), theirs.mean())
    # a long prompt: two windows, concatenated; the negative padded to the same length
    long = encode(pipe, "a red fox " * 4, "blur")  # 28 tokens
    assert long.prompt_embeds.shape[1] == 32 == long.negative_prompt_embeds.shape[1]
    # Clip skip 2 (the penultimate layer, normed) differs from the last layer
    assert not torch.allclose(encode(pipe, "a red fox", "").prompt_embeds,
                              encode(pipe, "a red fox", "", clip_skip=1).prompt_embeds)


def test_weights_change_the_image_and_long_prompts_run(run_job: Any, text_model: Path,
                                                       tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    def make(prompt: str, name: str) -> Any:
        res = run_job("sample", model=str(text_model), prompt=prompt, n=1, steps=3, seed=7,
                      guidance=5.0, out=str(tmp_path / name))
        assert res.state == "done", res.error
        return np.asarray(Image.open(tmp_path / name), dtype=np.int16)

    plain = make("a red fox", "plain.png")
    np.testing.assert_array_equal(plain, make("a (red:1.0) fox", "same.png"))
    assert np.abs(plain - make("a (red:1.6) fox", "weighted.png")).mean() > 0.5
    make("a red fox, " * 30, "long.png")  # 330 tokens: 24 windows of the tiny encoder


@pytest.fixture(scope="module")
def xl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SDXL-shaped pipeline a few hundred kilobytes big: two CLIP text encoders (the second
    with a projection, padding with "!"), a text-time UNet."""
    import torch
    from a1111_helpers import write_char_tokenizer
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    target = tmp_path_factory.mktemp("models") / "xl-tiny"
    torch.manual_seed(0)
    write_char_tokenizer(target.parent / "tok")
    tok = CLIPTokenizer.from_pretrained(str(target.parent / "tok"), model_max_length=16)
    tok2 = CLIPTokenizer.from_pretrained(str(target.parent / "tok"), model_max_length=16,
                                         pad_token="!")
    cfg = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1, "hidden_size": 16,
           "intermediate_size": 20, "num_attention_heads": 2, "num_hidden_layers": 2,
           "vocab_size": len(tok), "max_position_embeddings": 16, "projection_dim": 16}
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=4,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 4 + 16,
        cross_attention_dim=32, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=4, sample_size=16)
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**cfg)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**cfg)), tokenizer=tok,
        tokenizer_2=tok2, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                         beta_schedule="scaled_linear", steps_offset=1))
    pipe.save_pretrained(target, safe_serialization=True)
    return target


def test_sdxl_uses_both_encoders_and_the_pooled_vector(xl_model: Path, run_job: Any,
                                                       tmp_path: Path) -> None:
    import torch
    from diffusers import StableDiffusionXLPipeline

    from plugins.diffusion.engine.prompts import encode

    pipe = StableDiffusionXLPipeline.from_pretrained(str(xl_model), local_files_only=True)
    ours = encode(pipe, "a red fox", "blur")
    pe, ne, pp, npool = pipe.encode_prompt("a red fox", device="cpu", num_images_per_prompt=1,
                                           do_classifier_free_guidance=True,
                                           negative_prompt="blur")
    torch.testing.assert_close(ours.prompt_embeds, pe)
    torch.testing.assert_close(ours.negative_prompt_embeds, ne)
    torch.testing.assert_close(ours.pooled_prompt_embeds, pp)
    torch.testing.assert_close(ours.negative_pooled_prompt_embeds, npool)
    weighted = encode(pipe, "a (red:1.4) fox " * 3, "")  # 21 tokens
    assert weighted.prompt_embeds.shape == (1, 32, 32)  # two windows of 16, 16 + 16 wide
    res = run_job("sample", model=str(xl_model), prompt="a (red:1.3) fox", n=1, steps=2,
                  scheduler="Euler Karras", width=16, height=16, out=str(tmp_path / "xl.png"))
    assert res.state == "done", res.error
