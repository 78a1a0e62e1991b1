"""The chat database: chats, branching, streamed replies, notes, feedback, search, corruption."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugins.chat.engine import store as store_mod
from plugins.chat.engine.intents import Intent
from plugins.chat.engine.personas import Persona, Sampler
from plugins.chat.engine.store import CorruptStoreError, ReplyStats, Store, store_path
from studio.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _contents(msgs) -> list[str]:
    return [m.content for m in msgs]


def test_database_lives_in_the_workspace_in_wal_mode(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        assert s.path == tmp_path / "chat" / "chats.db" == store_path(tmp_path)
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.schema_version() == store_mod.SCHEMA_VERSION


def test_a_chat_takes_its_title_from_the_first_user_message(store: Store) -> None:
    cid = store.new_chat()
    store.add_message(cid, "assistant", "Hello! How can I help?")
    store.add_message(cid, "user", "How do I   water a cactus in winter?")
    assert store.chat(cid).title == "How do I water a cactus in winter?"
    assert [c.id for c in store.chats()] == [cid]
    with pytest.raises(UserError, match="no chat number 999"):
        store.chat(999)


def test_regenerate_keeps_earlier_answers_and_arrows_switch(store: Store) -> None:
    cid = store.new_chat("t")
    u = store.add_message(cid, "user", "Name a colour")
    a1 = store.add_message(cid, "assistant", "Red")
    # regenerate: a sibling of the old reply
    w = store.begin_reply(cid, parent_id=u)
    w.append("Blue")
    a2 = w.finish()
    assert [s.id for s in store.siblings(a1)] == [a1, a2]
    assert store.sibling_position(a2) == (2, 2)
    assert _contents(store.branch(cid)) == ["Name a colour", "Blue"]
    assert store.switch(a2, -1) == a1
    assert _contents(store.branch(cid)) == ["Name a colour", "Red"]
    assert store.switch(a1, -1) == a1          # clamped at the first
    assert store.switch(a1, +5) == a2          # clamped at the last


def test_editing_a_user_message_branches_and_switching_back_restores_the_branch(
        store: Store) -> None:
    cid = store.new_chat()
    u1 = store.add_message(cid, "user", "Hi")
    store.add_message(cid, "assistant", "Hello")
    u2 = store.add_message(cid, "user", "Tell me about cats")
    store.add_message(cid, "assistant", "Cats purr.")
    store.add_message(cid, "user", "And lions?")
    old_leaf = store.add_message(cid, "assistant", "Lions roar.")

    e = store.edit(u2, "Tell me about dogs")
    assert store.message(e).meta == {"edited_from": u2}
    assert _contents(store.branch(cid)) == ["Hi", "Hello", "Tell me about dogs"]
    store.add_message(cid, "assistant", "Dogs bark.")
    # arrows on the edited message go back to the old branch, down to where the user left it
    assert store.switch(e, -1) == old_leaf
    assert _contents(store.branch(cid))[-1] == "Lions roar."
    assert _contents(store.branch(cid))[-2:] == ["And lions?", "Lions roar."]
    assert _contents(store.branch(cid, store.switch(u2, +1))) == \
        ["Hi", "Hello", "Tell me about dogs", "Dogs bark."]
    # editing the very first message makes a second root
    r = store.edit(u1, "Hey")
    assert [m.id for m in store.siblings(r)] == [u1, r]
    assert _contents(store.branch(cid)) == ["Hey"]


def test_editing_an_assistant_message_branches_too(store: Store) -> None:
    cid = store.new_chat()
    store.add_message(cid, "user", "2+2?")
    a = store.add_message(cid, "assistant", "5")
    fixed = store.edit(a, "4")
    assert store.message(fixed).role == "assistant"
    assert [m.content for m in store.siblings(fixed)] == ["5", "4"]
    assert _contents(store.branch(cid)) == ["2+2?", "4"]


def test_deleting_a_message_deletes_its_subtree_and_moves_the_leaf(store: Store) -> None:
    cid = store.new_chat()
    u = store.add_message(cid, "user", "Q")
    a1 = store.add_message(cid, "assistant", "A1")
    store.add_message(cid, "user", "follow-up")
    a2 = store.begin_reply(cid, parent_id=u).finish()
    assert store.chat(cid).active_leaf == a2
    assert store.delete_message(a2) == store.chat(cid).active_leaf
    assert _contents(store.branch(cid)) == ["Q", "A1", "follow-up"]
    store.delete_message(a1)                    # with its follow-up
    assert _contents(store.branch(cid)) == ["Q"]
    assert [m.content for m in store.messages(cid)] == ["Q"]
    assert store.search("follow") == []         # gone from the search index too
    store.delete_chat(cid)
    assert store.chats() == []
    assert store._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_streamed_reply_is_written_in_place_with_throttled_commits(store: Store) -> None:
    cid = store.new_chat()
    store.add_message(cid, "user", "Count")
    clock = FakeClock()
    w = store.begin_reply(cid, commit_every=0.5, clock=clock)
    for i in range(10):                         # ten chunks within 0.45 s: no commit yet
        clock.t += 0.045
        w.append(f"{i} ")
    assert w.commits == 0
    assert store.message(w.message_id).content == ""
    clock.t += 0.1
    w.append("10 ")                             # past 0.5 s: committed
    assert w.commits == 1
    m = store.message(w.message_id)
    assert m.content == "0 1 2 3 4 5 6 7 8 9 10 " and not m.complete
    stats = ReplyStats(ttft_s=0.21, tokens=11, tokens_per_s=24.5, context_used=40,
                       context_total=2048, backend="transformers", model="tiny")
    w.finish(stats)
    m = store.message(w.message_id)
    assert m.complete and m.content.endswith("10 ")
    assert store.stats(m.id) == stats


def test_stop_leaves_an_unfinished_reply_that_can_be_continued(store: Store) -> None:
    cid = store.new_chat()
    store.add_message(cid, "user", "Write a long story")
    with store.begin_reply(cid) as w:
        w.append("Once upon")
    m = store.message(w.message_id)
    assert m.content == "Once upon" and not m.complete
    w2 = store.continue_reply(m.id)
    w2.append(" a time.")
    w2.finish()
    m = store.message(m.id)
    assert m.content == "Once upon a time." and m.complete
    with pytest.raises(UserError, match="assistant"):
        store.continue_reply(store.branch(cid)[0].id)


def test_a_crash_mid_stream_loses_at_most_that_reply(tmp_path: Path) -> None:
    """A separate process streams a reply, commits part of it and dies without any cleanup;
    the other chat and the committed part survive, the reply is marked unfinished."""
    ws = tmp_path / "ws"
    with Store.open(ws) as s:
        other = s.new_chat("kept")
        s.add_message(other, "user", "an older chat")
        s.add_message(other, "assistant", "still here")
        cid = s.new_chat("streaming")
        s.add_message(cid, "user", "go")
    script = textwrap.dedent(f"""
        import os
        from plugins.chat.engine.store import Store
        s = Store.open({str(ws)!r})
        w = s.begin_reply({cid}, commit_every=0.0)
        w.append("committed part. ")
        w._every = 1e9                      # the next chunks stay in memory only
        w.append("lost tail")
        os._exit(1)
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1, r.stderr
    with Store.open(ws) as s:
        assert _contents(s.branch(other)) == ["an older chat", "still here"]
        reply = s.branch(cid)[-1]
        assert reply.role == "assistant"
        assert reply.content == "committed part. " and not reply.complete
        w = s.continue_reply(reply.id)
        w.append("and the rest.")
        w.finish()
        assert s.message(reply.id).content == "committed part. and the rest."


