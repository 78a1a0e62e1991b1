"""Tokenizers trained on a corpus: exact round trips, loadable by plain transformers."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.common.lm.tokens import save_tokenizer
from plugins.writer.engine.tokenizer import (
    EOT,
    auto_vocab_size,
    describe_unseen,
    encode_documents,
    train_tokenizer,
    unseen_characters,
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
    assert not unseen_characters(tok, text)


def test_char_tokenizer_spells_unseen_characters_as_bytes_and_counts_them(
        tmp_path: Path, sample_text: str) -> None:
    """Issue 18: German text through an English character model lost its umlauts without a
    word. Now they are spelled as bytes (the text round-trips) and counted."""
    from transformers import AutoTokenizer

    tok = train_tokenizer([sample_text], "char")
    text = "Zwölf Boxkämpfer jagen Viktor über den großen Sylter Deich ✓"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == text
    found = unseen_characters(tok, text)
    assert found["ö"] == 1 and found["ä"] == 1 and found["ü"] == 1 and found["ß"] == 1
    assert found["✓"] == 1 and found["Z"] == 1  # no capital Z in the sample either
    assert set(found) == {ch for ch in set(text) if ch not in sample_text}
    words = describe_unseen(tok, found)
    assert "never saw in training" in words and "spelled as bytes" in words
    save_tokenizer(tok, tmp_path)  # plain transformers reads the fallback back
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again.decode(again(text, add_special_tokens=False)["input_ids"]) == text
    assert unseen_characters(again, text) == found


def test_char_tokenizer_without_fallback_says_the_text_is_lost(sample_text: str) -> None:
    tok = train_tokenizer([sample_text], "char", byte_fallback=False)
    assert tok("Z", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    found = unseen_characters(tok, "Zoë")
    assert found == {"Z": 1, "ë": 1}
    assert "read as unknown" in describe_unseen(tok, found)


def test_bpe_has_no_unseen_characters(sample_text: str) -> None:
    tok = train_tokenizer([sample_text], "bpe", 300)
    assert not unseen_characters(tok, "Zwölf Boxkämpfer ✓ 漢字")


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
