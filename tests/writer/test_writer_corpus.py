"""Corpus reading: UTF-8 only, clear messages for binary and mis-encoded files, the split."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.writer.engine.corpus import decode_text, load_corpus
from studio.errors import UserError


def test_folder_is_read_recursively_sorted_and_normalised(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n")  # BOM + CRLF
    (tmp_path / "b" / "c.md").write_text("# three\n", encoding="utf-8")
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [d.path.name for d in corpus.documents] == ["a.txt", "c.md"]
    assert corpus.documents[0].text == "one\ntwo\n"
    assert [p.name for p in corpus.ignored] == ["notes.docx"]
    assert corpus.chars == len("one\ntwo\n") + len("# three\n")


def test_split_holds_out_the_end_of_each_document(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a" * 90 + "A" * 10, encoding="utf-8")
    (tmp_path / "b.txt").write_text("b" * 45 + "B" * 5, encoding="utf-8")
    train, val = load_corpus(tmp_path).split(0.1)
    assert train == ["a" * 90, "b" * 45]
    assert val == ["A" * 10, "B" * 5]
    train, val = load_corpus(tmp_path).split(0.0)
    assert val == [] and len(train) == 2


def test_empty_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no text to learn from"):
        load_corpus(tmp_path)
    (tmp_path / "blank.txt").write_text("  \n\n", encoding="utf-8")
    with pytest.raises(UserError, match="no text to learn from"):
        load_corpus(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_corpus(tmp_path / "missing")


def test_binary_file_is_named_with_offset(tmp_path: Path) -> None:
    p = tmp_path / "story.txt"
    p.write_bytes(b"Once upon\x00\x01\x02")
    with pytest.raises(UserError) as err:
        load_corpus(p)
    assert "story.txt" in str(err.value) and "binary" in str(err.value)
    assert "offset 9" in str(err.value)


def test_non_utf8_file_names_file_and_byte_offset(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine\n", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(UserError) as err:
        load_corpus(tmp_path)
    msg = str(err.value)
    assert "latin.txt" in msg and "not UTF-8" in msg
    assert "byte offset 3" in msg and "0xe9" in msg
    assert "UTF-8" in msg and "Save As" in msg


def test_decode_text_accepts_unicode() -> None:
    assert decode_text("naïve 😀\r\n".encode(), "x") == "naïve 😀\n"


def test_examples_name_the_trained_head_and_held_out_tail_of_each_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a" * 90 + "A" * 10, encoding="utf-8")
    (tmp_path / "b.txt").write_text("b" * 45 + "B" * 5, encoding="utf-8")
    corpus = load_corpus(tmp_path)
    examples, held = corpus.examples(0.1)
    assert [(e.path, e.part) for e in examples] == [
        ("a.txt", "chars 0-90"), ("a.txt", "chars 90-100"),
        ("b.txt", "chars 0-45"), ("b.txt", "chars 45-50")]
    assert held == [examples[1].id, examples[3].id]
    assert examples[0].sha256 == examples[1].sha256  # both parts of one file, hashed once
    examples, held = corpus.examples(0.0)  # nothing held out: one example per file
    assert [e.part for e in examples] == ["chars 0-100", "chars 0-50"] and held == []
    single, _ = load_corpus(tmp_path / "a.txt").examples(0.1)
    assert [e.path for e in single] == ["", ""]  # the location is the file itself