def test_personas_are_saved_renamed_and_deleted(store: Store) -> None:
    p = Persona("Tutor", "You teach maths.", "Hi!", "friendly",
                Sampler(temperature=0.3, stop=("###",), seed=7))
    store.save_persona(p)
    assert store.persona("Tutor") == p
    cid = store.new_chat(persona="Tutor")
    store.rename_persona("Tutor", "Maths tutor")
    assert store.chat(cid).persona == "Maths tutor"
    assert store.persona("Maths tutor").sampler.stop == ("###",)
    store.save_persona(Persona("Other"))
    with pytest.raises(UserError, match="already a persona"):
        store.rename_persona("Other", "Maths tutor")
    store.delete_persona("Maths tutor")
    assert store.chat(cid).persona is None
    assert [x.name for x in store.personas()] == ["Other"]
    with pytest.raises(UserError, match="no persona named"):
        store.persona("Tutor")


def test_feedback_and_the_examples_it_gives(store: Store) -> None:
    cid = store.new_chat()
    store.add_message(cid, "user", "Capital of France?")
    a = store.add_message(cid, "assistant", "Lyon")
    store.set_feedback(a, -1, "Paris")
    store.add_message(cid, "user", "And of Italy?")
    b = store.add_message(cid, "assistant", "Rome")
    store.set_feedback(b, 1)
    assert store.feedback(a).correction == "Paris"
    ex = store.feedback_examples()
    assert [(e.reply, e.rating, e.correction) for e in ex] == [("Lyon", -1, "Paris"),
                                                               ("Rome", 1, None)]
    assert ex[1].context == [("user", "Capital of France?"), ("assistant", "Lyon"),
                             ("user", "And of Italy?")]
    with pytest.raises(UserError):
        store.set_feedback(a, 5)
    with pytest.raises(UserError, match="assistant"):
        store.set_feedback(store.branch(cid)[0].id, 1)


