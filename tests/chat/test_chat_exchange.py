"""Export as Markdown and JSON, import of our JSON (round trip) and OpenAI messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins.chat.engine.exchange import (
    chat_to_dict,
    chat_to_markdown,
    export_chat,
    import_chat,
    stats_line,
)
from plugins.chat.engine.store import ReplyStats, Store
from studio.errors import UserError


def _branched_chat(store: Store) -> tuple[int, dict[str, int]]:
    cid = store.new_chat("Colours", persona="Tutor", model="/home/ada/models/SmolLM2-135M")
    store.pin_note(cid, "Keep answers short.")
    u = store.add_message(cid, "user", "Name a colour")
    red = store.add_message(cid, "assistant", "Red")
    store.set_feedback(red, -1, "Blue, like the sky")
    w = store.begin_reply(cid, parent_id=u)
    w.append("Green")
    green = w.finish(ReplyStats(ttft_s=0.25, tokens=3, tokens_per_s=12.34, context_used=30,
                                context_total=2048, backend="transformers",
                                model="/home/ada/models/SmolLM2-135M"))
    store.add_message(cid, "user", "Another?")
    with store.begin_reply(cid) as w2:
        w2.append("Yel")                        # left unfinished
    return cid, {"user": u, "red": red, "green": green}


def test_markdown_shows_the_active_branch_with_stats(store: Store) -> None:
    cid, _ = _branched_chat(store)
    md = chat_to_markdown(store, cid)
    assert md.startswith("# Colours\n")
    assert "*Persona: Tutor · Model: SmolLM2-135M*" in md
    assert "- Keep answers short." in md
    assert "**You**\n\nName a colour" in md and "**Tutor**\n\nGreen" in md
    assert "Red" not in md
    assert "*12.3 tokens/s · first token after 0.25 s · 30 of 2,048 context tokens · " \
           "transformers*" in md
    assert "**Tutor** *(unfinished)*\n\nYel" in md
    assert "/home/ada" not in md


def test_markdown_with_all_branches_shows_where_each_leaves(store: Store) -> None:
    cid, _ = _branched_chat(store)
    md = chat_to_markdown(store, cid, all_branches=True)
    assert "## Other branches" in md and "### Branch 1" in md
    other = md.split("## Other branches")[1]
    assert "*Continues after: “Name a colour”*" in other and "Red" in other
    assert "Green" not in other


def test_json_round_trip_keeps_the_tree_stats_feedback_and_notes(store: Store,
                                                                 tmp_path: Path) -> None:
    cid, _ = _branched_chat(store)
    out = export_chat(store, cid, tmp_path / "chat.json", all_branches=True)
    text = out.read_text()
    assert "/home/ada" not in text
    data = json.loads(text)
    assert data["format"] == "studio-chat" and data["version"] == 1
    assert data["model"] == "SmolLM2-135M" and len(data["messages"]) == 5
    new = import_chat(store, out)
    assert store.chat(new).title == "Colours" and store.chat(new).persona == "Tutor"
    assert [m.content for m in store.branch(new)] == ["Name a colour", "Green", "Another?", "Yel"]
    assert not store.branch(new)[-1].complete
    green = store.branch(new)[1]
    assert [s.content for s in store.siblings(green.id)] == ["Red", "Green"]
    red = store.siblings(green.id)[0]
    assert store.feedback(red.id).correction == "Blue, like the sky"
    assert store.stats(green.id).tokens_per_s == 12.34
    assert store.stats(green.id).model == "SmolLM2-135M"
    assert [n.text for n in store.pinned_notes(new)] == ["Keep answers short."]
    # and exporting the import gives the same document (ids are local to the file)
    again = chat_to_dict(store, new, all_branches=True)
    strip = [{k: v for k, v in m.items() if k != "created"} for m in data["messages"]]
    assert [{k: v for k, v in m.items() if k != "created"} for m in again["messages"]] == strip


def test_active_branch_json_has_only_that_branch(store: Store) -> None:
    cid, _ = _branched_chat(store)
    data = chat_to_dict(store, cid)
    assert [m["content"] for m in data["messages"]] == ["Name a colour", "Green", "Another?",
                                                        "Yel"]
    assert data["branches"] == "active" and data["active"] == 4


def test_openai_messages_import(store: Store, tmp_path: Path) -> None:
    msgs = [{"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                         {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello.", "name": "bot"}]
    cid = import_chat(store, msgs)
    assert [(m.role, m.content) for m in store.branch(cid)] == [
        ("system", "Be terse."), ("user", "Hi\nthere"), ("assistant", "Hello.")]
    f = tmp_path / "conv.json"
    f.write_text(json.dumps({"title": "From elsewhere", "messages": msgs[1:]}))
    cid = import_chat(store, f)
    assert store.chat(cid).title == "From elsewhere" and len(store.branch(cid)) == 2


@pytest.mark.parametrize(("data", "message"), [
    ({"mapping": {}}, "not a chat this studio can import"),
    (42, "not a chat this studio can import"),
    ([], "no messages"),
    ([{"role": "tool", "content": "42"}], "role 'tool'"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
     "type 'image_url'"),
    ([{"role": "assistant", "content": None}], "no text content"),
    ([1, 2], "not an object"),
    ({"format": "studio-chat-personas", "version": 1}, "not a chat"),
    ({"format": "studio-chat", "version": 9, "messages": []}, "newer version"),
    ({"format": "studio-chat", "version": 1, "messages": [
        {"id": 1, "parent": 7, "role": "user", "content": "x"}]}, "does not come before"),
    ({"format": "studio-chat", "version": 1, "messages": [
        {"id": 1, "parent": None, "role": "user", "content": "x"},
        {"id": 1, "parent": None, "role": "user", "content": "y"}]}, "repeated id"),
])
def test_bad_imports_say_what_was_expected(store: Store, data, message: str) -> None:
    with pytest.raises(UserError, match=message):
        import_chat(store, data)
    assert store.chats() == []                  # nothing half-imported


def test_bad_files(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text("[{")
    with pytest.raises(UserError, match=r"x\.json is not valid JSON"):
        import_chat(store, f)
    with pytest.raises(UserError, match=r"No file named nope\.json"):
        import_chat(store, tmp_path / "nope.json")
    cid = store.new_chat()
    with pytest.raises(UserError, match=r"\.md .*\.json"):
        export_chat(store, cid, tmp_path / "x.txt")


def test_stats_line_skips_unknown_figures() -> None:
    assert stats_line(ReplyStats()) == ""
    assert stats_line(ReplyStats(tokens_per_s=5, backend="llama.cpp")) == \
        "5.0 tokens/s · llama.cpp"
