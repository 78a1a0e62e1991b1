"""The composer panel, driven like a user would (pytest-qt, offscreen)."""

from __future__ import annotations

import importlib.abc
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from music_helpers import PHRASE_A, PHRASE_B
from test_music_playback import null_home, run_python

from plugins.music.engine import midi as midi_mod
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
    yield p
    p.shutdown()


def wait_idle(panel, qtbot) -> None:
    qtbot.waitUntil(lambda: not panel.handles, timeout=60_000)


def test_sample_then_export_midi_and_wav(panel, qtbot, tmp_path: Path) -> None:
    import soundfile as sf

    assert panel.model_path().endswith("memo")
    assert "trained 600 steps" in panel.model_info.text()
    assert panel.tempo_spin.value() == 110  # the model's tempo
    panel.n_spin.setValue(5)
    panel.sample_btn.click()
    qtbot.waitUntil(lambda: len(panel.phrases) == 5, timeout=60_000)
    wait_idle(panel, qtbot)
    assert all(p.kind == "melody" and len(p.notes) for p in panel.phrases)
    assert "5 samples" in panel.title.text()
    assert panel.strip.selected == 0 and panel.export_buttons[0].isEnabled()
    img = panel.strip.grab().toImage()
    assert img.width() > 200 and img.pixelColor(40, 80) != img.pixelColor(2, 2)

    mid = panel.export("mid", "strip", str(tmp_path / "strip.mid"))
    back = midi_mod.melody_tokens(midi_mod.read_midi(mid), 2, hop_bars=2)
    assert len(back) == 5
    panel.strip.select(2)
    one = panel.export("mid", "selected", str(tmp_path / "one"))
    assert one == tmp_path / "one.mid" and one.exists()
    wav = panel.export("wav", "selected", str(tmp_path / "one.wav"))
    info = sf.info(wav)
    assert info.samplerate == 44100
    assert info.duration == pytest.approx(32 * 60 / 110 / 4, abs=0.01)  # 2 bars at 110 bpm
    strip_wav = panel.export("wav", "strip", str(tmp_path / "strip.wav"))
    assert sf.info(strip_wav).duration == pytest.approx(5 * info.duration, abs=0.1)


def test_load_interpolate_and_vary(panel, qtbot, tmp_path: Path) -> None:
    a = midi_mod.write_midi(Phrase(PHRASE_A, 32), tmp_path / "a.mid")
    b = midi_mod.write_midi(Phrase(PHRASE_B, 32), tmp_path / "b.mid")
    panel.load_file(str(a))
    qtbot.waitUntil(lambda: len(panel.phrases) == 2, timeout=60_000)  # original + model's
    wait_idle(panel, qtbot)
    assert np.array_equal(panel.phrases[1].notes[:, :3], PHRASE_A[:, :3])
    panel.strip.select(0)
    panel.set_slot("A")
    panel.load_file(str(b))
    qtbot.waitUntil(lambda: "b.mid" in panel.title.text(), timeout=60_000)
    wait_idle(panel, qtbot)
    panel.set_slot("B", 0)
    assert panel.interp_btn.isEnabled()
    panel.interp_steps.setValue(4)
    panel.interp_btn.click()
    qtbot.waitUntil(lambda: len(panel.phrases) == 6, timeout=60_000)
    wait_idle(panel, qtbot)
    labels = [p.label for p in panel.phrases]
    assert labels[0] == "A" and labels[-1] == "B" and labels[1] == "1/4"
    assert np.array_equal(panel.phrases[1].notes[:, :3], PHRASE_A[:, :3])
    assert np.array_equal(panel.phrases[4].notes[:, :3], PHRASE_B[:, :3])

    panel.strip.select(0)
    panel.n_spin.setValue(4)
    panel.vary_btn.click()
    qtbot.waitUntil(lambda: "variations" in panel.title.text(), timeout=60_000)
    wait_idle(panel, qtbot)
    assert [p.label for p in panel.phrases][:2] == ["original", "variation 1"]
    assert len(panel.phrases) == 4