def test_pinned_notes_memory_intents_and_folders(store: Store, tmp_path: Path) -> None:
    cid = store.new_chat()
    n = store.pin_note(cid, "  The user's name is Ada.  ")
    store.pin_note(cid, "Answer in metric units.")
    assert [x.text for x in store.pinned_notes(cid)] == ["The user's name is Ada.",
                                                         "Answer in metric units."]
    store.edit_note(n, "The user's name is Ada Lovelace.")
    store.unpin(n)
    assert [x.text for x in store.pinned_notes(cid)] == ["Answer in metric units."]

    proposed = store.add_memory("Likes short answers", source_chat_id=cid)
    store.add_memory("Lives in Paris", approved=True)
    assert [m.text for m in store.memories()] == ["Lives in Paris"]     # only approved ones
    store.approve_memory(proposed)
    assert len(store.memories()) == 2
    store.delete_chat(cid)                        # memory outlives its chat
    assert [m.source_chat_id for m in store.memories(approved_only=False)] == [None, None]

    store.save_intent(Intent("hours", ("when are you open",), "9 to 5"))
    assert store.intents()[0].examples == ("when are you open",)
    store.delete_intent("hours")
    assert store.intents() == []

    cid = store.new_chat()
    docs = tmp_path / "docs"
    docs.mkdir()
    store.attach_folder(cid, docs)
    store.attach_folder(cid, docs)                # once only
    assert store.folders(cid) == [docs.resolve()]
    store.detach_folder(cid, docs)
    assert store.folders(cid) == []
    with pytest.raises(UserError, match="does not exist"):
        store.attach_folder(cid, tmp_path / "nope")


def test_full_text_search_across_chats(store: Store) -> None:
    a = store.new_chat("Garden")
    store.add_message(a, "user", "When should I prune the roses?")
    store.add_message(a, "assistant", "Prune roses in late winter.")
    b = store.new_chat("Cooking")
    store.add_message(b, "user", "A recipe with café au lait?")
    hits = store.search("pruning rose")          # stemmed, prefix on the last word
    assert {h.chat_title for h in hits} == {"Garden"}
    assert any("**" in h.snippet for h in hits)
    assert [h.chat_id for h in store.search("cafe")] == [b]   # accents folded
    assert store.search('AND( "') == []        # FTS syntax is plain text
    assert store.search("roses", chat_id=b) == []


