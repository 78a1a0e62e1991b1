"""Everything the chat plugin keeps, in one SQLite database (WAL) in the workspace.

Why one database: a chat, its branches, stats, feedback and notes change together, and SQLite
gives atomic multi-row updates and full-text search (FTS5) without a server. WAL mode lets the
panel read while a job streams a reply in.

Messages form a tree: every message has a parent (``None`` for a first message); a regenerated
reply is a sibling of the old one, and an edit (of any message) is a new sibling holding the new
text, so nothing the user saw is ever overwritten. Each message remembers which child was last
shown (``selected_child``), so switching back to a sibling returns to the branch the user left.
The chat remembers its active leaf; the active branch is the path from a root to that leaf.

A reply streamed in is written in place as it grows (:class:`ReplyWriter`), committed at most
every ``commit_every`` seconds: a crash mid-stream loses at most the tail of that one reply, which
stays marked unfinished (``complete = False``) so the user can continue it.

A file that is not a database, or that fails SQLite's ``quick_check``, is moved aside as
``chats.db.corrupt-<time>`` and reported as a :class:`CorruptStoreError` (a ``UserError``), so the
next open starts a fresh database and no other file is touched.

One :class:`Store` may be shared between threads (the panel and a job): every call holds a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError

from . import sqlitedb
from .intents import Intent
from .personas import Persona
from .records import (
    Chat,
    Feedback,
    FeedbackExample,
    MemoryNote,
    Message,
    Note,
    ReplyStats,
    Role,
    SearchHit,
)
from .replies import ReplyWriter

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Chat", "CorruptStoreError", "Feedback",
           "FeedbackExample", "MemoryNote", "Message", "Note", "ReplyStats", "ReplyWriter",
           "SearchHit", "Store", "fts_query", "store_path"]

SCHEMA_VERSION = 1

#: Upgrade steps: ``MIGRATIONS[v]`` takes a database at version ``v`` to ``v + 1`` inside one
#: transaction. Add a step and bump :data:`SCHEMA_VERSION` when the schema changes.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}

ROLES = ("system", "user", "assistant")

_SCHEMA = """
CREATE TABLE chats (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    persona TEXT,
    model TEXT,
    active_leaf INTEGER,
    settings TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES messages(id),
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL DEFAULT '',
    complete INTEGER NOT NULL DEFAULT 1,
    selected_child INTEGER,
    meta TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX messages_chat ON messages(chat_id);
CREATE INDEX messages_parent ON messages(parent_id);
CREATE TABLE reply_stats (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    data TEXT NOT NULL
);
CREATE TABLE feedback (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 0, 1)),
    correction TEXT,
    updated REAL NOT NULL
);
CREATE TABLE personas (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE pinned_notes (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE memory_notes (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    approved INTEGER NOT NULL DEFAULT 0,
    source_chat_id INTEGER REFERENCES chats(id) ON DELETE SET NULL,
    created REAL NOT NULL
);
CREATE TABLE intents (
    name TEXT PRIMARY KEY,
    examples TEXT NOT NULL,
    answer TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE doc_folders (
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (chat_id, folder)
);
CREATE TABLE summaries (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content='messages', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
"""


class CorruptStoreError(UserError):
    """The chat database could not be read; it was moved aside (``moved_to``)."""

    def __init__(self, message: str, moved_to: Path | None) -> None:
        super().__init__(message)
        self.moved_to = moved_to


def store_path(workspace: str | Path) -> Path:
    """Where a workspace keeps its chats."""
    return Path(workspace) / "chat" / "chats.db"


class Store:
    """The chat database. ``Store(path)`` opens (or creates) it; use as a context manager or call
    :meth:`close`. Raises :class:`CorruptStoreError` for a damaged file (moved aside first)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        try:
            self._conn = sqlitedb.connect(self.path, schema=_SCHEMA, version=SCHEMA_VERSION,
                                          migrations=MIGRATIONS, what="chat database",
                                          clock=clock)
        except sqlitedb.DamagedDatabase as e:
            moved = e.moved_to.name if e.moved_to else "(not moved)"
            raise CorruptStoreError(
                f"The chat database {self.path.name} is damaged ({e.reason}) and could not be "
                f"read. It was moved aside as {moved}, and a new, empty one starts the next "
                "time chats are opened. Your other files are untouched.", e.moved_to) from None

    @classmethod
    def open(cls, workspace: str | Path) -> Store:
        return cls(store_path(workspace))

    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlitedb.transaction(self._conn, self._lock, self.path, "chat database")

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as e:
                raise sqlitedb.friendly(e, self.path, "chat database") from None

    # -- chats ----------------------------------------------------------------------------

    def new_chat(self, title: str = "", persona: str | None = None, model: str | None = None,
                 settings: dict[str, Any] | None = None) -> int:
        now = self._clock()
        with self._tx() as c:
            cur = c.execute("INSERT INTO chats(title, persona, model, settings, created, updated)"
                            " VALUES (?, ?, ?, ?, ?, ?)",
                            (title, persona, model, json.dumps(settings or {}), now, now))
            return int(cur.lastrowid or 0)

    def chat(self, chat_id: int) -> Chat:
        rows = self._q("SELECT * FROM chats WHERE id = ?", (chat_id,))
        if not rows:
            raise UserError(f"There is no chat number {chat_id}.")
        return _chat(rows[0])

    def chats(self) -> list[Chat]:
        """All chats, the most recently changed first."""
        return [_chat(r) for r in self._q("SELECT * FROM chats ORDER BY updated DESC, id DESC")]

    def update_chat(self, chat_id: int, *, title: str | None = None,
                    persona: str | None = None, model: str | None = None,
                    settings: dict[str, Any] | None = None) -> Chat:
        """Change the given fields; ``settings`` keys are merged into the stored ones."""
        old = self.chat(chat_id)
        merged = {**old.settings, **(settings or {})}
        with self._tx() as c:
            c.execute("UPDATE chats SET title = ?, persona = ?, model = ?, settings = ?, "
                      "updated = ? WHERE id = ?",
                      (old.title if title is None else title,
                       old.persona if persona is None else persona,
                       old.model if model is None else model,
                       json.dumps(merged), self._clock(), chat_id))
        return self.chat(chat_id)

    def delete_chat(self, chat_id: int) -> None:
        self.chat(chat_id)
        with self._tx() as c:
            c.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    # -- messages and branches ------------------------------------------------------------

    def message(self, message_id: int) -> Message:
        rows = self._q("SELECT * FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise UserError(f"There is no message number {message_id}.")
        return _message(rows[0])

    def add_message(self, chat_id: int, role: Role, content: str, *,
                    parent_id: int | Literal["leaf"] | None = "leaf", complete: bool = True,
                    meta: dict[str, Any] | None = None) -> int:
        """Append a message under ``parent_id`` (by default the chat's active leaf) and make it
        the active leaf. A chat without a title takes one from its first user message."""
        if role not in ROLES:
            raise UserError(f"Unknown message role '{role}' (use system, user or assistant).")
        chat = self.chat(chat_id)
        parent = chat.active_leaf if parent_id == "leaf" else parent_id
        if parent is not None and self.message(parent).chat_id != chat_id:
            raise UserError("A message can only follow a message of the same chat.")
        now = self._clock()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO messages(chat_id, parent_id, role, content, complete, meta, "
                "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (chat_id, parent, role, content, int(complete), json.dumps(meta or {}),
                 now, now))
            mid = int(cur.lastrowid or 0)
            if parent is not None and parent == chat.active_leaf:
                # the active path is already selected all the way up: extend it by one
                c.execute("UPDATE messages SET selected_child = ? WHERE id = ?", (mid, parent))
                c.execute("UPDATE chats SET active_leaf = ?, updated = ? WHERE id = ?",
                          (mid, now, chat_id))
            else:
                self._set_leaf(c, chat_id, mid)
            if not chat.title and role == "user" and content.strip():
                c.execute("UPDATE chats SET title = ? WHERE id = ?",
                          (_title_from(content), chat_id))
        return mid

    def messages(self, chat_id: int) -> list[Message]:
        """Every message of a chat, all branches, in creation order."""
        return [_message(r) for r in
                self._q("SELECT * FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,))]

    def branch(self, chat_id: int, leaf: int | None = None) -> list[Message]:
        """The messages from the root to ``leaf`` (default: the active leaf), oldest first."""
        if leaf is None:
            leaf = self.chat(chat_id).active_leaf
        if leaf is None:
            return []
        rows = self._q(
            "WITH RECURSIVE path(id, depth) AS (SELECT id, 0 FROM messages WHERE id = ? "
            "UNION ALL SELECT m.parent_id, p.depth + 1 FROM messages m JOIN path p "
            "ON m.id = p.id WHERE m.parent_id IS NOT NULL) "
            "SELECT m.* FROM path JOIN messages m ON m.id = path.id ORDER BY path.depth DESC",
            (leaf,))
        return [_message(r) for r in rows]

    def children(self, message_id: int) -> list[Message]:
        return [_message(r) for r in self._q(
            "SELECT * FROM messages WHERE parent_id = ? ORDER BY id", (message_id,))]

    def siblings(self, message_id: int) -> list[Message]:
        """The message and its alternatives (same parent), oldest first: what the arrows
        step through."""
        m = self.message(message_id)
        if m.parent_id is None:
            rows = self._q("SELECT * FROM messages WHERE chat_id = ? AND parent_id IS NULL "
                           "ORDER BY id", (m.chat_id,))
        else:
            rows = self._q("SELECT * FROM messages WHERE parent_id = ? ORDER BY id",
                           (m.parent_id,))
        return [_message(r) for r in rows]

    def sibling_position(self, message_id: int) -> tuple[int, int]:
        """(1-based position, count) among its siblings, for a "2 / 3" label."""
        ids = [s.id for s in self.siblings(message_id)]
        return ids.index(message_id) + 1, len(ids)

    def switch(self, message_id: int, step: int) -> int:
        """Show the sibling ``step`` places away (clamped to the ends), and the branch below
        it the user last saw. Returns the new active leaf."""
        sib = self.siblings(message_id)
        ids = [s.id for s in sib]
        i = min(max(ids.index(message_id) + step, 0), len(ids) - 1)
        return self.select(ids[i])

    def select(self, message_id: int) -> int:
        """Make the branch through ``message_id`` active (down to the child last shown at each
        level). Returns the new active leaf."""
        m = self.message(message_id)
        with self._tx() as c:
            leaf = self._descend(c, message_id)
            self._set_leaf(c, m.chat_id, leaf)
        return leaf

    def edit(self, message_id: int, content: str) -> int:
        """A new branch: a sibling of ``message_id`` with the new text (same role), made active.
        The original message and everything after it are kept."""
        m = self.message(message_id)
        return self.add_message(m.chat_id, m.role, content, parent_id=m.parent_id,
                                meta={"edited_from": m.id})

    def delete_message(self, message_id: int) -> int | None:
        """Delete a message and everything below it. If the active branch went through it, a
        neighbouring sibling's branch (or the parent) becomes active. Returns the active leaf."""
        m = self.message(message_id)
        chat = self.chat(m.chat_id)
        on_path = chat.active_leaf is not None and any(
            x.id == message_id for x in self.branch(m.chat_id))
        sib = [s.id for s in self.siblings(message_id)]
        with self._tx() as c:
            # one statement for the whole subtree: a cascade per level would hit SQLite's
            # trigger depth limit (1000) on a long chat
            c.execute("WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL SELECT m.id FROM messages"
                      " m JOIN sub ON m.parent_id = sub.id) DELETE FROM messages WHERE id IN "
                      "(SELECT id FROM sub)", (message_id,))
            if m.parent_id is not None:
                c.execute("UPDATE messages SET selected_child = NULL WHERE id = ? AND "
                          "selected_child = ?", (m.parent_id, message_id))
            leaf = chat.active_leaf
            if on_path:
                i = sib.index(message_id)
                rest = sib[:i] + sib[i + 1:]
                leaf = self._descend(c, rest[max(i - 1, 0)]) if rest else m.parent_id
                self._set_leaf(c, m.chat_id, leaf)
        return leaf

    def _descend(self, c: sqlite3.Connection, message_id: int) -> int:
        current = message_id
        seen = {current}
        while True:
            row = c.execute("SELECT selected_child FROM messages WHERE id = ?",
                            (current,)).fetchone()
            child = None
            if row is not None and row[0] is not None:
                ok = c.execute("SELECT 1 FROM messages WHERE id = ? AND parent_id = ?",
                               (row[0], current)).fetchone()
                child = row[0] if ok else None
            if child is None:
                r = c.execute("SELECT MAX(id) FROM messages WHERE parent_id = ?",
                              (current,)).fetchone()
                child = r[0] if r else None
            if child is None or child in seen:
                return current
            seen.add(child)
            current = child

    def _set_leaf(self, c: sqlite3.Connection, chat_id: int, leaf: int | None) -> None:
        """Make ``leaf`` the chat's active leaf and mark the path to it as the selected child
        at every level (one statement, only the rows that change)."""
        c.execute("UPDATE chats SET active_leaf = ?, updated = ? WHERE id = ?",
                  (leaf, self._clock(), chat_id))
        if leaf is None:
            return
        c.execute(
            "WITH RECURSIVE path(id, parent) AS ("
            " SELECT id, parent_id FROM messages WHERE id = ?"
            " UNION ALL SELECT m.id, m.parent_id FROM messages m JOIN path p ON m.id = p.parent)"
            " UPDATE messages SET selected_child ="
            " (SELECT p.id FROM path p WHERE p.parent = messages.id)"
            " WHERE id IN (SELECT parent FROM path) AND selected_child IS NOT"
            " (SELECT p.id FROM path p WHERE p.parent = messages.id)",
            (leaf,))

    # -- streamed replies -----------------------------------------------------------------

    def begin_reply(self, chat_id: int, parent_id: int | Literal["leaf"] | None = "leaf", *,
                    meta: dict[str, Any] | None = None, commit_every: float = 0.5,
                    clock: Callable[[], float] = time.monotonic) -> ReplyWriter:
        """Start an assistant reply (unfinished, empty) under ``parent_id`` (default: the active
        leaf); regenerating is ``begin_reply(chat, parent_id=old_reply.parent_id)``."""
        mid = self.add_message(chat_id, "assistant", "", parent_id=parent_id, complete=False,
                               meta=meta)
        return ReplyWriter(self, mid, "", commit_every, clock)

    def continue_reply(self, message_id: int, *, commit_every: float = 0.5,
                       clock: Callable[[], float] = time.monotonic) -> ReplyWriter:
        """Go on writing an assistant reply (typically one left unfinished by Stop or a crash):
        new text is appended to what it holds, and it is unfinished again until ``finish``."""
        m = self.message(message_id)
        if m.role != "assistant":
            raise UserError("Only a reply of the assistant can be continued.")
        if self.children(message_id):
            raise UserError("Only the last reply of a branch can be continued; edit this one "
                            "instead.")
        self._write_content(message_id, m.content, complete=False)
        with self._tx() as c:
            self._set_leaf(c, m.chat_id, message_id)
        return ReplyWriter(self, message_id, m.content, commit_every, clock)

    def _write_content(self, message_id: int, content: str, complete: bool) -> None:
        with self._tx() as c:
            c.execute("UPDATE messages SET content = ?, complete = ?, updated = ? WHERE id = ?",
                      (content, int(complete), self._clock(), message_id))

    def set_stats(self, message_id: int, stats: ReplyStats) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO reply_stats(message_id, data) VALUES (?, ?)",
                      (message_id, json.dumps(asdict(stats))))

    def stats(self, message_id: int) -> ReplyStats | None:
        rows = self._q("SELECT data FROM reply_stats WHERE message_id = ?", (message_id,))
        return ReplyStats(**json.loads(rows[0][0])) if rows else None

    def set_meta(self, message_id: int, **values: Any) -> None:
        """Merge values into a message's metadata (citations, the intent that answered...)."""
        m = self.message(message_id)
        with self._tx() as c:
            c.execute("UPDATE messages SET meta = ? WHERE id = ?",
                      (json.dumps({**m.meta, **values}), message_id))

    # -- feedback -------------------------------------------------------------------------

    def set_feedback(self, message_id: int, rating: int, correction: str | None = None) -> None:
        """Thumbs up (+1), down (-1) or cleared (0), and an optional corrected answer."""
        if rating not in (-1, 0, 1):
            raise UserError("A rating is -1 (thumbs down), 0 (none) or +1 (thumbs up).")
        if self.message(message_id).role != "assistant":
            raise UserError("Only a reply of the assistant can be rated.")
        correction = correction.strip() if correction and correction.strip() else None
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO feedback(message_id, rating, correction, updated) "
                      "VALUES (?, ?, ?, ?)", (message_id, rating, correction, self._clock()))

    def feedback(self, message_id: int) -> Feedback | None:
        rows = self._q("SELECT * FROM feedback WHERE message_id = ?", (message_id,))
        return Feedback(rows[0]["message_id"], rows[0]["rating"], rows[0]["correction"]) \
            if rows else None

    def feedback_examples(self) -> list[FeedbackExample]:
        """Every rated or corrected reply with the conversation before it, oldest first:
        the raw material of "Improve this model"."""
        out = []
        for r in self._q("SELECT f.*, m.chat_id FROM feedback f JOIN messages m "
                         "ON m.id = f.message_id WHERE f.rating != 0 OR f.correction IS NOT NULL"
                         " ORDER BY f.message_id"):
            path = self.branch(r["chat_id"], r["message_id"])
            out.append(FeedbackExample(
                r["chat_id"], r["message_id"], [(m.role, m.content) for m in path[:-1]],
                path[-1].content, r["rating"], r["correction"]))
        return out

    # -- personas -------------------------------------------------------------------------

    def save_persona(self, persona: Persona) -> None:
        """Add or replace the persona of that name."""
        persona.validate()
        now = self._clock()
        with self._tx() as c:
            c.execute("INSERT INTO personas(name, data, created, updated) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT(name) DO UPDATE SET data = excluded.data, "
                      "updated = excluded.updated",
                      (persona.name, json.dumps(persona.to_dict()), now, now))

    def persona(self, name: str) -> Persona:
        rows = self._q("SELECT data FROM personas WHERE name = ?", (name,))
        if not rows:
            raise UserError(f"There is no persona named '{name}'.")
        return Persona.from_dict(json.loads(rows[0][0]), f"persona '{name}'")

    def personas(self) -> list[Persona]:
        return [Persona.from_dict(json.loads(r[0]), "a saved persona")
                for r in self._q("SELECT data FROM personas ORDER BY name COLLATE NOCASE")]

    def rename_persona(self, old: str, new: str) -> None:
        p = self.persona(old)
        if old != new and self._q("SELECT 1 FROM personas WHERE name = ?", (new,)):
            raise UserError(f"There is already a persona named '{new}'.")
        renamed = replace(p, name=new).validate()
        with self._tx() as c:
            c.execute("UPDATE personas SET name = ?, data = ?, updated = ? WHERE name = ?",
                      (new, json.dumps(renamed.to_dict()), self._clock(), old))
            c.execute("UPDATE chats SET persona = ? WHERE persona = ?", (new, old))

    def delete_persona(self, name: str) -> None:
        """Delete a persona; chats that used it keep their messages and lose the link."""
        with self._tx() as c:
            c.execute("DELETE FROM personas WHERE name = ?", (name,))
            c.execute("UPDATE chats SET persona = NULL WHERE persona = ?", (name,))

    # -- notes and memory -----------------------------------------------------------------

    def pin_note(self, chat_id: int, text: str) -> int:
        """A note that always stays in this chat's context."""
        self.chat(chat_id)
        if not text.strip():
            raise UserError("A pinned note needs some text.")
        with self._tx() as c:
            cur = c.execute("INSERT INTO pinned_notes(chat_id, text, created) VALUES (?, ?, ?)",
                            (chat_id, text.strip(), self._clock()))
            return int(cur.lastrowid or 0)

    def pinned_notes(self, chat_id: int) -> list[Note]:
        return [Note(r["id"], r["chat_id"], r["text"]) for r in self._q(
            "SELECT * FROM pinned_notes WHERE chat_id = ? ORDER BY id", (chat_id,))]

    def edit_note(self, note_id: int, text: str) -> None:
        if not text.strip():
            raise UserError("A pinned note needs some text (unpin it to remove it).")
        with self._tx() as c:
            c.execute("UPDATE pinned_notes SET text = ? WHERE id = ?", (text.strip(), note_id))

    def unpin(self, note_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM pinned_notes WHERE id = ?", (note_id,))

    def add_memory(self, text: str, *, source_chat_id: int | None = None,
                   approved: bool = False) -> int:
        """A note to remember across chats; proposed notes wait for the user's approval."""
        if not text.strip():
            raise UserError("A memory note needs some text.")
        with self._tx() as c:
            cur = c.execute("INSERT INTO memory_notes(text, approved, source_chat_id, created) "
                            "VALUES (?, ?, ?, ?)",
                            (text.strip(), int(approved), source_chat_id, self._clock()))
            return int(cur.lastrowid or 0)

    def approve_memory(self, note_id: int, approved: bool = True) -> None:
        with self._tx() as c:
            c.execute("UPDATE memory_notes SET approved = ? WHERE id = ?",
                      (int(approved), note_id))

    def memories(self, *, approved_only: bool = True) -> list[MemoryNote]:
        """Memory notes; by default only those the user approved (the only ones a prompt may
        use)."""
        sql = "SELECT * FROM memory_notes" + (" WHERE approved = 1" if approved_only else "")
        return [MemoryNote(r["id"], r["text"], bool(r["approved"]), r["source_chat_id"])
                for r in self._q(sql + " ORDER BY id")]

    def delete_memory(self, note_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM memory_notes WHERE id = ?", (note_id,))

    # -- intents --------------------------------------------------------------------------

    def save_intent(self, intent: Intent) -> None:
        intent.validate()
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO intents(name, examples, answer, enabled) "
                      "VALUES (?, ?, ?, ?)", (intent.name, json.dumps(list(intent.examples)),
                                              intent.answer, int(intent.enabled)))

    def intents(self) -> list[Intent]:
        return [Intent(r["name"], tuple(json.loads(r["examples"])), r["answer"],
                       bool(r["enabled"]))
                for r in self._q("SELECT * FROM intents ORDER BY name COLLATE NOCASE")]

    def delete_intent(self, name: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM intents WHERE name = ?", (name,))

    # -- document folders -----------------------------------------------------------------

    def attach_folder(self, chat_id: int, folder: str | Path) -> Path:
        """Attach a folder of documents to a chat (the folder itself is only ever read)."""
        self.chat(chat_id)
        p = Path(folder).expanduser().resolve()
        if not p.is_dir():
            raise UserError(f"The folder {p.name or folder} does not exist.")
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO doc_folders(chat_id, folder, added) VALUES (?, ?, ?)",
                      (chat_id, str(p), self._clock()))
        return p

    def detach_folder(self, chat_id: int, folder: str | Path) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM doc_folders WHERE chat_id = ? AND folder = ?",
                      (chat_id, str(Path(folder).expanduser().resolve())))

    def folders(self, chat_id: int) -> list[Path]:
        return [Path(r[0]) for r in self._q(
            "SELECT folder FROM doc_folders WHERE chat_id = ? ORDER BY added", (chat_id,))]

    # -- summaries cache ------------------------------------------------------------------

    def summary_cache(self) -> MutableMapping[str, str]:
        """A persistent cache for summaries of older turns (see ``context.build``)."""
        return _SummaryCache(self)

    # -- search ---------------------------------------------------------------------------

    def search(self, text: str, *, limit: int = 50, chat_id: int | None = None,
               mark: tuple[str, str] = ("**", "**")) -> list[SearchHit]:
        """Messages of every chat (all branches) that contain all words of ``text`` (the last
        one as a prefix; stems and accents are folded), best matches first."""
        q = fts_query(text)
        if not q:
            return []
        sql = ("SELECT m.id, m.chat_id, m.role, c.title, "
               "snippet(messages_fts, 0, ?, ?, '…', 12) AS snip "
               "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
               "JOIN chats c ON c.id = m.chat_id WHERE messages_fts MATCH ?")
        args: list[Any] = [mark[0], mark[1], q]
        if chat_id is not None:
            sql += " AND m.chat_id = ?"
            args.append(chat_id)
        sql += " ORDER BY bm25(messages_fts) LIMIT ?"
        args.append(limit)
        return [SearchHit(r["chat_id"], r["title"], r["id"], r["role"], r["snip"])
                for r in self._q(sql, args)]


class _SummaryCache(MutableMapping[str, str]):
    def __init__(self, store: Store) -> None:
        self.store = store

    def __getitem__(self, key: str) -> str:
        rows = self.store._q("SELECT text FROM summaries WHERE key = ?", (key,))
        if not rows:
            raise KeyError(key)
        return str(rows[0][0])

    def __setitem__(self, key: str, value: str) -> None:
        with self.store._tx() as c:
            c.execute("INSERT OR REPLACE INTO summaries(key, text, created) VALUES (?, ?, ?)",
                      (key, value, self.store._clock()))

    def __delitem__(self, key: str) -> None:
        with self.store._tx() as c:
            c.execute("DELETE FROM summaries WHERE key = ?", (key,))

    def __iter__(self) -> Iterator[str]:
        return iter([r[0] for r in self.store._q("SELECT key FROM summaries")])

    def __len__(self) -> int:
        return int(self.store._q("SELECT COUNT(*) FROM summaries")[0][0])


def fts_query(text: str) -> str:
    """A safe FTS5 query from what a user typed: every word quoted (so ``"`` or ``AND(`` are
    plain text), all required, the last one as a prefix."""
    import re

    words = re.findall(r"\w+", text)
    if not words:
        return ""
    quoted = ['"' + w.replace('"', '') + '"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:57].rstrip() + "…"


def _chat(r: sqlite3.Row) -> Chat:
    return Chat(r["id"], r["title"], r["persona"], r["model"], r["active_leaf"],
                json.loads(r["settings"]), r["created"], r["updated"])


def _message(r: sqlite3.Row) -> Message:
    return Message(r["id"], r["chat_id"], r["parent_id"], r["role"], r["content"],
                   bool(r["complete"]), json.loads(r["meta"]), r["created"], r["updated"])
