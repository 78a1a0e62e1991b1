"""A writing corpus: .txt/.md files or folders of them, read as UTF-8 and split train/validation.

Pure Python (no torch), so a panel or a quick "inspect" job can count characters cheaply.

Rules a user can rely on:
- Only UTF-8 is accepted (a BOM is fine). Any other encoding is refused with the file name, the
  byte offset of the first bad byte and what to do; we never guess an encoding, because a wrong
  guess silently trains the model on mojibake.
- A file with NUL bytes is binary (a .docx, a PDF renamed .txt, ...) and is refused the same way.
- Folders are searched recursively for ``.txt``/``.md``/``.markdown``/``.text`` files; hidden files
  and folders are skipped. A file named explicitly is read whatever its extension.
- Line endings are normalised to ``\\n``. The user's files are only ever read.
- Validation text is the *last* ``val_fraction`` of every document (nanoGPT's split for one file),
  so it is text the model never saw and every document is represented. A run records each
  document as two examples (:meth:`Corpus.examples`): characters ``0-K`` (trained on) and
  ``K-N`` (held out), counted in the text as read (after newline normalisation).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import UserError
from studio.manifest import Example, file_examples

TEXT_EXTS = (".txt", ".md", ".markdown", ".text")
MAX_PROBLEMS_SHOWN = 5


@dataclass
class Document:
    """One file's text."""

    path: Path
    text: str

    @property
    def chars(self) -> int:
        return len(self.text)

    def cut(self, val_fraction: float) -> int:
        """Where the held-out tail begins (a character index): the split and the run's record
        of it share this one rule."""
        return int(len(self.text) * (1.0 - val_fraction))


@dataclass
class Corpus:
    """The documents of a corpus, in a stable (sorted) order."""

    root: Path
    documents: list[Document]
    ignored: list[Path] = field(default_factory=list)  # files in folders with other extensions

    @property
    def chars(self) -> int:
        return sum(d.chars for d in self.documents)

    @property
    def files(self) -> list[Path]:
        return [d.path for d in self.documents]

    def texts(self) -> list[str]:
        return [d.text for d in self.documents]

    def split(self, val_fraction: float) -> tuple[list[str], list[str]]:
        """Train and validation texts: the last ``val_fraction`` of each document is held out.

        ``val_fraction`` 0 gives no validation text (no early stopping then).
        """
        _check_fraction(val_fraction)
        train: list[str] = []
        val: list[str] = []
        for doc in self.documents:
            cut = doc.cut(val_fraction)
            if doc.text[:cut]:
                train.append(doc.text[:cut])
            if doc.text[cut:]:
                val.append(doc.text[cut:])
        return train, val

    def examples(self, val_fraction: float,
                 check: Callable[[], None] | None = None) -> tuple[list[Example], list[str]]:
        """What a run trained on, for its manifest: each document as two examples of its file,
        ``chars 0-K`` (trained on) and ``chars K-N`` (held out; absent when nothing is held
        out), and the held-out ids. Files are named relative to the corpus root (a single
        file: ""), and hashed, so the audit can tell an edited file from the one trained on."""
        _check_fraction(val_fraction)
        root = self.root.expanduser().resolve()
        whole = file_examples(root, [d.path.expanduser().resolve() for d in self.documents],
                              check=check)
        examples: list[Example] = []
        held_out: list[str] = []
        for doc, ex in zip(self.documents, whole, strict=True):
            cut, n = doc.cut(val_fraction), doc.chars
            if cut > 0:
                examples.append(ex.with_part(f"chars 0-{cut}"))
            if cut < n:
                tail = ex.with_part(f"chars {cut}-{n}")
                examples.append(tail)
                held_out.append(tail.id)
        return examples, held_out

    def fingerprint(self) -> str:
        """A short hash of the file names and contents, recorded with runs for provenance."""
        h = hashlib.sha1()
        for doc in self.documents:
            h.update(str(doc.path).encode())
            h.update(doc.text.encode("utf-8"))
        return h.hexdigest()[:16]

    def summary(self) -> str:
        n = len(self.documents)
        return f"{n} file{'s' if n != 1 else ''}, {self.chars:,} characters"


def _check_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"the validation fraction must be in [0, 1), not {val_fraction}")


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 bytes to text with newlines normalised; a clear :class:`UserError` otherwise.

    Args:
        data: the file's bytes.
        name: how to name the file in messages.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UserError(
            f"{name} looks like a binary file, not plain text (a NUL byte at byte offset {nul}). "
            "Export it as a .txt or .md file first.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1]
        raise UserError(
            f"{name} is not UTF-8 text: byte 0x{bad.hex()} at byte offset {exc.start} cannot be "
            "decoded. Re-save the file as UTF-8 (in most editors: Save As, Encoding: UTF-8)."
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Read one UTF-8 text file (see :func:`decode_text` for the rules)."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"the file {p} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{p} is a folder, not a file") from None
    except PermissionError:
        raise UserError(f"no permission to read {p}") from None
    return decode_text(data, str(p))


def find_text_files(path: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """The text files a corpus path names, and files that were passed over for their extension.

    A file is taken as it is; a folder is searched recursively (sorted, hidden entries skipped).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"the corpus {root} does not exist: choose a .txt/.md file or a folder")
    if root.is_file():
        return [root], []
    files: list[Path] = []
    ignored: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            (files if name.lower().endswith(TEXT_EXTS) else ignored).append(Path(dirpath) / name)
    return files, ignored


def load_corpus(paths: str | os.PathLike[str] | list[str] | list[Path]) -> Corpus:
    """Read every text file under one or several paths.

    Raises:
        UserError: a path is missing, no text files were found, all of them are empty, or any
            file is binary or not UTF-8 (every such file is named, with its byte offset).
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise UserError("no corpus given: choose a .txt/.md file or a folder of them")
    documents: list[Document] = []
    ignored: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for item in items:
        files, skipped = find_text_files(item)
        ignored += skipped
        for f in files:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                text = read_text_file(f)
            except UserError as exc:
                problems.append(str(exc))
                continue
            if text.strip():
                documents.append(Document(f, text))
    root = Path(items[0]).expanduser()
    if problems:
        shown = "\n".join(f"- {p}" for p in problems[:MAX_PROBLEMS_SHOWN])
        more = (f"\n(and {len(problems) - MAX_PROBLEMS_SHOWN} more)"
                if len(problems) > MAX_PROBLEMS_SHOWN else "")
        raise UserError(f"{len(problems)} file(s) in the corpus cannot be used:\n{shown}{more}")
    if not documents:
        exts = ", ".join(TEXT_EXTS)
        where = ", ".join(str(Path(i).expanduser()) for i in items)
        raise UserError(f"the corpus {where} has no text to learn from (looked for non-empty "
                        f"{exts} files, including sub-folders)")
    return Corpus(root, documents, ignored)
