"""Tokenizers trained on a corpus: exact round trips, loadable by plain transformers."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.common.lm.tokens import save_tokenizer
from plugins.writer.engine.tokenizer import (
    EOT,
    auto_vocab_size,
    encode_documents,
    train_tokenizer,
)
from studio.errors import UserError


def test_bpe_round_trips_and_loads_with_autotokenizer(tmp_path: Path, sample_text: str) -> None:
    from transformers import AutoTokenizer

    tok = train_tokenizer([sample_text], "bpe", 320)
    assert 258 <= len(tok) <= 320
    text = "Speak, speak. Café 😀 — ünïcödé never seen before: 漢字"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8"))  # merges learnt something
    save_tokenizer(tok, tmp_path)
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.eos_token == EOT


def test_char_tokenizer_one_token_per_character(sample_text: str) -> None:
    tok = train_tokenizer([sample_text], "char")
    text = "Speak, all?"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    unseen = tok("Z", add_special_tokens=False)["input_ids"]  # no capital Z in the sample
    assert unseen == [tok.unk_token_id]


def test_documents_are_separated_by_eos(sample_text: str) -> None:
    tok = train_tokenizer([sample_text], "bpe", 300)
    ids = encode_documents(tok, ["ab", "cd"])
    eos = tok.eos_token_id
    assert ids.count(eos) == 2 and ids[-1] == eos
    assert tok.decode([i for i in ids if i != eos]) == "abcd"


def test_bad_requests() -> None:
    with pytest.raises(UserError, match="empty"):
        train_tokenizer([""], "bpe")
    with pytest.raises(UserError, match="at least 258"):
        train_tokenizer(["some text"], "bpe", 100)
    assert auto_vocab_size(1_003_854) == 2048
    assert auto_vocab_size(2_000_000) == 4096
    assert auto_vocab_size(10) == 512 and auto_vocab_size(10**10) == 16384
