"""Tiny models and tokenizers for the shared language-model engine's tests, built here (nothing
is downloaded, and nothing of a plugin is used)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lm_helpers import SAMPLE, byte_bpe, fit, llama, save


@pytest.fixture(scope="session")
def sample_text() -> str:
    return SAMPLE * 6


@pytest.fixture(scope="session")
def tokenizer(sample_text: str):
    return byte_bpe([sample_text])


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory, tokenizer, sample_text: str) -> Path:
    """A 2-layer GPT-2 (learned positions, context 64), fitted a little, saved as a standard
    Hugging Face folder."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    eot = tokenizer.eos_token_id
    cfg = GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=64,
                     bos_token_id=eot, eos_token_id=eot)
    model = GPT2LMHeadModel(cfg)
    fit(model, tokenizer, sample_text)
    return save(model, tokenizer, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, tokenizer, sample_text: str) -> Path:
    """A 2-layer Llama with a chat template, fitted a little."""
    model = llama(tokenizer)
    fit(model, tokenizer, sample_text)
    return save(model, tokenizer, tmp_path_factory.mktemp("llama"))
