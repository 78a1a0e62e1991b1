"""Your documents: incremental BM25 index of .txt/.md/.pdf files, unreadable files listed with
their reason, optional dense retrieval fused by reciprocal rank, citations by file name."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from chat_pdf import write_pdf

from plugins.chat.engine.retrieval import DocumentIndex, chunk_text, read_document
from studio.errors import UserError


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "My Documents"
    (d / "guides").mkdir(parents=True)
    (d / "router.md").write_text(
        "# Router\n\nTo reset the router, hold the red button for ten seconds.\n\n"
        "The lights blink green when it restarts.\n", encoding="utf-8")
    (d / "guides" / "garden.txt").write_text(
        "Water tomatoes in the morning. Prune roses in late winter.\n", encoding="utf-8")
    write_pdf(d / "warranty.pdf", ["Cover page of the manual.",
                                   "The warranty lasts two years from the date of purchase."])
    (d / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (d / "scan.pdf").write_bytes(write_pdf(d / "tmp.pdf", [""]).read_bytes())
    (d / "tmp.pdf").unlink()
    (d / "photo.png").write_bytes(b"\x89PNG....")
    (d / ".hidden.md").write_text("secret", encoding="utf-8")
    return d


def _index(tmp_path: Path) -> DocumentIndex:
    return DocumentIndex(tmp_path / "ws" / "chat" / "documents.db")


def test_indexes_text_markdown_and_pdf_and_lists_unreadable_files(tmp_path: Path,
                                                                   docs: Path) -> None:
    with _index(tmp_path) as idx:
        before = {p: p.read_bytes() for p in docs.rglob("*") if p.is_file()}
        r = idx.index_folder(docs)
        assert (r.added, r.updated, r.unchanged, r.removed) == (3, 0, 0, 0)
        assert dict(r.failed) == {"latin1.txt": "not UTF-8 text (save it as UTF-8 and index "
                                                "again)",
                                  "scan.pdf": "no text layer (a scanned PDF? run OCR on it "
                                              "first)"}
        assert r.skipped == 1                   # photo.png (hidden files are not counted)
        assert "Could not read: latin1.txt" in r.describe()
        assert [name for name, _ in idx.files(docs)] == ["guides/garden.txt", "router.md",
                                                         "warranty.pdf"]
        assert {p: p.read_bytes() for p in docs.rglob("*") if p.is_file()} == before

        hits = idx.search("how do I reset the router?")
        assert hits[0].source == "router.md" and "red button" in hits[0].text
        assert hits[0].cite() == "router.md, part 1"
        pdf = idx.search("how long is the warranty")[0]
        assert pdf.cite() == "warranty.pdf, page 2"
        assert idx.search("pruning roses")[0].source == "guides/garden.txt"   # stemmed
        for h in idx.search("router warranty roses", k=10):
            assert str(tmp_path) not in h.as_context(1) and not h.source.startswith("/")
        assert idx.search("") == [] and idx.search("zebra") == []


def test_indexing_is_incremental_by_content(tmp_path: Path, docs: Path) -> None:
    with _index(tmp_path) as idx:
        idx.index_folder(docs)
        r = idx.index_folder(docs)
        assert (r.added, r.updated, r.unchanged, r.chunks) == (0, 0, 3, 0)
        (docs / "router.md").write_text("Routers now reset with the blue switch.\n",
                                        encoding="utf-8")
        (docs / "guides" / "garden.txt").rename(docs / "guides" / "plants.txt")
        (docs / "warranty.pdf").unlink()
        (docs / "new.md").write_text("Invoices are sent monthly.\n", encoding="utf-8")
        r = idx.index_folder(docs)
        assert (r.added, r.updated, r.moved, r.removed, r.unchanged) == (1, 1, 1, 1, 0)
        assert idx.search("blue switch")[0].text.startswith("Routers now")
        assert idx.search("red button") == []
        assert idx.search("tomatoes")[0].source == "guides/plants.txt"
        assert idx.search("warranty") == []
        # a file that becomes unreadable leaves the index and is listed
        (docs / "new.md").write_bytes(b"\xff\xfe\x00bad")
        r = idx.index_folder(docs)
        assert "new.md" in dict(r.failed) and idx.search("invoices") == []


def test_search_is_limited_to_the_given_folders(tmp_path: Path, docs: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "router.txt").write_text("Another router note: reset it twice.", encoding="utf-8")
    with _index(tmp_path) as idx:
        idx.index_folder(docs)
        idx.index_folder(other)
        assert {h.source for h in idx.search("router reset", k=10)} == {"router.md",
                                                                         "router.txt"}
        assert {h.source for h in idx.search("router reset", folders=[other])} == {"router.txt"}
        assert idx.search("router", folders=[]) == []
        idx.remove_folder(other)
        assert {h.source for h in idx.search("router reset", k=10)} == {"router.md"}


class HashEmbedder:
    """A stand-in embedding model that knows 'restart' and 'reboot' mean 'reset'."""

    name = "hash-64"
    SYN: ClassVar[dict[str, str]] = {"reboot": "reset", "restart": "reset", "rebooting": "reset"}

    def __init__(self) -> None:
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in "".join(c if c.isalnum() else " " for c in t.lower()).split():
                out[i, zlib.crc32(self.SYN.get(w, w).encode()) % 64] += 1.0
        return out


def test_dense_retrieval_is_fused_with_bm25(tmp_path: Path, docs: Path) -> None:
    emb = HashEmbedder()
    with _index(tmp_path) as idx:
        idx.index_folder(docs, embedder=emb)
        n = emb.texts
        assert n >= 3
        # no word in common with the router text for BM25, but the embedder knows synonyms
        assert idx.search("rebooting", k=3) == []
        hits = idx.search("rebooting", k=3, embedder=emb)
        assert hits and hits[0].source == "router.md"
        assert emb.texts == n + 1               # only the query was embedded again
        both = idx.search("reset router", k=3, embedder=emb)
        assert both[0].source == "router.md"
        assert both[0].score == pytest.approx(2 / 61)   # first in both rankings


def test_progress_and_cancel_between_files(tmp_path: Path, docs: Path) -> None:
    seen: list[tuple[int, int, str]] = []

    class Stop(Exception):
        pass

    def check() -> None:
        if len(seen) >= 2:
            raise Stop

    with _index(tmp_path) as idx:
        with pytest.raises(Stop):
            idx.index_folder(docs, progress=lambda d, t, n: seen.append((d, t, n)), check=check)
        assert seen[0] == (0, 5, "guides/garden.txt")
        r = idx.index_folder(docs)              # what was done is kept
        assert r.unchanged >= 1


def test_chunks_cover_the_text_with_overlap() -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 40 for i in range(30))
    chunks = chunk_text(text, size=500, overlap=80)
    assert all(len(c) <= 500 for _, c in chunks)
    assert all(text[s:s + len(c)] == c for s, c in chunks)      # offsets point at the text
    covered = np.zeros(len(text), bool)
    for s, c in chunks:
        covered[s:s + len(c)] = True
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))
    assert chunk_text("   ") == []
    assert chunk_text("x" * 2500, size=1000, overlap=100)[1][0] == 900   # no boundary: hard cut


def test_read_document_reasons(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    plain = write_pdf(tmp_path / "p.pdf", ["hello"])
    w = PdfWriter(clone_from=PdfReader(plain))
    w.encrypt("secret", algorithm="RC4-128")
    w.write(tmp_path / "locked.pdf")
    with pytest.raises(UserError, match="password-protected"):
        read_document(tmp_path / "locked.pdf")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(UserError, match="not a readable PDF"):
        read_document(tmp_path / "broken.pdf")
    (tmp_path / "empty.md").write_text("  \n")
    with pytest.raises(UserError, match="empty"):
        read_document(tmp_path / "empty.md")
    (tmp_path / "bom.txt").write_bytes("\ufeffhello".encode())
    assert read_document(tmp_path / "bom.txt") == ("hello", None)


def test_a_damaged_index_is_moved_aside_and_rebuilt(tmp_path: Path, docs: Path) -> None:
    path = tmp_path / "ws" / "chat" / "documents.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage" * 1000)
    with DocumentIndex(path) as idx:
        assert idx.notice and "moved aside" in idx.notice and str(tmp_path) not in idx.notice
        idx.index_folder(docs)
        assert idx.search("router")
    assert any(p.name.startswith("documents.db.corrupt-") for p in path.parent.iterdir())
