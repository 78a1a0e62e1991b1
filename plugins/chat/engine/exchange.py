"""A chat out of the studio (Markdown to read, JSON to keep) and back in.

Our JSON keeps the whole tree (every regenerated reply and edit) with stats and feedback, in a
versioned format (``"format": "studio-chat"``). Import also takes the OpenAI messages format
(``[{"role", "content"}]`` or ``{"messages": [...]}``), which most chat tools can write. Anything
else is refused with a message saying what was expected.

Exports carry no personal data: a model is named by its folder or file name, never its path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from studio.errors import UserError
from studio.storage import atomic_write_text

from .store import Message, ReplyStats, Store

FORMAT = "studio-chat"
FORMAT_VERSION = 1
_ROLE_NAMES = {"user": "You", "system": "System"}


# -- export ------------------------------------------------------------------------------------

def chat_to_dict(store: Store, chat_id: int, *, all_branches: bool = False) -> dict[str, Any]:
    """The chat in our JSON format: the active branch, or the whole tree."""
    chat = store.chat(chat_id)
    msgs = store.messages(chat_id) if all_branches else store.branch(chat_id)
    local = {m.id: n + 1 for n, m in enumerate(msgs)}
    out_msgs = []
    for m in msgs:
        item: dict[str, Any] = {"id": local[m.id],
                                "parent": local.get(m.parent_id) if m.parent_id else None,
                                "role": m.role, "content": m.content, "complete": m.complete,
                                "created": round(m.created, 3)}
        stats = store.stats(m.id)
        if stats is not None:
            item["stats"] = _public_stats(stats)
        fb = store.feedback(m.id)
        if fb is not None:
            item["feedback"] = {"rating": fb.rating, "correction": fb.correction}
        out_msgs.append(item)
    return {"format": FORMAT, "version": FORMAT_VERSION, "title": chat.title,
            "persona": chat.persona, "model": model_name(chat.model),
            "branches": "all" if all_branches else "active",
            "active": local.get(chat.active_leaf) if chat.active_leaf else None,
            "pinned_notes": [n.text for n in store.pinned_notes(chat_id)],
            "messages": out_msgs}


def chat_to_markdown(store: Store, chat_id: int, *, all_branches: bool = False) -> str:
    """The chat to read: the active branch, then (optionally) every other branch from the
    point where it leaves the messages above it."""
    chat = store.chat(chat_id)
    assistant = chat.persona or "Assistant"
    lines = [f"# {chat.title or 'Chat'}", ""]
    about = [f"Persona: {chat.persona}" if chat.persona else "",
             f"Model: {model_name(chat.model)}" if chat.model else ""]
    if any(about):
        lines += ["*" + " · ".join(a for a in about if a) + "*", ""]
    notes = store.pinned_notes(chat_id)
    if notes:
        lines += ["**Pinned notes**", ""] + [f"- {n.text}" for n in notes] + [""]
    active = store.branch(chat_id)
    lines += _md_messages(store, active, assistant)
    if all_branches:
        shown = {m.id for m in active}
        leaves = [m for m in store.messages(chat_id)
                  if not store.children(m.id) and m.id != chat.active_leaf]
        if leaves:
            lines += ["---", "", "## Other branches", ""]
        for n, leaf in enumerate(leaves, 1):
            path = store.branch(chat_id, leaf.id)
            fork = next(i for i, m in enumerate(path) if m.id not in shown)
            after = path[fork - 1].content if fork > 0 else ""
            lines += [f"### Branch {n}", ""]
            lines += ([f"*Continues after: “{_excerpt(after)}”*", ""] if after
                      else ["*From the start of the chat*", ""])
            lines += _md_messages(store, path[fork:], assistant)
            shown.update(m.id for m in path)
    return "\n".join(lines).rstrip() + "\n"


def export_chat(store: Store, chat_id: int, out: str | Path, *,
                all_branches: bool = False) -> Path:
    """Write the chat as ``.md`` or ``.json`` (by the file's suffix), atomically."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in (".md", ".markdown"):
        return atomic_write_text(out, chat_to_markdown(store, chat_id, all_branches=all_branches))
    if suffix == ".json":
        data = chat_to_dict(store, chat_id, all_branches=all_branches)
        return atomic_write_text(out, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    raise UserError(f"Export a chat as .md (to read) or .json (to keep); {out.name} is "
                    "neither.")


def _md_messages(store: Store, msgs: list[Message], assistant: str) -> list[str]:
    lines: list[str] = []
    for m in msgs:
        who = assistant if m.role == "assistant" else _ROLE_NAMES[m.role]
        head = f"**{who}**" + ("" if m.complete else " *(unfinished)*")
        lines += [head, "", m.content.rstrip() or "*(empty)*", ""]
        stats = store.stats(m.id) if m.role == "assistant" else None
        if stats is not None:
            info = stats_line(stats)
            if info:
                lines += [f"*{info}*", ""]
    return lines


def stats_line(stats: ReplyStats) -> str:
    """"12.3 tokens/s · first token after 0.42 s · 812 of 2,048 context tokens · llama.cpp"."""
    parts = []
    if stats.tokens_per_s is not None:
        parts.append(f"{stats.tokens_per_s:.1f} tokens/s")
    if stats.ttft_s is not None:
        parts.append(f"first token after {stats.ttft_s:.2f} s")
    if stats.context_used is not None and stats.context_total:
        parts.append(f"{stats.context_used:,} of {stats.context_total:,} context tokens")
    if stats.backend:
        parts.append(stats.backend)
    return " · ".join(parts)


def model_name(model: str | None) -> str | None:
    """A model's name without its location: the last part of a path or hub id."""
    if not model:
        return model
    return model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _public_stats(stats: ReplyStats) -> dict[str, Any]:
    d = {k: v for k, v in stats.__dict__.items() if v is not None}
    if "model" in d:
        d["model"] = model_name(d["model"])
    return d


def _excerpt(text: str, n: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= n else line[:n - 1].rstrip() + "…"


# -- import ------------------------------------------------------------------------------------

def import_chat(store: Store, source: str | Path | Any, *, title: str | None = None) -> int:
    """Import a chat file (or parsed JSON) into a new chat; returns its id."""
    name = "the data"
    if isinstance(source, str | Path):
        path = Path(source)
        name = path.name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"No file named {path.name}.") from None
        except UnicodeDecodeError:
            raise UserError(f"{path.name} is not a text file.") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{path.name} is not valid JSON (line {e.lineno}: {e.msg}). Import "
                            "takes a chat exported as JSON, or OpenAI-style messages.") from None
    else:
        data = source
    if isinstance(data, Mapping) and "format" in data:
        return _import_own(store, data, name, title)
    if isinstance(data, Mapping) and "messages" in data:
        return _import_openai(store, data["messages"], name,
                              title or _str_or_none(data.get("title")))
    if isinstance(data, list):
        return _import_openai(store, data, name, title)
    raise UserError(f"{name} is not a chat this studio can import: expected a chat exported "
                    "from the studio as JSON, a list of {\"role\", \"content\"} messages, or "
                    "an object with \"messages\".")


def _import_openai(store: Store, items: Any, name: str, title: str | None) -> int:
    if not isinstance(items, list) or not items:
        raise UserError(f"{name} has no messages to import.")
    parsed = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            raise UserError(f"{name}: message {n} is not an object with role and content.")
        role = item.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant"):
            raise UserError(f"{name}: message {n} has the role {role!r}; only system, user and "
                            "assistant messages can be imported.")
        parsed.append((role, _content_text(item.get("content"), f"{name}: message {n}")))
    chat_id = store.new_chat(title or "")
    parent = None
    for role, content in parsed:
        parent = store.add_message(chat_id, role, content, parent_id=parent)
    if title is None and not store.chat(chat_id).title:
        store.update_chat(chat_id, title=f"Imported from {name}")
    return chat_id


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text" and \
                    isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise UserError(f"{where} holds a part of type {kind!r}; only text can be "
                                "imported.")
        return "\n".join(texts)
    raise UserError(f"{where} has no text content.")


