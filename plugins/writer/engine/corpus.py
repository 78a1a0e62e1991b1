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
  so it is text the model never saw and every document is represented. A run records its text
  as *passages* of about :data:`PASSAGE_CHARS` characters (:meth:`Corpus.examples`): the
  trained head ``0-K`` and the held-out tail ``K-N`` of each document, each cut into passages
  (``chars a-b``, counted in the text as read, after newline normalisation). A passage is the
  unit of membership: the privacy audit asks of each one "did the model train on it?", and a
  single novel gives hundreds of them rather than one head and one tail.
- The audit's reference models train on a random share of *another run's* passages
  (:meth:`Corpus.plan_from`, the train job's ``examples_of``): the same examples, each wholly
  in or out, so a reference model's membership is defined example by example.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import UserError
from studio.manifest import Example, ExampleRow, file_examples

TEXT_EXTS = (".txt", ".md", ".markdown", ".text")
MAX_PROBLEMS_SHOWN = 5
#: the size of a recorded passage: about two paragraphs, about one training block of the tiny
#: preset (256 tokens), long enough for its mean loss to be a steady statistic
PASSAGE_CHARS = 1000


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
        """What a run trained on, for its manifest: the head ``0-K`` (trained on) and the tail
        ``K-N`` (held out) of each document, each cut into :func:`passages`, as examples of
        their file (``chars a-b``), and the held-out ids. Files are named relative to the
        corpus root (a single file: ""), and hashed, so the audit can tell an edited file from
        the one trained on."""
        plan = self.plan(val_fraction, check)
        return plan.examples, plan.held_out

    def plan(self, val_fraction: float, check: Callable[[], None] | None = None) -> Plan:
        """The ordinary split (:meth:`split`) with its passages (:meth:`examples`)."""
        _check_fraction(val_fraction)
        train, val = self.split(val_fraction)
        examples: list[Example] = []
        held_out: list[str] = []
        for doc, ex in zip(self.documents, self._whole(check), strict=True):
            cut, n = doc.cut(val_fraction), doc.chars
            for a, b in passages(doc.text, 0, cut):
                examples.append(ex.with_part(f"chars {a}-{b}"))
            for a, b in passages(doc.text, cut, n):
                tail = ex.with_part(f"chars {a}-{b}")
                examples.append(tail)
                held_out.append(tail.id)
        return Plan(examples, held_out, train, val)

    def plan_from(self, rows: Sequence[ExampleRow], holdout: float, seed: int,
                  check: Callable[[], None] | None = None) -> Plan:
        """Train on the text ranges another run recorded (``rows``, its examples), holding out
        ``round(holdout * n)`` of them chosen by ``seed`` (:func:`plugins.common.splits.held_out`):
        the privacy audit's reference models, trained on random halves of the audited run's
        passages. Every range must still be in this corpus, unchanged (its file's hash); the
        training text is each document's trained ranges, adjacent ones joined, and likewise the
        validation text."""
        from plugins.common.splits import held_out as choose

        _check_fraction(holdout)
        if not rows:
            raise UserError("the run to take the text ranges from recorded none: choose a run "
                            "made by the writer's train job")
        by_path = {ex.path: (i, ex.sha256) for i, ex in enumerate(self._whole(check))}
        ranges: list[tuple[int, int, int, Example]] = []
        for r in rows:
            if r.path not in by_path:
                raise UserError(f"the text {r.path or self.root.name} of the run is not in "
                                f"{self.root.name} any more: put it back to train on its ranges")
            i, sha = by_path[r.path]
            if sha != r.sha256:
                raise UserError(f"the text {r.path or self.root.name} changed since that run: "
                                "its ranges no longer name the same text")
            a, b = part_range(r.part, self.documents[i].chars)
            ranges.append((i, a, b, Example(r.path, r.sha256, r.part)))
        held = choose([e.id for *_, e in ranges], holdout, seed)
        train: list[str] = []
        val: list[str] = []
        for side, out in ((False, train), (True, val)):
            spans = sorted((i, a, b) for i, a, b, e in ranges if (e.id in held) == side)
            out += [self.documents[i].text[a:b] for i, a, b in _joined(spans)]
        examples = [e for *_, e in ranges]
        return Plan(examples, [e.id for e in examples if e.id in held], train, val)

    def _whole(self, check: Callable[[], None] | None = None) -> list[Example]:
        """One example per document: its file relative to the root, hashed."""
        root = self.root.expanduser().resolve()
        return file_examples(root, [d.path.expanduser().resolve() for d in self.documents],
                             check=check)

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


@dataclass
class Plan:
    """What a run trains on and holds out: its examples (passages) for the manifest, the held-out
    ids, and the texts training and validation read."""

    examples: list[Example]
    held_out: list[str]
    train: list[str]
    val: list[str]


def passages(text: str, start: int, end: int, size: int = PASSAGE_CHARS
             ) -> list[tuple[int, int]]:
    """``text[start:end]`` cut into pieces of about ``size`` characters: each piece ends after
    the last line break in its second half (else after a space, else where it must); the last
    piece takes a rest shorter than half a piece. Empty ranges give no piece."""
    out: list[tuple[int, int]] = []
    a = start
    while end - a > size + size // 2:
        b = a + size
        cut = text.rfind("\n", a + size // 2, b)
        if cut < 0:
            cut = text.rfind(" ", a + size // 2, b)
        if cut >= 0:
            b = cut + 1
        out.append((a, b))
        a = b
    if a < end:
        out.append((a, end))
    return out


def part_range(part: str, n: int) -> tuple[int, int]:
    """``(a, b)`` of a recorded part ``"chars a-b"`` ("" is the whole text of ``n``
    characters)."""
    if not part:
        return 0, n
    m = re.fullmatch(r"chars (\d+)-(\d+)", part)
    if m is None or not 0 <= int(m[1]) < int(m[2]) <= n:
        raise UserError(f"the recorded text range {part!r} does not fit a text of {n} "
                        "characters")
    return int(m[1]), int(m[2])


def _joined(spans: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Sorted ``(document, a, b)`` spans with touching ones of a document joined."""
    out: list[tuple[int, int, int]] = []
    for i, a, b in spans:
        if out and out[-1][0] == i and out[-1][2] == a:
            out[-1] = (i, out[-1][1], b)
        else:
            out.append((i, a, b))
    return out


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
