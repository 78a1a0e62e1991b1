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
