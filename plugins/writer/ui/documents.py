"""The writer's documents: plain-text files in the workspace, saved atomically.

No Qt here (the panel drives it; tests use it headless). Documents live in
``<workspace>/writer/documents/<id>.txt``; ``session.json`` beside them remembers which one was
open, where the cursor was, and whether the studio closed cleanly. The panel saves a second
after typing stops (and at least every few seconds while text streams in), so a crash loses at
most that much; on the next start the session names the document to reopen and the panel says it
was recovered. Files opened from elsewhere are copied in: the user's own files are only written
by an explicit Export.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import storage

TITLE_CHARS = 48


@dataclass
class DocInfo:
    id: str
    title: str
    modified: float
    path: Path


def breakable(path: object) -> str:
    """A path a word-wrapping label can break after each separator (long paths would otherwise
    force the whole panel wider than the window)."""
    return str(path).replace("/", "/\u200b").replace("\\", "\\\u200b")


def model_label(path: object) -> str:
    """A model folder as a person names it: a trained run's ``.../RUN/model`` is the run."""
    p = Path(str(path))
    return p.parent.name if p.name in ("model", "adapter") and p.parent.name else p.name


def title_of(text: str, fallback: str = "Untitled") -> str:
    """The first non-empty line (without Markdown heading marks), shortened."""
    for line in text.splitlines():
        line = re.sub(r"^#+\s*", "", line.strip())
        if line:
            return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 1] + "…"
    return fallback


class DocumentStore:
    """Documents and the editing session under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.docs = self.root / "documents"
        self.session_path = self.root / "session.json"

    def path(self, doc_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", doc_id):
            raise ValueError(f"bad document id {doc_id!r}")
        return self.docs / f"{doc_id}.txt"

    def list(self) -> list[DocInfo]:
        """All documents, most recently modified first."""
        out = []
        for p in self.docs.glob("*.txt"):
            try:
                text = p.read_text(encoding="utf-8", errors="replace")
                out.append(DocInfo(p.stem, title_of(text), p.stat().st_mtime, p))
            except OSError:
                continue
        return sorted(out, key=lambda d: d.modified, reverse=True)

    def new(self, text: str = "") -> str:
        doc_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.save(doc_id, text)
        return doc_id

    def load(self, doc_id: str) -> str:
        return self.path(doc_id).read_text(encoding="utf-8")

    def save(self, doc_id: str, text: str) -> Path:
        return storage.atomic_write_text(self.path(doc_id), text)

    def delete(self, doc_id: str) -> None:
        p = self.path(doc_id)
        if p.exists():
            p.unlink()

    # -- session ------------------------------------------------------------------------------
    def read_session(self) -> dict[str, Any]:
        try:
            data = storage.read_json(self.session_path)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_session(self, **values: Any) -> None:
        data = self.read_session()
        data.update(values)
        storage.atomic_write_json(self.session_path, data)

    def export(self, doc_text: str, target: str | Path) -> Path:
        """Write a copy of the text to ``target`` (.txt or .md), atomically."""
        target = Path(target)
        if target.suffix.lower() not in (".txt", ".md"):
            target = target.with_suffix(".txt")
        return storage.atomic_write_text(target, doc_text)
