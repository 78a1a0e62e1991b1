"""Dialogs to train a chatbot on: the built-in corpus, or the user's own files.

- ``builtin``: the conversations of the ``chatterbot-corpus`` package (YAML, 28 languages, about
  7,600 short dialogs), installed with the studio, so training works offline with nothing of
  the user's.
- JSONL in the messages format: one dialog per line, ``{"messages": [{"role", "content"}...]}``
  or a bare list of messages (what OpenAI's fine-tuning files and most chat tools write).
- Plain text: one turn per line, the user first, turns alternating; a blank line ends a dialog.
  A speaker label ("User:", "Bot:", "A:", ...) at the start of a line is dropped when every line
  of the dialog has one.
- YAML in the chatterbot format (``conversations: [[turn, turn, ...], ...]``).

A folder is read recursively (those four kinds, by suffix). Every dialog remembers which file
(relative to the data root) and which position it came from: the run's manifest lists them, so
"which dialogs trained this model" has an answer. Files that cannot be read are a
:class:`UserError` naming the file and line, never skipped in silence; dialogs with nothing to
learn (a single turn) are counted and reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import UserError

BUILTIN = "builtin"
SUFFIXES = (".jsonl", ".txt", ".yml", ".yaml")
#: the built-in corpus's languages (folders of chatterbot_corpus/data)
LANGUAGES = ("bengali", "chinese", "dutch", "english", "french", "german", "hebrew", "hindi",
             "hinglish", "indonesian", "italian", "japanese", "korean", "marathi", "oriya",
             "persian", "portuguese", "russian", "spanish", "swedish", "tamil", "telugu",
             "thai", "traditionalchinese", "turkish", "ukrainian", "urdu", "yoruba")
_LABEL = re.compile(r"^\s*([A-Za-z][\w .'-]{0,24}):\s?(.*)$")


@dataclass(frozen=True)
class Dialog:
    """One conversation: messages with roles, and where it came from."""

    messages: tuple[tuple[str, str], ...]   # (role, content); roles system/user/assistant
    source: str                             # file, relative to the data root ("/"-separated)
    index: int                              # position in that file (from 0)

    @property
    def replies(self) -> int:
        return sum(1 for role, _ in self.messages if role == "assistant")

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass
class DialogSet:
    """The dialogs of a data source, with what was left out and why."""

    dialogs: list[Dialog]
    root: Path                              # the folder (or file) they were read from
    name: str                               # "chatterbot-corpus (english)", "my_dialogs"
    files: list[Path] = field(default_factory=list)
    skipped: int = 0                        # dialogs without a reply to learn from
    notes: list[str] = field(default_factory=list)

    def texts(self) -> Iterable[str]:
        for d in self.dialogs:
            for _, content in d.messages:
                yield content


def builtin_root() -> Path:
    """The corpus's data folder (a clear message when the package is missing)."""
    try:
        from chatterbot_corpus.corpus import DATA_DIRECTORY
    except ImportError:
        raise UserError("the built-in dialogs come from the chatterbot-corpus package, which "
                        "is not installed: pip install chatterbot-corpus (or give --data a "
                        "folder of your own dialogs)") from None
    return Path(DATA_DIRECTORY)


def load_dialogs(data: str | Path, language: str = "english",
                 check: Callable[[], None] | None = None) -> DialogSet:
    """Dialogs from ``"builtin"`` (the corpus, in ``language`` or ``"all"``), a file or a
    folder."""
    if str(data).strip().lower() == BUILTIN:
        root = builtin_root()
        langs = LANGUAGES if language == "all" else (language,)
        if language != "all" and language not in LANGUAGES:
            raise UserError(f"the built-in dialogs have no language {language!r}: choose one "
                            f"of {', '.join(LANGUAGES)}, or all")
        files = sorted(f for lang in langs for f in (root / lang).glob("*.yml"))
        name = f"chatterbot-corpus ({language})"
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise UserError(f"{path} does not exist: give a folder or file of dialogs (.jsonl, "
                            ".txt, .yml), or builtin for the built-in ones")
        root = path
        if path.is_file():
            files = [path]
        else:
            files = sorted(f for f in path.rglob("*")
                           if f.is_file() and f.suffix.lower() in SUFFIXES
                           and not any(p.startswith(".") for p in f.relative_to(path).parts))
        if not files:
            raise UserError(f"{path.name} holds no dialog files (.jsonl, .txt, .yml)")
        name = path.stem if path.is_file() else path.name
    out = DialogSet([], root, name, files)
    for f in files:
        if check is not None:
            check()
        rel = f.name if root.is_file() else f.relative_to(root).as_posix()
        for i, turns in enumerate(read_file(f)):
            if sum(1 for role, _ in turns if role == "assistant") == 0:
                out.skipped += 1
                continue
            out.dialogs.append(Dialog(tuple(turns), rel, i))
    if not out.dialogs:
        raise UserError(f"no dialog in {name} has a reply to learn from (a dialog needs a user "
                        "turn and an answer)")
    if out.skipped:
        out.notes.append(f"{out.skipped} dialog(s) without a reply were left out")
    return out


def read_file(path: Path) -> list[list[tuple[str, str]]]:
    """The dialogs of one file, as lists of (role, content)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path.name} is not UTF-8 text (byte {exc.start}): save it as UTF-8") \
            from None
    except OSError as exc:
        raise UserError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(text, path.name)
    if suffix in (".yml", ".yaml"):
        return _read_yaml(text, path.name)
    return _read_text(text)


def _read_jsonl(text: str, name: str) -> list[list[tuple[str, str]]]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{name}, line {n}: not JSON ({exc.msg})") from None
        messages = item.get("messages") if isinstance(item, dict) else item
        if not isinstance(messages, list):
            raise UserError(f"{name}, line {n}: expected {{\"messages\": [...]}} or a list of "
                            "messages")
        turns = []
        for m in messages:
            role = m.get("role") if isinstance(m, dict) else None
            content = m.get("content") if isinstance(m, dict) else None
            role = "system" if role == "developer" else role
            if role not in ("system", "user", "assistant") or not isinstance(content, str):
                raise UserError(f"{name}, line {n}: every message needs a role (system, user "
                                "or assistant) and text content")
            turns.append((role, content))
        out.append(turns)
    return out


def _alternate(lines: list[str]) -> list[tuple[str, str]]:
    return [("user" if i % 2 == 0 else "assistant", s) for i, s in enumerate(lines)]


def _read_yaml(text: str, name: str) -> list[list[tuple[str, str]]]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{name}{where}: not readable YAML") from None
    convs = data.get("conversations") if isinstance(data, dict) else None
    if not isinstance(convs, list):
        raise UserError(f"{name}: expected a 'conversations' list (the chatterbot format)")
    out = []
    for conv in convs:
        if isinstance(conv, list):  # a few corpus entries are a lone string: not a dialog
            out.append(_alternate([str(t).strip() for t in conv if str(t).strip()]))
        else:
            out.append([])
    return out


def _read_text(text: str) -> list[list[tuple[str, str]]]:
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        labelled = [_LABEL.match(ln) for ln in lines]
        if len(lines) > 1 and all(labelled):
            lines = [m.group(2).strip() for m in labelled if m is not None]
        out.append(_alternate(lines))
    return out
