"""The Writer panel with pytest-qt: streaming Continue, Stop, alternatives, autosave and crash
recovery, export, training and evaluation from the window."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.writer.plugin import WriterPlugin

WAIT_MS = 120_000


@pytest.fixture
def panel(qtbot, make_host, tiny_gpt2: Path):
    plugin = WriterPlugin()
    host = make_host(plugin)
    p = plugin.create_panel(host)
    qtbot.addWidget(p)
    p.add_model(str(tiny_gpt2))
    return p


def test_continue_streams_at_the_cursor_and_undo_removes_it(qtbot, panel) -> None:
    w = panel.write_tab
    original = "First Citizen:\nSpeak. [end]"
    w.editor.setPlainText(original)
    cursor = w.editor.textCursor()
    cursor.setPosition(len("First Citizen:\nSpeak."))
    w.editor.setTextCursor(cursor)
    w.random_seed.setChecked(False)
    w.seed.setValue(3)
    w.max_new.setValue(25)
    assert (w.form.p.seed, w.form.p.max_new_tokens) == (3, 25)  # the widgets are the params
    chunks: list[str] = []
    handle = w.continue_text()
    handle.preview.connect(lambda kind, payload, data: chunks.append(payload)
                           if kind == "text" else None)
    assert not w.continue_button.isEnabled() and w.stop_button.isEnabled()
    qtbot.waitUntil(lambda: handle.is_finished and not w.busy, timeout=WAIT_MS)
    result = handle.record.result
    assert handle.record.state == "done" and result
    assert len(chunks) > 1  # it streamed
    assert w.editor.toPlainText() == "First Citizen:\nSpeak." + result + " [end]"
    assert "tokens/s" in w.speed_label.text() and "first token in" in w.speed_label.text()
    stats = result.stats  # the figures come with the result too
    assert stats["new_tokens"] >= 1 and stats["seed"] == 3
    assert 0 < stats["first_token_s"] <= stats["seconds"] and stats["tokens_per_s"] > 0
    assert w.continue_button.isEnabled()
    w.editor.undo()
    assert w.editor.toPlainText() == original


def test_stop_halts_at_once(qtbot, panel) -> None:
    w = panel.write_tab
    w.editor.setPlainText("All:\n")
    w.editor.moveCursor(w.editor.textCursor().MoveOperation.End)
    w.max_new.setValue(4000)
    handle = w.continue_text()
    qtbot.waitUntil(lambda: len(w.editor.toPlainText()) > len("All:\n"), timeout=WAIT_MS)
    w.stop()
    frozen = w.editor.toPlainText()
    assert w.continue_button.isEnabled() and not w.stop_button.isEnabled()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=WAIT_MS)
    qtbot.wait(100)
    assert w.editor.toPlainText() == frozen  # nothing arrives after Stop
    assert handle.record.state == "cancelled"


def test_alternatives_to_pick_from(qtbot, panel) -> None:
    w = panel.write_tab
    w.editor.setPlainText("You are")
    w.editor.moveCursor(w.editor.textCursor().MoveOperation.End)
    w.alt_count.setValue(3)
    w.max_new.setValue(12)
    handle = w.request_alternatives()
    qtbot.waitUntil(lambda: handle.is_finished and w._alt_handle is None, timeout=WAIT_MS)
    texts = list(handle.record.result)
    assert len(texts) == 3 and w.alt_list.count() == 3
    assert [c.value for c in w.alt_list.cards] == texts  # one card each
    w.alt_list.cards[1].insert.click()
    assert w.editor.toPlainText() == "You are" + texts[1]


def test_no_model_gives_a_message(qtbot, make_host) -> None:
    plugin = WriterPlugin()
    p = plugin.create_panel(make_host(plugin))
    qtbot.addWidget(p)
    assert p.current_model() is None
    assert p.write_tab.continue_text() is None
    assert "Choose a model" in p.write_tab.status.text()


def test_autosave_and_recovery_after_a_crash(qtbot, make_host, tmp_path: Path) -> None:
    plugin = WriterPlugin()
    host = make_host(plugin)
    first = plugin.create_panel(host)
    qtbot.addWidget(first)
    first.write_tab.editor.insertPlainText("Chapter one\nIt was a dark night.")
    qtbot.waitUntil(lambda: first.write_tab.save_label.text().startswith("Saved "),
                    timeout=10_000)  # the idle timer saved it
    doc = first.write_tab.doc_id
    # the process "crashes": no shutdown(); a new panel opens on the same workspace
    second = plugin.create_panel(host)
    qtbot.addWidget(second)
    assert second.write_tab.doc_id == doc
    assert second.write_tab.editor.toPlainText() == "Chapter one\nIt was a dark night."
    assert "Recovered" in second.write_tab.save_label.text()
    assert second.write_tab.docs.currentText() == "Chapter one"
    out = second.write_tab.export_to(tmp_path / "story.md")
    # the text, then its provenance in an HTML comment (invisible once rendered)
    text, block = out.read_text(encoding="utf-8").split("\n\n<!-- generative-studio:", 1)
    assert text == "Chapter one\nIt was a dark night." and block.startswith("provenance {")
    second.shutdown()  # a clean exit: nothing to recover next time
    third = plugin.create_panel(host)
    qtbot.addWidget(third)
    assert "Recovered" not in third.write_tab.save_label.text()
    assert third.write_tab.editor.toPlainText() == "Chapter one\nIt was a dark night."


def test_opening_a_non_utf8_file_is_explained(qtbot, panel, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    bad = tmp_path / "old.txt"
    bad.write_bytes("Grüße".encode("cp1252"))
    assert panel.write_tab.import_file(bad) is None
    assert shown and "old.txt" in shown[0] and "byte offset 2" in shown[0]
    good = tmp_path / "new.md"
    good.write_text("# A title\nbody", encoding="utf-8")
    doc = panel.write_tab.import_file(good)
    assert doc and panel.write_tab.editor.toPlainText() == "# A title\nbody"
    assert good.read_text(encoding="utf-8") == "# A title\nbody"  # the source is untouched


def test_train_then_evaluate_from_the_panel(qtbot, panel, corpus_file: Path) -> None:
    from studio import manifest

    t = panel.train_tab
    t.form.set_value("data", corpus_file)
    h = t.inspect_corpus()
    qtbot.waitUntil(lambda: h.is_finished and t.stats is not None, timeout=WAIT_MS)
    assert "characters" in t.stats_label.text() and "tokens" in t.stats_label.text()
    assert "parameters" in t.preset.currentText()
    t.steps.setValue(3)
    t.batch.setValue(2)
    t.block.setValue(16)
    handle = t.start_training()
    qtbot.waitUntil(lambda: handle.is_finished and t.handle is None, timeout=WAIT_MS)
    assert handle.record.state == "done", handle.record.error
    model_dir = str(handle.record.result)
    assert panel.current_model() == model_dir  # the new model is chosen
    panel.picker.refresh(wait=True)
    assert "Studio run" in panel.picker.combo.currentText()  # listed as a trained model
    run = handle.record.run_dir
    assert manifest.read(run).params["steps"] == 3  # the form's values are the run's settings

    e = panel.eval_tab
    e.form.set_value("data", corpus_file)
    eh = e.evaluate()
    qtbot.waitUntil(lambda: eh.is_finished and e.handle is None, timeout=WAIT_MS)
    assert e.result is not None and e.result["perplexity"] > 1
    assert float(e.bpc.text()) == pytest.approx(e.result["bits_per_char"], abs=1e-4)

    # reopening the run puts its settings back in the Train tab
    t.steps.setValue(50)
    assert panel.host.reopen(run)
    assert t.form.p.steps == 3 and t.steps.value() == 3 and t.last_run == run


def test_settings_are_remembered_between_sessions(qtbot, make_host, tiny_gpt2: Path) -> None:
    plugin = WriterPlugin()
    host = make_host(plugin)
    first = plugin.create_panel(host)
    qtbot.addWidget(first)
    first.add_model(str(tiny_gpt2))
    first.write_tab.temperature.setValue(1.3)
    first.write_tab.random_seed.setChecked(False)
    first.write_tab.seed.setValue(42)
    first.train_tab.steps.setValue(123)
    first.shutdown()
    second = plugin.create_panel(host)
    qtbot.addWidget(second)
    assert second.current_model() == str(tiny_gpt2)
    w = second.write_tab
    assert w.temperature.value() == pytest.approx(1.3)
    assert not w.random_seed.isChecked() and w.seed.value() == 42
    assert second.train_tab.steps.value() == 123


def test_bad_settings_are_shown_not_submitted(qtbot, panel) -> None:
    w = panel.write_tab
    w.form.set_value("top_p", 0.0)  # below its range: the form says so, nothing is submitted
    assert w.continue_text() is None
    assert "Top-p" in w.status.text()


def test_sampler_styles_set_the_numbers(qtbot, make_host, tiny_gpt2: Path) -> None:
    """Choosing a style shows its numbers; a number edited by hand makes the style Custom
    (or the preset those numbers are); the style is remembered and reaches the job."""
    plugin = WriterPlugin()
    host = make_host(plugin)
    first = plugin.create_panel(host)
    qtbot.addWidget(first)
    w = first.write_tab
    assert w.sampler.currentData() == "custom"
    w.sampler.setCurrentIndex(w.sampler.findData("creative"))
    assert w.form.p.sampler == "creative"
    assert (w.temperature.value(), w.top_k.value(), w.top_p.value(), w.min_p.value()) == \
        (pytest.approx(1.2), 0, pytest.approx(1.0), pytest.approx(0.1))
    w.min_p.setValue(0.3)
    assert w.form.p.sampler == "custom" and w.sampler.currentData() == "custom"
    w.min_p.setValue(0.1)  # the preset's numbers again
    assert w.sampler.currentData() == "creative"
    p = w.generate_params(str(tiny_gpt2), "Speak")
    assert p is not None and p.sampler == "creative"
    s = p.settings()
    assert (s.temperature, s.min_p, s.top_k) == (1.2, 0.1, 0)
    w.sampler.setCurrentIndex(w.sampler.findData("precise"))
    first.shutdown()
    second = plugin.create_panel(host)
    qtbot.addWidget(second)
    assert second.write_tab.sampler.currentData() == "precise"
    assert second.write_tab.temperature.value() == pytest.approx(0.3)


def _drop(widget, paths: list[Path], write_tab=None) -> bool:
    """Drag ``paths`` over ``widget`` and drop them, as a file manager would (the handlers
    are called directly: offscreen, Qt delivers a drop only inside a real drag); True when
    both the drag and the drop were taken."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    drop.ignore()
    if write_tab is not None:  # the editor's viewport: the tab's event filter
        write_tab.eventFilter(widget, enter)
        if enter.isAccepted():
            write_tab.eventFilter(widget, drop)
    else:
        widget.dragEnterEvent(enter)
        if enter.isAccepted():
            widget.dropEvent(drop)
    return enter.isAccepted() and drop.isAccepted()