def test_train_from_a_folder(panel, qtbot, melody_folder: Path) -> None:
    panel.show_phrases([], "Phrases", "")
    panel.set_data(str(melody_folder))
    assert panel.data_label.text() == str(melody_folder)
    panel.preset_combo.setCurrentText("tiny")
    panel.steps_spin.setValue(20)
    handle = panel.train()
    assert not panel.train_btn.isEnabled() and panel.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=90_000)
    qtbot.waitUntil(lambda: panel.train_btn.isEnabled(), timeout=5_000)
    assert handle.record.state == "done", handle.record.error
    assert panel.model_path() == str(handle.record.result)
    assert "trained 20 steps" in panel.model_info.text()
    assert panel.phrases and "Training preview" in panel.title.text()
    # continue the same run to more steps
    panel.steps_spin.setValue(30)
    handle = panel.train(resume=True)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=90_000)
    assert handle.record.state == "done", handle.record.error
    conf = json.loads((Path(panel.model_path()) / "config.json").read_text())
    assert conf["trained_steps"] == 30


def test_errors_reach_the_status_line(panel, qtbot, tmp_path: Path) -> None:
    (tmp_path / "junk.mid").write_bytes(b"junk")
    panel.load_file(str(tmp_path / "junk.mid"))
    qtbot.waitUntil(lambda: "failed" in panel.status.text(), timeout=60_000)
    assert "junk.mid" in panel.status.text()
    panel.interpolate()
    assert "Choose phrase A and B first" in panel.status.text()


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """Importing sounddevice fails the way it does when libportaudio is not installed."""

    def find_spec(self, name, path, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_without_portaudio_playback_is_off_and_export_works(
        make_host, qtbot, memorised_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from plugins.music.ui.panel import MusicPanel

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    host = make_host(MusicPlugin())
    shutil.copytree(memorised_model, host.runs_dir() / "memo")
    panel = MusicPanel(host)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel.audio_ok is False, timeout=10_000)
    assert "PortAudio library was not found" in panel.audio_label.text()
    assert "export to midi and wav still works" in panel.audio_label.text().lower()
    panel.show_phrases([Phrase(PHRASE_A, 32, label="a"), Phrase(PHRASE_B, 32, label="b")],
                       "Two", "test")
    assert not panel.play_btn.isEnabled()
    assert panel.play(0) is False and "PortAudio" in panel.status.text()
    wav = panel.export("wav", "strip", str(tmp_path / "out.wav"))
    assert sf.info(wav).frames > 44100
    panel.shutdown()


PANEL_PLAY = """
import json, time
import numpy as np
from PySide6.QtWidgets import QApplication
app = QApplication([])
from studio import settings
from studio.host import PanelHost
from studio.qtjobs import JobManager
from plugins.music.plugin import MusicPlugin
from plugins.music.ui.panel import MusicPanel
from plugins.music.engine.phrase import Phrase

manager = JobManager(settings.load())
panel = MusicPanel(PanelHost(manager, MusicPlugin()))
end = time.monotonic() + 10
while panel.audio_ok is None and time.monotonic() < end:
    app.processEvents(); time.sleep(0.01)
notes = np.array([[60, 0, 8, 90], [64, 8, 16, 90], [67, 16, 32, 90]], dtype=np.int32)
panel.show_phrases([Phrase(notes, 32, label="x"), Phrase(notes, 32, label="y")], "t", "t")
panel.transport.wait_ready(10)
panel.strip.select(1)
ok = panel.play(1)
end = time.monotonic() + 10
while panel.transport.player.latency_to_sound is None and time.monotonic() < end:
    app.processEvents(); time.sleep(0.002)
latency = panel.transport.player.latency_to_sound
panel.shutdown()
manager.shutdown()
print(json.dumps({"audio_ok": panel.audio_ok, "label": panel.audio_label.text(), "ok": ok,
                  "latency": latency}))
"""


def test_panel_plays_through_portaudio(tmp_path: Path) -> None:
    res = run_python(PANEL_PLAY, null_home(tmp_path))
    assert res["audio_ok"] is True and res["label"].startswith("Audio:"), res
    assert res["ok"] is True and res["latency"] is not None and res["latency"] < 1.0, res


def test_plugin_and_panel_modules_do_not_import_torch(tmp_path: Path) -> None:
    res = run_python("""
        import json, sys
        import plugins.music.plugin
        light = "torch" not in sys.modules and "PySide6" not in sys.modules
        import plugins.music.ui.panel
        print(json.dumps({"plugin_light": light, "panel_torch": "torch" in sys.modules}))
    """, tmp_path)
    assert res == {"plugin_light": True, "panel_torch": False}
