"""Helpers the shared language-model engine's tests use (a module of its own name: see
DEVELOPERS, Tests): tiny tokenizers and models built here, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

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
EOT = "<|endoftext|>"
#: a plain chat template: each turn is "<|role|>text" closed by the end-of-text token
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>"
                 "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def byte_bpe(texts: list[str], vocab_size: int = 300):
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on ``texts``, as a transformers
    tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT,
                                   pad_token=EOT)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def fit(model, tokenizer, text: str, steps: int = 30) -> None:
    """A few plain AdamW steps so the model writes text-like output (varied, not one token
    repeated); independent of the engine's trainer."""
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


def save(model, tokenizer, folder: Path) -> Path:
    from plugins.common.lm.tokens import save_tokenizer

    model.save_pretrained(str(folder))
    save_tokenizer(tokenizer, folder)
    return folder


def llama(tokenizer, seed: int = 0, **kw):
    """A 2-layer Llama for ``tokenizer`` (context 64)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    eot = tokenizer.eos_token_id
    cfg = LlamaConfig(**{
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "bos_token_id": eot, "eos_token_id": eot,
        "pad_token_id": eot, "tie_word_embeddings": True, **kw})
    return LlamaForCausalLM(cfg)
