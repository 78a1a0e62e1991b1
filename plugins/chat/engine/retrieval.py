"""Your documents: a folder of .txt/.md/.pdf files, searchable so replies can cite them.

Files are cut into chunks (paragraph-aligned, a little overlap) and indexed in SQLite FTS5,
ranked by BM25: always available, no model needed. Indexing is incremental by content hash: an
unchanged file is not read again, a renamed one keeps its chunks, a deleted one leaves the
index. Files that cannot be read are listed with the reason (not UTF-8, password-protected PDF,
no text layer...), never skipped silently.

With a local embedding model (the :class:`~.intents.Embedder` protocol, optionally with a
``name`` so vectors of another model are not mixed in) chunks also get vectors, stored beside
them, and results fuse BM25 and cosine ranks by reciprocal rank fusion.

The index lives in its own database file (the app uses ``<workspace>/chat/documents.db``): it
can always be rebuilt from the folders, so a damaged one is moved aside and started afresh.
The user's folders are only ever read. Passages name their file relative to its folder (never an
absolute path): that is what a reply cites.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.errors import UserError

from . import sqlitedb
from .intents import Embedder

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
PDF_SUFFIXES = (".pdf",)
MAX_FILE_BYTES = 50 * 1024 * 1024
CHUNK_CHARS = 1000
OVERLAP_CHARS = 150
RRF_K = 60
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE folders (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    rel TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    indexed REAL NOT NULL,
    UNIQUE (folder_id, rel)
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    start INTEGER NOT NULL,
    page INTEGER,
    text TEXT NOT NULL,
    vector BLOB,
    vector_model TEXT
);
CREATE INDEX chunks_file ON chunks(file_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with what a citation needs (no absolute path)."""

    source: str           # path relative to the attached folder, e.g. "guides/setup.md"
    position: int         # chunk number in its file, from 0
    start: int            # character offset of the chunk in the file's text
    page: int | None      # page number (from 1) for PDFs
    text: str
    score: float

    @property
    def name(self) -> str:
        return self.source.rsplit("/", 1)[-1]

    def cite(self) -> str:
        """"setup.md, part 2" or "manual.pdf, page 7"."""
        where = f"page {self.page}" if self.page is not None else f"part {self.position + 1}"
        return f"{self.name}, {where}"

    def as_context(self, number: int) -> str:
        """The passage as the prompt shows it (see ``context.build``'s ``passages``)."""
        return f"[{number}] {self.cite()}:\n{self.text}"


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    chunks: int = 0                                   # chunks written in this run
    failed: list[tuple[str, str]] = field(default_factory=list)   # (relative name, reason)
    skipped: int = 0                                  # files of other types

    def describe(self) -> str:
        parts = [f"{self.added} new", f"{self.updated} changed", f"{self.unchanged} unchanged"]
        if self.moved:
            parts.append(f"{self.moved} renamed")
        if self.removed:
            parts.append(f"{self.removed} removed")
        text = "Documents: " + ", ".join(parts) + "."
        if self.failed:
            text += " Could not read: " + "; ".join(f"{n} ({r})" for n, r in self.failed) + "."
        return text