def _import_own(store: Store, data: Mapping[str, Any], name: str, title: str | None) -> int:
    if data.get("format") != FORMAT:
        raise UserError(f"{name} is a '{data.get('format')}' file, not a chat (expected "
                        f"'{FORMAT}').")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise UserError(f"{name} has no valid format version.")
    if version > FORMAT_VERSION:
        raise UserError(f"{name} was written by a newer version of the studio (chat format "
                        f"{version}); update the studio to import it.")
    items = data.get("messages")
    if not isinstance(items, list) or not items:
        raise UserError(f"{name} has no messages to import.")
    seen: dict[int, int] = {}
    checked = []
    for n, item in enumerate(items, 1):
        where = f"{name}: message {n}"
        if not isinstance(item, Mapping):
            raise UserError(f"{where} is not an object.")
        local, parent = item.get("id"), item.get("parent")
        if not isinstance(local, int) or local in seen or local in [c[0] for c in checked]:
            raise UserError(f"{where} has a missing or repeated id.")
        if parent is not None and parent not in [c[0] for c in checked]:
            raise UserError(f"{where} follows message {parent!r}, which does not come before "
                            "it in the file.")
        role = item.get("role")
        if role not in ("system", "user", "assistant"):
            raise UserError(f"{where} has the role {role!r} (system, user or assistant).")
        if not isinstance(item.get("content"), str):
            raise UserError(f"{where} has no text content.")
        checked.append((local, parent, item))
    chat_id = store.new_chat(title or _str_or_none(data.get("title")) or "",
                             persona=_str_or_none(data.get("persona")),
                             model=_str_or_none(data.get("model")))
    for local, parent, item in checked:
        mid = store.add_message(chat_id, item["role"], item["content"],
                                parent_id=seen[parent] if parent is not None else None,
                                complete=bool(item.get("complete", True)))
        seen[local] = mid
        stats = item.get("stats")
        if isinstance(stats, Mapping):
            known = set(ReplyStats.__dataclass_fields__)
            store.set_stats(mid, ReplyStats(**{k: v for k, v in stats.items() if k in known}))
        fb = item.get("feedback")
        if isinstance(fb, Mapping) and item["role"] == "assistant" and \
                fb.get("rating") in (-1, 0, 1):
            store.set_feedback(mid, fb["rating"], _str_or_none(fb.get("correction")))
    for note in data.get("pinned_notes") or []:
        if isinstance(note, str) and note.strip():
            store.pin_note(chat_id, note)
    active = data.get("active")
    if isinstance(active, int) and active in seen:
        store.select(seen[active])
    return chat_id


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
