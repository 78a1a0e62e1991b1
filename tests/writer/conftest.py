"""Tiny models and corpora for the writer tests, built here (nothing is downloaded)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

SAMPLE = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.
Café, naïve, 😀 — unicode survives the round trip.
"""


@pytest.fixture(scope="session")
def sample_text() -> str:
    return SAMPLE * 6


@pytest.fixture
def corpus_file(tmp_path: Path, sample_text: str) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(sample_text, encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def tiny_tokenizer(sample_text: str):
    from plugins.writer.engine.tokenizer import train_tokenizer

    return train_tokenizer([sample_text], "bpe", 300)


def _save(model, tokenizer, folder: Path) -> Path:
    from plugins.common.lm.tokens import save_tokenizer

    model.save_pretrained(str(folder))
    save_tokenizer(tokenizer, folder)
    return folder


def _fit(model, tokenizer, text: str, steps: int = 30) -> None:
    """A few plain AdamW steps so the model writes text-like output (varied, not one token
    repeated), which the generation tests need; independent of the engine's trainer."""
    import torch

    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        ix = torch.randint(0, len(ids) - 33, (8,), generator=g)
        x = torch.stack([ids[i:i + 33] for i in ix])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> Path:
    """A 2-layer GPT-2 with a BPE tokenizer, saved as a standard HF folder."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    eot = tiny_tokenizer.eos_token_id
    cfg = GPT2Config(vocab_size=len(tiny_tokenizer), n_layer=2, n_embd=32, n_head=2,
                     n_positions=64, bos_token_id=eot, eos_token_id=eot)
    model = GPT2LMHeadModel(cfg)
    _fit(model, tiny_tokenizer, SAMPLE * 6)
    return _save(model, tiny_tokenizer, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    eot = tiny_tokenizer.eos_token_id
    cfg = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=64, bos_token_id=eot, eos_token_id=eot,
                      tie_word_embeddings=True)
    return _save(LlamaForCausalLM(cfg), tiny_tokenizer, tmp_path_factory.mktemp("llama"))


@pytest.fixture
def micro_preset(monkeypatch: pytest.MonkeyPatch) -> str:
    """A from-scratch preset small enough for unit tests, registered as "micro"."""
    from plugins.writer.engine import presets

    micro = dataclasses.replace(presets.PRESETS["tiny"], name="micro", layers=2, width=32,
                                heads=2, ffn=64, block_size=32, batch_size=4, lr=3e-3,
                                warmup=2)
    monkeypatch.setitem(presets.PRESETS, "micro", micro)
    return "micro"