def test_model_text_is_tinted_but_saved_plain(qtbot, panel) -> None:
    from PySide6.QtGui import QTextCursor
    from PySide6.QtTest import QTest

    from plugins.writer.ui.cards import is_generated

    w = panel.write_tab
    w.editor.setPlainText("Mine.")
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    w.random_seed.setChecked(False)
    w.max_new.setValue(8)
    handle = w.continue_text()
    qtbot.waitUntil(lambda: handle.is_finished and not w.busy, timeout=WAIT_MS)
    added = str(handle.record.result)
    assert added
    at = QTextCursor(w.editor.document())
    at.setPosition(2)
    assert not is_generated(at.charFormat())  # the user's own words
    at.setPosition(len("Mine.") + len(added))
    assert is_generated(at.charFormat())  # the model's
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    QTest.keyClicks(w.editor, " Me again")  # typing after it is the user's again
    at.setPosition(len(w.editor.toPlainText()))
    assert not is_generated(at.charFormat())
    w.autosave()
    assert w.store.load(w.doc_id) == "Mine." + added + " Me again"  # no tint in the file


def test_dropped_text_files_open_as_documents_or_train_data(qtbot, panel,
                                                            tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Dropped words.\n", encoding="utf-8")
    w = panel.write_tab
    before = len(w.store.list())
    assert _drop(w.editor.viewport(), [note], w)  # onto the editor: a new document
    assert w.editor.toPlainText() == "Dropped words.\n" and len(w.store.list()) == before + 1
    assert note.read_text(encoding="utf-8") == "Dropped words.\n"  # the file is untouched
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG")
    assert not _drop(w.editor.viewport(), [image], w)  # not text: refused
    t = panel.train_tab
    assert _drop(t, [tmp_path])  # onto Train: the text to train on
    assert t.form.p.data == tmp_path and tmp_path.name in t.stats_label.text()


def test_a_quick_start_from_the_welcome_page_shows_in_the_train_tab(
        qtbot, panel, corpus_file: Path) -> None:
    from plugins.writer.params import TrainParams

    p = TrainParams(data=corpus_file, steps=2, batch_size=2, block_size=16)
    handle = panel.host.submit("train", p, out=panel.host.runs_dir() / "quick")
    panel.host.job_started.emit("train", p, handle)
    t = panel.train_tab
    assert panel.tabs.currentWidget() is t
    assert t.form.p.data == corpus_file and t.steps.value() == 2
    assert t.handle is handle and not t.train_button.isEnabled()
    qtbot.waitUntil(lambda: handle.is_finished and t.handle is None, timeout=WAIT_MS)
    assert handle.record.state == "done", handle.record.error
    assert t.result.text.text() == "Saved" and t.result.open_button.text() == "Write with it"
    assert panel.current_model() == str(handle.record.result)
    t.result.open_button.click()
    assert panel.tabs.currentWidget() is panel.write_tab


def test_alternatives_and_esc_in_the_editor(qtbot, panel) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    w = panel.write_tab
    w.editor.setPlainText("All:\n")
    w.editor.moveCursor(w.editor.textCursor().MoveOperation.End)
    w.max_new.setValue(4000)
    handle = w.continue_text()
    qtbot.waitUntil(lambda: len(w.editor.toPlainText()) > len("All:\n"), timeout=WAIT_MS)
    QTest.keyClick(w.editor, Qt.Key.Key_Escape)  # Esc in the editor stops the writing
    assert not w.busy and w.continue_button.isEnabled()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=WAIT_MS)
    assert handle.record.state == "cancelled"
