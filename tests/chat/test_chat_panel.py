"""The Chat panel with pytest-qt on a tiny Llama built in the tests: a reply streams into the
view and the store, regenerate and the arrows between alternatives, editing as a new branch,
Stop at once and Continue, feedback, chats exported, imported, searched, renamed and deleted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from plugins.chat.plugin import ChatPlugin

WAIT_MS = 120_000


@pytest.fixture
def panel(qtbot, make_host, tiny_chat_model: Path):
    plugin = ChatPlugin()
    p = plugin.create_panel(make_host(plugin))
    qtbot.addWidget(p)
    p.confirm = False
    qtbot.waitUntil(lambda: p.ready, timeout=10_000)
    p.use_model(tiny_chat_model)
    p.form.set_value("backend", "transformers")  # no GGUF copy per test workspace
    p.form.set_value("max_new_tokens", 24)
    yield p
    p.shutdown()


def send(qtbot, panel, text: str) -> Any:
    panel.composer.set_text(text)
    handle = panel.send()
    assert handle is not None, panel.status.text()
    qtbot.waitUntil(lambda: handle.is_finished and not panel.busy, timeout=WAIT_MS)
    assert handle.record.state == "done", handle.record.error
    return handle


def test_a_reply_streams_into_the_view_and_the_store(qtbot, panel) -> None:
    panel.composer.set_text("Hello")
    seen: list[str] = []
    handle = panel.send()
    assert handle is not None and not panel.composer.send_button.isEnabled()
    assert panel.composer.text() == ""
    assert "Hello" in panel.view.toPlainText()  # the message shows before the model is loaded
    handle.preview.connect(lambda kind, payload, data: seen.append(kind))
    qtbot.waitUntil(lambda: handle.is_finished and not panel.busy, timeout=WAIT_MS)
    out = handle.record.result
    assert handle.record.state == "done" and out.text
    assert "reply" in seen and "text" in seen and "stats" in seen
    assert panel.view.shown_stream_text == out.text  # what streamed is what was kept
    store = panel.store
    chat = store.chat(panel.chat_id)
    assert chat.title == "Hello"
    branch = store.branch(chat.id)
    assert [m.role for m in branch] == ["user", "assistant"]
    assert branch[-1].content == out.text and branch[-1].complete
    view = panel.view.toPlainText()
    assert out.text.strip().splitlines()[0] in view
    assert "tokens/s" in view and "s to first token" in view and "context tokens" in view
    assert "tokens/s" in panel.status.text()
    assert "of 256 tokens" in panel.context_bar.text()
    assert panel.chat_list.chat_ids() == [chat.id]


def test_regenerate_keeps_the_old_reply_and_the_arrows_switch(qtbot, panel) -> None:
    send(qtbot, panel, "Tell me a joke")
    first = panel.items[-1]
    panel.form.set_value("seed", 7)  # another sample
    handle = panel.regenerate(first.id)
    qtbot.waitUntil(lambda: handle.is_finished and not panel.busy, timeout=WAIT_MS)
    second = panel.items[-1]
    assert second.id != first.id and (second.position, second.count) == (2, 2)
    assert "2 / 2" in panel.view.toPlainText()
    panel.view.anchorClicked.emit(panel.view.link_for("prev", second.id))  # the ‹ arrow
    assert panel.items[-1].id == first.id and panel.items[-1].text == first.text
    assert "1 / 2" in panel.view.toPlainText()
    panel.view.anchorClicked.emit(panel.view.link_for("next", first.id))
    assert panel.items[-1].id == second.id
    # a link the model could write into a reply (no nonce) does nothing
    from PySide6.QtCore import QUrl

    panel.view.anchorClicked.emit(QUrl(f"chat-action:x:delete:{second.id}"))
    assert panel.store.message(second.id)


def test_editing_a_message_makes_a_branch_and_answers_it(qtbot, panel) -> None:
    send(qtbot, panel, "Good morning")
    user, reply = panel.items[-2], panel.items[-1]
    panel.begin_edit(user.id)
    assert panel.composer.text() == "Good morning"
    assert not panel.composer.edit_bar.isHidden()
    panel.composer.set_text("How are you?")
    handle = panel.send()  # Save
    qtbot.waitUntil(lambda: handle.is_finished and not panel.busy, timeout=WAIT_MS)
    assert handle.record.state == "done"
    edited = panel.items[-2]
    assert edited.text == "How are you?" and (edited.position, edited.count) == (2, 2)
    assert panel.items[-1].id != reply.id
    panel.switch(edited.id, -1)  # back to the original message: its reply is there
    assert [m.id for m in panel.items[-2:]] == [user.id, reply.id]
    # editing a reply saves a new alternative, without asking the model
    panel.begin_edit(reply.id)
    panel.composer.set_text("**Fine**, thanks.")
    assert panel.send() is None
    assert panel.items[-1].text == "**Fine**, thanks." and panel.items[-1].count == 2
    assert "Fine, thanks." in panel.view.toPlainText()  # Markdown rendered, not raw
    # delete removes the message and what follows it on this branch
    panel.delete_message(panel.items[-1].id)
    assert panel.items[-1].id == reply.id


def test_stop_freezes_the_view_at_once_and_continue_goes_on(qtbot, panel,
                                                            monkeypatch) -> None:
    from plugins.chat.engine.backends.hf import TransformersBackend

    stream = TransformersBackend.stream

    def slow(self, *a: Any, **kw: Any) -> Any:  # a slow model: Stop lands mid-reply
        for chunk in stream(self, *a, **kw):
            time.sleep(0.03)
            yield chunk

    monkeypatch.setattr(TransformersBackend, "stream", slow)
    panel.form.set_value("max_new_tokens", 120)
    panel.composer.set_text("Hello")
    handle = panel.send()
    qtbot.waitUntil(lambda: len(panel._text) >= 3, timeout=WAIT_MS)
    panel.stop()
    frozen = panel.view.toPlainText()
    assert panel.composer.send_button.isEnabled() and not panel.busy
    qtbot.waitUntil(lambda: handle.is_finished, timeout=WAIT_MS)
    assert handle.record.state == "cancelled"
    reply = panel.items[-1]
    assert not reply.complete and reply.text  # kept, unfinished
    assert "unfinished" in panel.view.toPlainText() and "Continue" in panel.view.toPlainText()
    assert frozen  # (redrawn from the store once the job ended)
    monkeypatch.setattr(TransformersBackend, "stream", stream)
    panel.form.set_value("max_new_tokens", 8)
    handle = panel.continue_reply(reply.id)
    qtbot.waitUntil(lambda: handle.is_finished and not panel.busy, timeout=WAIT_MS)
    assert handle.record.state == "done"
    after = panel.items[-1]
    assert after.id == reply.id and after.text.startswith(reply.text) and after.complete


def test_feedback_is_stored(qtbot, panel) -> None:
    send(qtbot, panel, "What is your name?")
    mid = panel.items[-1].id
    panel.view.anchorClicked.emit(panel.view.link_for("like", mid))
    assert panel.store.feedback(mid).rating == 1 and "Liked ✓" in panel.view.toPlainText()
    panel.view.anchorClicked.emit(panel.view.link_for("like", mid))  # again: cleared
    assert panel.store.feedback(mid).rating == 0
    panel.rate(mid, -1, "I am the studio's assistant.")
    fb = panel.store.feedback(mid)
    assert (fb.rating, fb.correction) == (-1, "I am the studio's assistant.")
    assert "Your better answer: I am the studio's assistant." in panel.view.toPlainText()
    examples = panel.store.feedback_examples()
    assert [e.message_id for e in examples] == [mid]


def test_chats_exported_imported_searched_renamed_and_deleted(qtbot, panel,
                                                              tmp_path: Path) -> None:
    store = panel.store
    a = store.new_chat(title="Tea")
    store.add_message(a, "user", "How do I brew green tea?")
    store.add_message(a, "assistant", "Use water at **80 °C**:\n\n- 2 g of leaves\n- 2 minutes")
    b = store.new_chat(title="Bread")
    store.add_message(b, "user", "A sourdough question")
    panel.refresh_chats()
    panel.open_chat(a)
    assert "80 °C" in panel.view.toPlainText() and "2 g of leaves" in panel.view.toPlainText()
    assert "**" not in panel.view.toPlainText()  # Markdown, rendered
    md, js = tmp_path / "tea.md", tmp_path / "tea.json"
    for out in (md, js):
        h = panel.export_chat(a, out)
        qtbot.waitUntil(lambda h=h: h.is_finished, timeout=WAIT_MS)
        assert h.record.state == "done", h.record.error
    assert "green tea" in md.read_text(encoding="utf-8")
    assert json.loads(js.read_text(encoding="utf-8"))["title"] == "Tea"
    h = panel.import_chat(js)
    qtbot.waitUntil(lambda: h.is_finished and panel.chat_id == h.record.result,
                    timeout=WAIT_MS)
    assert panel.items[0].text == "How do I brew green tea?"
    panel.chat_list.search.setText("sourdo")
    qtbot.waitUntil(lambda: panel.chat_list.list.count() == 1, timeout=5_000)
    panel.chat_list._clicked(panel.chat_list.list.item(0))
    assert panel.chat_id == b
    panel.chat_list.search.setText("")
    qtbot.waitUntil(lambda: len(panel.chat_list.chat_ids()) == 3, timeout=5_000)
    panel.rename_chat(b, "Baking")
    assert store.chat(b).title == "Baking" and panel.title.text() == "Baking"
    panel.delete_chat(b)
    assert b not in panel.chat_list.chat_ids() and panel.chat_id != b


def test_persona_saved_exported_imported_and_used(qtbot, panel, tmp_path: Path) -> None:
    sec = panel.persona_section
    sec.name.setText("Chef")
    sec.system.setPlainText("You are a patient cooking teacher.")
    sec.greeting.setText("Bonjour! What shall we cook?")
    sec.tone.setCurrentIndex(sec.tone.findData("friendly"))
    sec.temperature.setValue(0.3)
    sec.fresh_seed.setChecked(False)
    sec.seed.setValue(11)
    sec.stop.setText("END | \\n\\n")
    saved = sec.save()
    assert saved is not None and panel.persona.name == "Chef"
    p = panel.store.persona("Chef")
    assert (p.tone, p.sampler.temperature, p.sampler.seed, p.sampler.stop) == \
        ("friendly", 0.3, 11, ("END", "\n\n"))
    out = sec.export_file(tmp_path / "chef.json")
    assert out is not None and json.loads(out.read_text(encoding="utf-8"))["personas"][0][
        "name"] == "Chef"
    chat = panel.new_chat()  # the persona's greeting opens the chat
    assert panel.store.chat(chat).persona == "Chef"
    assert panel.items[0].text == "Bonjour! What shall we cook?"
    assert "Chef" in panel.view.toPlainText()
    sec.temperature.setValue(9.0)  # out of range for the spin box: clamped, never invalid
    sec.name.setText("")
    assert sec.save() is None and "name" in sec.message.text()
    panel.store.delete_persona("Chef")
    assert [x.name for x in sec.import_file(out)] == ["Chef"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "X", "temperature": "hot"}', encoding="utf-8")
    assert sec.import_file(bad) == [] and "unknown field" in sec.message.text()


def test_saved_answers_notes_and_memory(qtbot, panel) -> None:
    sec = panel.intents_section
    sec.name.setText("opening hours")
    sec.examples.setPlainText("When are you open?\nWhat are your opening hours?")
    sec.answer.setPlainText("We are open **9 to 5**, Monday to Friday.")
    assert sec.save() is not None and sec.list.count() == 1
    handle = send(qtbot, panel, "when are you open")
    assert handle.record.result.intent == "opening hours"
    assert "We are open 9 to 5" in panel.view.toPlainText()
    assert "saved answer" in panel.view.toPlainText()
    notes = panel.notes_section
    notes.pin_text.setText("My name is Ada")
    notes.pin()
    notes.memory_text.setText("I like short answers")
    notes.remember()
    assert [n.text for n in panel.store.pinned_notes(panel.chat_id)] == ["My name is Ada"]
    assert [m.text for m in panel.store.memories()] == ["I like short answers"]
    notes.memory.item(0).setCheckState(notes.memory.item(0).checkState().Unchecked)
    assert panel.store.memories() == []  # only ticked notes reach a prompt


def test_a_model_without_a_chat_format_asks_for_one(qtbot, panel, tmp_path: Path) -> None:
    from chat_models import build_tiny_llama

    base = build_tiny_llama(tmp_path / "base-model", template=None, fit_steps=0)
    panel.use_model(base)
    qtbot.waitUntil(lambda: not panel.composer.template_bar.isHidden(), timeout=10_000)
    assert "base-model does not say how it expects" in panel.composer.template_bar.label.text()
    combo = panel.composer.template_combo
    combo.setCurrentIndex(combo.findData("chatml"))
    panel.composer.use_template.click()
    assert panel.composer.template_bar.isHidden() and panel.form.p.template == "chatml"
    send(qtbot, panel, "Hello")
    assert panel.store.chat(panel.chat_id).settings["template"] == "chatml"
    assert panel.items[-1].meta["template"].startswith("ChatML")


def test_compare_two_models_side_by_side(qtbot, panel, tiny_chat_model: Path) -> None:
    panel.compare_section.picker_b.set_path(tiny_chat_model)
    panel.composer.set_text("Hello")
    handle = panel.compare()
    assert handle is not None and panel.compare_view.isVisibleTo(panel)
    qtbot.waitUntil(lambda: handle.is_finished and not panel.busy, timeout=WAIT_MS)
    assert handle.record.state == "done", handle.record.error
    out = handle.record.result
    assert panel.compare_view.texts == [out.a.text, out.b.text]
    assert "tokens/s" in panel.compare_view.figures[1].text()
    last = panel.items[-1]
    assert last.id == out.a.message_id and last.count == 2  # A shown, B one arrow away
    assert "model A: tiny-chat" in panel.view.toPlainText()


def test_local_api_starts_with_a_key_and_stops(qtbot, panel) -> None:
    api = panel.api_section
    api.form.set_value("port", 0)
    handle = api.toggle()
    qtbot.waitUntil(lambda: bool(api.token.text()), timeout=WAIT_MS)
    assert api.address.text().startswith("http://127.0.0.1:")
    assert api.address.text().endswith("/v1/chat/completions") and len(api.token.text()) > 20
    api.toggle()
    qtbot.waitUntil(lambda: handle.is_finished and not api.running, timeout=WAIT_MS)
    assert api.token.text() == "" and api.start.text() == "Start"


def test_improve_this_model_from_feedback(qtbot, panel) -> None:
    send(qtbot, panel, "What is the capital of France?")
    mid = panel.items[-1].id
    panel.rate(mid, -1, "The capital of France is Paris.")
    sec = panel.improve_section
    sec.refresh()
    qtbot.waitUntil(lambda: "1 corrected" in sec.summary.text(), timeout=10_000)
    sec.form.set_value("steps", 2)
    sec.form.set_value("block_size", 64)
    handle = sec.improve()
    assert handle is not None
    qtbot.waitUntil(lambda: handle.is_finished and sec.handle is None, timeout=WAIT_MS)
    assert handle.record.state == "done", handle.record.error
    adapter = sec.result
    assert adapter is not None and adapter.is_dir()
    assert "improved model is in the model list" in sec.message.text()
    sec.compare_button.click()  # the original as A, the adapter as B
    assert panel.model() == sec.base and panel.compare_section.model_b() == adapter
    sec.use_button.click()
    assert panel.model() == adapter
