"""The composer panel with a DAW in mind: SoundFont sound, instruments, Continue, dragging a
phrase out as a file, undo and redo in the strip (pytest-qt, offscreen)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from music_helpers import PHRASE_A, PHRASE_B
from sf2_helpers import harmonic_ratio, write_sine_sf2
from test_music_soundfont import needs_fluidsynth

from plugins.music.engine.phrase import Phrase
from plugins.music.plugin import MusicPlugin


@pytest.fixture
def panel(make_host, qtbot, memorised_model: Path):
    from plugins.music.ui.panel import MusicPanel

    host = make_host(MusicPlugin())
    shutil.copytree(memorised_model, host.runs_dir() / "memo")
    p = MusicPanel(host)
    qtbot.addWidget(p)
    p.resize(1300, 820)
    p.show()
    qtbot.waitUntil(lambda: p.transport_bar.choice is not None, timeout=10_000)
    yield p
    p.shutdown()


def _two(panel) -> tuple[Phrase, Phrase]:
    a, b = Phrase(PHRASE_A, 32, "melody", "A"), Phrase(PHRASE_B, 32, "melody", "B")
    panel.show_phrases([a, b], "Two phrases", "")
    return a, b


def test_resume_training_is_not_called_continue(panel) -> None:
    from PySide6.QtWidgets import QPushButton

    texts = [b.text() for b in panel.train_box.findChildren(QPushButton)]
    assert "Resume training" in texts and "Continue" not in texts
    assert panel.generate_box.continue_btn.text() == "Continue"


def test_continue_the_selected_phrase_then_undo(panel, qtbot) -> None:
    a, _b = _two(panel)
    panel.strip.select(0)
    panel.generate_box.continue_form.editor("n").setValue(3)
    panel.generate_box.continue_form.editor("bars").setValue(1)
    assert panel.generate_box.continue_btn.isEnabled()
    panel.generate_box.continue_btn.click()
    qtbot.waitUntil(lambda: len(panel.phrases) == 4, timeout=60_000)
    qtbot.waitUntil(lambda: not panel.handles, timeout=60_000)
    assert panel.phrases[0].label == "A"
    assert [p.label for p in panel.phrases[1:]] == [f"continuation {i}" for i in (1, 2, 3)]
    assert all(p.steps == 16 for p in panel.phrases[1:])
    assert "continuations of A" in panel.title.text()
    panel.undo_stack.undo()  # the strip before the job came back
    assert [p.label for p in panel.phrases] == ["A", "B"]
    assert panel.phrases[0] is a and "Two phrases" in panel.title.text()
    panel.undo_stack.redo()
    assert len(panel.phrases) == 4


def test_strip_edits_undo_and_redo(panel, qtbot) -> None:
    from PySide6.QtCore import Qt

    a, b = _two(panel)
    panel.strip.select(0)
    panel.strip.setFocus()
    qtbot.keyClick(panel.strip, Qt.Key.Key_Delete)
    assert panel.phrases == [b]
    assert panel.undo_btn.isEnabled() and "remove a" in panel.undo_btn.toolTip().lower()
    qtbot.keyClick(panel.strip, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.phrases == [a, b]
    panel.move_phrase(0, 1)
    assert panel.phrases == [b, a] and panel.strip.selected == 1
    panel.clear_btn.click()
    assert panel.phrases == []
    panel.undo_btn.click()
    assert panel.phrases == [b, a]
    panel.undo_btn.click()
    assert panel.phrases == [a, b]
    panel.redo_btn.click()
    assert panel.phrases == [b, a]
    # live training samples refresh the strip without filling the stack
    count = panel.undo_stack.count()
    panel.show_phrases([a], "Training samples", "training")
    assert panel.undo_stack.count() == count


def test_drag_a_phrase_out_as_a_midi_file(panel, qtbot, tmp_path: Path) -> None:
    """A drag out of the strip carries a local .mid file (what a DAW or a file manager takes)
    holding the phrase with the transport's tempo and instruments, stamped."""
    import pretty_midi
    from PySide6.QtCore import QPoint, Qt

    from plugins.common import provenance

    _two(panel)
    panel.transport_bar.program_combos["melody"].setCurrentIndex(40)  # Violin
    dragged = []
    panel.strip.exec_drag = lambda drag: dragged.append(drag.mimeData()) or \
        Qt.DropAction.CopyAction
    centre = panel.strip.tile_rect(1).center().toPoint()
    qtbot.mousePress(panel.strip, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(panel.strip, centre + QPoint(40, 30))
    assert len(dragged) == 1
    urls = dragged[0].urls()
    assert len(urls) == 1 and urls[0].isLocalFile()
    path = Path(urls[0].toLocalFile())
    assert path.suffix == ".mid" and path.is_file() and path.name.startswith("B-")
    pm = pretty_midi.PrettyMIDI(str(path))
    assert pm.instruments[0].program == 40
    assert [n.pitch for n in pm.instruments[0].notes] == PHRASE_B[:, 0].tolist()
    prov = provenance.read(path)
    assert prov is not None and prov.params.get("melody_program") == 40
    assert str(Path.home()) not in path.read_bytes().decode("latin-1")
    # the same phrase again: the same file; nothing left half-written
    assert panel.drag_file(1) == path
    assert not [p for p in path.parent.iterdir() if p.suffix not in (".mid",)]


def test_without_a_soundfont_the_panel_says_the_built_in_synth_plays(panel) -> None:
    text = panel.transport_bar.synth_label.text()
    assert "built-in synth" in text and "no General MIDI SoundFont found" in text


@needs_fluidsynth
def test_a_chosen_soundfont_plays_and_exports(panel, qtbot, tmp_path: Path) -> None:
    import soundfile as sf

    bar = panel.transport_bar
    sf2 = write_sine_sf2(tmp_path / "sine.sf2")
    panel.show_phrases([Phrase(np.array([[69, 0, 32, 100]], np.int32), 32, "melody", "la")],
                       "La", "")
    bar.choose_soundfont(str(sf2))
    qtbot.waitUntil(lambda: bar.choice is not None and bar.choice.uses_soundfont,
                    timeout=10_000)
    assert bar.synth_label.text() == "Sound: FluidSynth with sine.sf2"
    wav = panel.export_bar.export("wav", "selected", str(tmp_path / "la.wav"))
    data, rate = sf.read(wav)
    assert data.ndim == 2 and harmonic_ratio(data, rate, 440.0) < 0.01
    # a built-in voice: the same phrase has the built-in synth's overtones, and it says so
    bar.voice_combo.setCurrentIndex(bar.voice_combo.findData("piano"))
    qtbot.waitUntil(lambda: not bar.choice.uses_soundfont, timeout=10_000)
    assert bar.synth_label.text() == "Sound: the built-in synth"
    data, rate = sf.read(panel.export_bar.export("wav", "selected", str(tmp_path / "b.wav")))
    assert data.ndim == 1 and harmonic_ratio(data, rate, 440.0) > 0.3
    # the choice is remembered for the next session
    assert panel.host.recall_value("soundfont") == str(sf2)


def _drop(widget, paths: list[Path]) -> bool:
    """Drag ``paths`` over ``widget`` and drop them, as a file manager would (offscreen, Qt
    delivers a drop only inside a real drag, so the handlers are called directly)."""
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
    widget.dragEnterEvent(enter)
    if enter.isAccepted():
        widget.dropEvent(drop)
    return enter.isAccepted() and drop.isAccepted()


def test_a_midi_file_dropped_on_the_composer_loads_as_phrases(panel, qtbot,
                                                              tmp_path: Path) -> None:
    from plugins.music.engine import midi as midi_mod

    a = midi_mod.write_midi(Phrase(PHRASE_A, 32), tmp_path / "dropped.mid")
    (tmp_path / "notes.txt").write_text("not music")
    assert not _drop(panel, [tmp_path / "notes.txt"])  # not MIDI: refused
    assert panel.acceptDrops() and _drop(panel, [tmp_path / "notes.txt", a])
    qtbot.waitUntil(lambda: "dropped.mid" in panel.title.text() and not panel.handles,
                    timeout=60_000)
    assert np.array_equal(panel.phrases[0].notes[:, :3], PHRASE_A[:, :3])
    # the job's files in words, the folder behind the buttons
    assert panel.result.isVisibleTo(panel) and panel.result.text.text() == "Saved"
    assert panel.result.path is not None and panel.result.path.exists()


def test_a_quick_start_shows_in_the_train_tab(panel, qtbot, melody_folder: Path,
                                              tmp_path: Path) -> None:
    from plugins.music.params import TrainParams

    panel.side_tabs.setCurrentWidget(panel.generate_page)
    p = TrainParams(data=str(melody_folder), preset="tiny", steps=12)
    handle = panel.host.submit("train", p, out=tmp_path / "quick")
    panel.host.job_started.emit("train", p, handle)
    box = panel.train_box
    assert panel.side_tabs.currentWidget() is box
    assert box.form.p.steps == 12 and box.form.editor("steps").value() == 12
    assert box.running and not box.train_btn.isEnabled() and box.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=90_000)
    qtbot.waitUntil(lambda: box.train_btn.isEnabled(), timeout=5_000)
    assert handle.record.state == "done", handle.record.error
    assert panel.model_path() == Path(handle.record.result)
    assert box.result.isVisibleTo(box) and box.result.open_button.text() == "Generate with it"
    box.result.open()
    assert panel.side_tabs.currentWidget() is panel.generate_page


def test_piano_rolls_name_their_pitches_and_bars(panel) -> None:
    from plugins.music.ui.strip import pitch_name

    assert [pitch_name(p) for p in (60, 61, 69, 21, 108)] == ["C4", "C#4", "A4", "A0", "C8"]
    from PySide6.QtGui import QColor, QPalette

    _two(panel)
    strip = panel.strip
    pal = strip.palette()
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#ff00ff"))  # the labels' colour
    strip.setPalette(pal)
    tile = strip.grab(strip.tile_rect(0).toRect()).toImage()

    def magenta(x0: int, x1: int, y0: int, y1: int) -> int:
        return sum(1 for x in range(x0, x1) for y in range(y0, y1)
                   if (c := tile.pixelColor(x, y)).red() > 180 and c.blue() > 180
                   and c.green() < 110)

    h = tile.height()
    assert magenta(2, 26, 22, h - 14) > 10  # pitch names in the gutter left of the roll
    assert magenta(26, tile.width() - 4, h - 14, h - 2) > 4  # bar numbers under the roll