def test_summary_cache_persists(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        s.summary_cache()["k"] = "a summary"
    with Store.open(tmp_path) as s:
        cache = s.summary_cache()
        assert cache["k"] == "a summary" and len(cache) == 1 and list(cache) == ["k"]
        del cache["k"]
        assert "k" not in cache


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite" * 500)
    other = path.parent / "documents.db"
    other.write_bytes(b"untouched")
    with pytest.raises(CorruptStoreError) as e:
        Store(path)
    msg = str(e.value)
    assert "chats.db" in msg and "moved aside" in msg and str(tmp_path) not in msg
    assert e.value.moved_to is not None and e.value.moved_to.name.startswith("chats.db.corrupt-")
    assert e.value.moved_to.read_bytes().startswith(b"this is not sqlite")
    assert other.read_bytes() == b"untouched"
    with Store(path) as s:                      # a fresh one starts
        assert s.chats() == []


def test_a_damaged_database_is_moved_aside(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    with Store(path) as s:
        for i in range(40):
            cid = s.new_chat(f"chat {i}")
            s.add_message(cid, "user", "x" * 3000)
        s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for p in range(2, len(data) // page):       # scribble over every page but the header
        data[p * page + 100:p * page + 400] = b"\xff" * 300
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="damaged"):
        Store(path)
    assert not path.exists()
    with Store(path) as s:
        assert s.chats() == []


def test_a_locked_database_is_not_mistaken_for_corruption(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = store_path(tmp_path)
    Store(path).close()

    def locked(*a, **k):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store_mod.sqlite3, "connect", locked)
    with pytest.raises(UserError, match="Could not open") as e:
        Store(path)
    assert not isinstance(e.value, CorruptStoreError)
    monkeypatch.undo()
    assert path.exists()


def test_migration_hook_upgrades_an_older_database(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = store_path(tmp_path)
    with Store(path) as s:
        s.new_chat("old")

    def add_colour(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE chats ADD COLUMN colour TEXT DEFAULT 'blue'")

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_mod.MIGRATIONS, 1, add_colour)
    with Store(path) as s:
        assert s.schema_version() == 2
        assert s._conn.execute("SELECT colour FROM chats").fetchone()[0] == "blue"
        assert s.chats()[0].title == "old"
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 1)
    with pytest.raises(UserError, match="newer version"):
        Store(path)
    assert path.exists()                        # a newer database is never moved aside


def test_a_long_chat_can_be_branched_and_deleted(store: Store) -> None:
    """Deleting near the root of a 1,500-message branch: one statement, not a cascade per
    level (which SQLite stops at 1,000 levels)."""
    cid = store.new_chat()
    ids = [store.add_message(cid, "user" if i % 2 == 0 else "assistant", f"m{i}")
           for i in range(1500)]
    assert len(store.branch(cid)) == 1500
    e = store.edit(ids[2], "edited")
    assert store.switch(e, -1) == ids[-1]      # back down the long branch
    other = store.new_chat()
    store.add_message(other, "user", "keep me")
    store.delete_message(ids[1])
    assert _contents(store.branch(cid)) == ["m0"]
    store.delete_chat(cid)
    assert _contents(store.branch(other)) == ["keep me"]
    assert [h.chat_id for h in store.search("m0")] == []


def test_one_store_serves_a_streaming_thread_and_a_reader(store: Store) -> None:
    import threading

    cid = store.new_chat()
    store.add_message(cid, "user", "stream please")
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            w = store.begin_reply(cid, commit_every=0.0)
            for i in range(300):
                w.append(f"{i} ")
            w.finish()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=stream)
    t.start()
    seen = 0
    while t.is_alive():
        seen = max(seen, len(store.branch(cid)))
        store.search("stream")
    t.join()
    assert errors == []
    reply = store.branch(cid)[-1]
    assert reply.complete and reply.content.split() == [str(i) for i in range(300)]


def test_a_busy_database_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        cid = s.new_chat()
        other = sqlite3.connect(s.path, timeout=0.1)
        other.execute("BEGIN IMMEDIATE")            # another process holds the write lock
        s._conn.execute("PRAGMA busy_timeout=100")
        with pytest.raises(UserError, match="busy"):
            s.add_message(cid, "user", "hello")
        other.execute("ROLLBACK")
        other.close()
        s.add_message(cid, "user", "hello")
        assert _contents(s.branch(cid)) == ["hello"]


def test_only_the_last_reply_of_a_branch_can_be_continued(store: Store) -> None:
    cid = store.new_chat()
    store.add_message(cid, "user", "a")
    a = store.add_message(cid, "assistant", "b")
    store.add_message(cid, "user", "c")
    with pytest.raises(UserError, match="last reply"):
        store.continue_reply(a)