class DocumentIndex:
    """The search index of attached folders, in its own SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notice: str | None = None      # set when a damaged index was moved aside
        self._lock = threading.RLock()
        try:
            self._conn = self._connect()
        except sqlitedb.DamagedDatabase as e:
            moved = e.moved_to.name if e.moved_to else "(not moved)"
            self.notice = (f"The documents index {self.path.name} was damaged ({e.reason}); it "
                           f"was moved aside as {moved} and will be rebuilt from your folders.")
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        return sqlitedb.connect(self.path, schema=_SCHEMA, version=SCHEMA_VERSION,
                                migrations={}, what="documents index")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- indexing -------------------------------------------------------------------------

    def index_folder(self, folder: str | Path, *, embedder: Embedder | None = None,
                     progress: Callable[[int, int, str], None] | None = None,
                     check: Callable[[], None] | None = None) -> IndexReport:
        """Bring the index of ``folder`` up to date. ``check`` is called between files (a
        job's ``ctx.check`` stops here, keeping the files done); each file is committed on
        its own."""
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise UserError(f"The folder {root.name or folder} does not exist.")
        report = IndexReport()
        on_disk: dict[str, Path] = {}
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if any(part.startswith(".") for part in rel.split("/")) or not p.is_file():
                continue
            if p.suffix.lower() in TEXT_SUFFIXES + PDF_SUFFIXES:
                on_disk[rel] = p
            else:
                report.skipped += 1
        with self._lock:
            c = self._conn
            c.execute("INSERT OR IGNORE INTO folders(path) VALUES (?)", (str(root),))
            fid = c.execute("SELECT id FROM folders WHERE path = ?", (str(root),)).fetchone()[0]
            known = {rel: (file_id, sha) for file_id, rel, sha in c.execute(
                "SELECT id, rel, sha256 FROM files WHERE folder_id = ?", (fid,))}
        gone = {rel: v for rel, v in known.items() if rel not in on_disk}
        gone_by_hash = {sha: (file_id, rel) for rel, (file_id, sha) in gone.items()}
        for n, (rel, path) in enumerate(on_disk.items()):
            if check is not None:
                check()
            if progress is not None:
                progress(n, len(on_disk), rel)
            try:
                data = path.read_bytes()
            except OSError as e:
                report.failed.append((rel, f"cannot be opened: {e.strerror or e}"))
                continue
            sha = hashlib.sha256(data).hexdigest()
            if rel in known and known[rel][1] == sha:
                report.unchanged += 1
                continue
            if rel not in known and sha in gone_by_hash:
                file_id, old_rel = gone_by_hash.pop(sha)
                gone.pop(old_rel, None)
                with self._tx() as c:
                    c.execute("UPDATE files SET rel = ? WHERE id = ?", (rel, file_id))
                report.moved += 1
                continue
            try:
                text, pages = read_document(path, data)
            except UserError as e:
                report.failed.append((rel, str(e)))
                if rel in known:
                    with self._tx() as c:
                        c.execute("DELETE FROM files WHERE id = ?", (known[rel][0],))
                continue
            pieces = chunk_document(text, pages)
            with self._tx() as c:
                if rel in known:
                    c.execute("DELETE FROM files WHERE id = ?", (known[rel][0],))
                    report.updated += 1
                else:
                    report.added += 1
                cur = c.execute("INSERT INTO files(folder_id, rel, sha256, indexed) "
                                "VALUES (?, ?, ?, ?)", (fid, rel, sha, time.time()))
                file_id = cur.lastrowid
                c.executemany(
                    "INSERT INTO chunks(file_id, position, start, page, text) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(file_id, i, start, page, body)
                     for i, (start, page, body) in enumerate(pieces)])
            report.chunks += len(pieces)
        with self._tx() as c:
            for file_id, _sha in gone.values():
                c.execute("DELETE FROM files WHERE id = ?", (file_id,))
                report.removed += 1
        if progress is not None:
            progress(len(on_disk), len(on_disk), "")
        if embedder is not None:
            self.embed_missing(embedder, [root], check=check)
        return report

    def remove_folder(self, folder: str | Path) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM folders WHERE path = ?",
                      (str(Path(folder).expanduser().resolve()),))

    def files(self, folder: str | Path) -> list[tuple[str, int]]:
        """(relative name, chunk count) of the indexed files of a folder."""
        with self._lock:
            return [(r[0], r[1]) for r in self._conn.execute(
                "SELECT f.rel, COUNT(c.id) FROM files f JOIN folders d ON d.id = f.folder_id "
                "LEFT JOIN chunks c ON c.file_id = f.id WHERE d.path = ? GROUP BY f.id "
                "ORDER BY f.rel", (str(Path(folder).expanduser().resolve()),))]

    def embed_missing(self, embedder: Embedder, folders: Sequence[str | Path] | None = None, *,
                      batch: int = 32, check: Callable[[], None] | None = None) -> int:
        """Give every chunk of ``folders`` a vector of this embedding model; returns how many
        were computed."""
        model = _model_name(embedder)
        where, args = self._folder_filter(folders)
        with self._lock:
            todo = self._conn.execute(
                "SELECT c.id, c.text FROM chunks c JOIN files f ON f.id = c.file_id "
                "JOIN folders d ON d.id = f.folder_id WHERE (c.vector IS NULL OR "
                f"c.vector_model IS NOT ?) {where} ORDER BY c.id", [model, *args]).fetchall()
        for i in range(0, len(todo), batch):
            if check is not None:
                check()
            part = todo[i:i + batch]
            vecs = _unit(np.asarray(embedder.embed([t for _, t in part]), dtype=np.float32))
            if vecs.shape[0] != len(part):
                raise UserError("The embedding model returned a wrong number of vectors.")
            with self._tx() as c:
                c.executemany("UPDATE chunks SET vector = ?, vector_model = ? WHERE id = ?",
                              [(v.tobytes(), model, cid) for (cid, _), v in
                               zip(part, vecs, strict=True)])
        return len(todo)

    # -- search ---------------------------------------------------------------------------

    def search(self, query: str, *, folders: Sequence[str | Path] | None = None, k: int = 5,
               embedder: Embedder | None = None, candidates: int = 50) -> list[Passage]:
        """The ``k`` best passages for ``query`` in ``folders`` (default: all): BM25, fused
        with cosine similarity when an embedding model is given."""
        where, args = self._folder_filter(folders)
        ranked: list[list[int]] = []
        q = _fts_any(query)
        with self._lock:
            if q:
                rows = self._conn.execute(
                    "SELECT c.id FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
                    "JOIN files f ON f.id = c.file_id JOIN folders d ON d.id = f.folder_id "
                    f"WHERE chunks_fts MATCH ? {where} ORDER BY bm25(chunks_fts) LIMIT ?",
                    [q, *args, candidates]).fetchall()
                ranked.append([r[0] for r in rows])
        if embedder is not None and query.strip():
            self.embed_missing(embedder, folders)
            ranked.append(self._dense(query, embedder, where, args, candidates))
        scores: dict[int, float] = {}
        for ranking in ranked:
            for rank, cid in enumerate(ranking):
                scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
        if not best:
            return []
        with self._lock:
            rows = {r[0]: r for r in self._conn.execute(
                "SELECT c.id, f.rel, c.position, c.start, c.page, c.text FROM chunks c "
                f"JOIN files f ON f.id = c.file_id WHERE c.id IN ({','.join('?' * len(best))})",
                best)}
        return [Passage(rows[cid][1], rows[cid][2], rows[cid][3], rows[cid][4], rows[cid][5],
                        scores[cid]) for cid in best]

    def _dense(self, query: str, embedder: Embedder, where: str, args: list[str],
               candidates: int) -> list[int]:
        model = _model_name(embedder)
        with self._lock:
            rows = self._conn.execute(
                "SELECT c.id, c.vector FROM chunks c JOIN files f ON f.id = c.file_id "
                "JOIN folders d ON d.id = f.folder_id WHERE c.vector_model IS ? "
                f"{where}", [model, *args]).fetchall()
        if not rows:
            return []
        mat = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
        qv = _unit(np.asarray(embedder.embed([query]), dtype=np.float32))[0]
        if qv.shape[0] != mat.shape[1]:
            raise UserError("The embedding model's vectors changed size; re-index the folder.")
        sims = mat @ qv
        order = np.argsort(-sims, kind="stable")[:candidates]
        return [rows[i][0] for i in order]

    def _folder_filter(self, folders: Sequence[str | Path] | None) -> tuple[str, list[str]]:
        if folders is None:
            return "", []
        paths = [str(Path(f).expanduser().resolve()) for f in folders]
        if not paths:
            return "AND 0", []
        return f"AND d.path IN ({','.join('?' * len(paths))})", paths

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlitedb.transaction(self._conn, self._lock, self.path, "documents index")


def read_document(path: str | Path, data: bytes | None = None
                  ) -> tuple[str, list[int] | None]:
    """The text of a .txt/.md/.pdf file and, for a PDF, the character offset where each page
    starts. Raises UserError with the reason a file cannot be read."""
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise UserError(f"cannot be opened: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if path.suffix.lower() in PDF_SUFFIXES:
        return _read_pdf(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text (save it as UTF-8 and index again)") from None
    if "\x00" in text:
        raise UserError("not a text file")
    if not text.strip():
        raise UserError("empty")
    return text, None


def _read_pdf(data: bytes) -> tuple[str, list[int]]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UserError("password-protected PDF")
        texts, starts, pos = [], [], 0
        for page in reader.pages:
            t = (page.extract_text() or "").strip()
            starts.append(pos)
            texts.append(t)
            pos += len(t) + 2
    except UserError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise UserError(f"not a readable PDF ({e})") from None
    except Exception as e:  # pypdf raises many kinds on broken files
        if "encrypt" in str(e).lower() or "crypt" in type(e).__name__.lower():
            raise UserError("password-protected PDF") from None
        raise UserError(f"not a readable PDF ({type(e).__name__}: {e})") from None
    text = "\n\n".join(texts)
    if not text.strip():
        raise UserError("no text layer (a scanned PDF? run OCR on it first)")
    return text, starts


def chunk_text(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS
               ) -> list[tuple[int, str]]:
    """(start offset, text) chunks of at most ``size`` characters, cut at a paragraph, line,
    sentence or word boundary where one is in the second half; consecutive chunks share about
    ``overlap`` characters so a sentence cut in two is whole in one of them."""
    out: list[tuple[int, str]] = []
    n = len(text)
    pos = 0
    while pos < n:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        end = min(pos + size, n)
        if end < n:
            lo = pos + size // 2
            for sep in ("\n\n", "\n", ". ", " "):
                cut = text.rfind(sep, lo, end)
                if cut != -1:
                    end = cut + len(sep)
                    break
        body = text[pos:end].strip()
        if body:
            out.append((pos, body))
        if end >= n:
            break
        nxt = max(end - overlap, pos + 1)
        space = text.find(" ", nxt, end)
        pos = space + 1 if space != -1 else nxt
    return out


def chunk_document(text: str, pages: list[int] | None) -> list[tuple[int, int | None, str]]:
    """(start offset, page, text) chunks; a PDF is cut page by page, so every chunk cites one
    page."""
    if not pages:
        return [(start, None, body) for start, body in chunk_text(text)]
    out = []
    ends = [*pages[1:], len(text)]
    for number, (begin, end) in enumerate(zip(pages, ends, strict=True), 1):
        out += [(begin + start, number, body)
                for start, body in chunk_text(text[begin:end])]
    return out


def _fts_any(text: str) -> str:
    words = re.findall(r"\w+", text)
    return " OR ".join('"' + w + '"' for w in words)


def _model_name(embedder: Embedder) -> str:
    return str(getattr(embedder, "name", "") or type(embedder).__name__)


def _unit(m: np.ndarray) -> np.ndarray:
    if m.ndim != 2:
        raise UserError("The embedding model returned vectors of an unexpected shape.")
    n = np.linalg.norm(m, axis=1, keepdims=True)
    return (m / np.where(n == 0, 1.0, n)).astype(np.float32)
