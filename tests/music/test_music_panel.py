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

    gen = panel.generate_box
    assert panel.model_path().name == "memo"
    assert "trained 600 steps" in panel.model_box.info.text()
    assert panel.transport_bar.tempo_spin.value() == 110  # the model's tempo
    panel.sample_form.editor("n").setValue(5)
    assert panel.sample_form.p.n == 5  # the form follows its widgets
    gen.sample_btn.click()
    qtbot.waitUntil(lambda: len(panel.phrases) == 5, timeout=60_000)
    wait_idle(panel, qtbot)
    assert all(p.kind == "melody" and len(p.notes) for p in panel.phrases)
    assert "5 samples" in panel.title.text()
    assert panel.strip.selected == 0 and panel.export_bar.buttons[0].isEnabled()
    img = panel.strip.grab().toImage()
    assert img.width() > 200 and img.pixelColor(40, 80) != img.pixelColor(2, 2)

    export = panel.export_bar.export
    mid = export("mid", "strip", str(tmp_path / "strip.mid"))
    back = midi_mod.melody_tokens(midi_mod.read_midi(mid), 2, hop_bars=2)
    assert len(back) == 5
    panel.strip.select(2)
    one = export("mid", "selected", str(tmp_path / "one"))
    assert one == tmp_path / "one.mid" and one.exists()
    wav = export("wav", "selected", str(tmp_path / "one.wav"))
    info = sf.info(wav)
    assert info.samplerate == 44100
    assert info.duration == pytest.approx(32 * 60 / 110 / 4, abs=0.01)  # 2 bars at 110 bpm
    strip_wav = export("wav", "strip", str(tmp_path / "strip.wav"))
    assert sf.info(strip_wav).duration == pytest.approx(5 * info.duration, abs=0.1)
    # the next session starts with these settings
    assert panel.host.recall("sample", type(panel.sample_form.p)).n == 5


def test_the_remembered_model_comes_back_even_as_its_weights_file(
        make_host, qtbot, memorised_model: Path) -> None:
    """Runs written before model kinds existed list their model.safetensors in the library;
    the panel treats its folder as the model."""
    from plugins.music.params import SampleParams
    from plugins.music.ui.panel import MusicPanel

    host = make_host(MusicPlugin())
    host.remember("sample", SampleParams(model=memorised_model / "model.safetensors", n=3))
    panel = MusicPanel(host)
    qtbot.addWidget(panel)
    assert panel.model_path() == memorised_model
    assert "trained 600 steps" in panel.model_box.info.text()
    assert panel.sample_form.editor("n").value() == 3
    panel.shutdown()


def test_a_key_and_a_seed_reach_the_job(panel, qtbot) -> None:
    gen = panel.generate_box
    gen.key_combo.setCurrentIndex(gen.key_combo.findData("F#m"))
    panel.sample_form.editor("seed").setValue(7)
    panel.sample_form.editor("temperature").setValue(0.0)
    handle = gen.sample()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=60_000)
    wait_idle(panel, qtbot)
    p = handle.record.params
    assert (p.key, p.seed, p.temperature, p.model.name) == ("F#m", 7, 0.0, "memo")
    assert p.tempo == 110.0
    assert {ph.meta.get("key") for ph in panel.phrases} == {"F#m"}


def test_load_interpolate_and_vary(panel, qtbot, tmp_path: Path) -> None:
    a = midi_mod.write_midi(Phrase(PHRASE_A, 32), tmp_path / "a.mid")
    b = midi_mod.write_midi(Phrase(PHRASE_B, 32), tmp_path / "b.mid")
    gen, interp = panel.generate_box, panel.interp_box
    gen.load_file(str(a))
    qtbot.waitUntil(lambda: len(panel.phrases) == 2, timeout=60_000)  # original + model's
    wait_idle(panel, qtbot)
    assert np.array_equal(panel.phrases[1].notes[:, :3], PHRASE_A[:, :3])
    panel.strip.select(0)
    interp.set_slot("A")
    gen.load_file(str(b))
    qtbot.waitUntil(lambda: "b.mid" in panel.title.text(), timeout=60_000)
    wait_idle(panel, qtbot)
    interp.set_slot("B", 0)
    assert interp.interp_btn.isEnabled()
    interp.form.editor("steps").setValue(4)
    scratch = panel.host.workspace / "music" / "scratch"
    interp.interp_btn.click()
    qtbot.waitUntil(lambda: len(panel.phrases) == 6, timeout=60_000)
    wait_idle(panel, qtbot)
    labels = [p.label for p in panel.phrases]
    assert labels[0] == "A" and labels[-1] == "B" and labels[1] == "1/4"
    assert np.array_equal(panel.phrases[1].notes[:, :3], PHRASE_A[:, :3])
    assert np.array_equal(panel.phrases[4].notes[:, :3], PHRASE_B[:, :3])
    assert not scratch.exists()  # the phrases went to the job as they are, not as files

    panel.strip.select(0)
    gen.vary_form.editor("n").setValue(3)
    gen.vary_btn.click()
    qtbot.waitUntil(lambda: "variations" in panel.title.text(), timeout=60_000)
    wait_idle(panel, qtbot)
    assert [p.label for p in panel.phrases][:2] == ["original", "variation 1"]
    assert len(panel.phrases) == 4


def test_train_from_a_folder(panel, qtbot, melody_folder: Path) -> None:
    box = panel.train_box
    panel.show_phrases([], "Phrases", "")
    box.set_data(str(melody_folder))
    assert box.data_label.text() == melody_folder.name
    assert box.form.p.data == str(melody_folder)
    preset = box.form.editor("preset")
    preset.setCurrentIndex(preset.findData("tiny"))
    box.form.editor("steps").setValue(20)
    assert box.resume_btn.text() == "Resume training"  # not "Continue": that reads as music
    handle = box.train()
    assert not box.train_btn.isEnabled() and box.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=90_000)
    qtbot.waitUntil(lambda: box.train_btn.isEnabled(), timeout=5_000)
    assert handle.record.state == "done", handle.record.error
    run = Path(handle.record.result)
    assert panel.model_path() == run
    assert "trained 20 steps" in panel.model_box.info.text()
    assert panel.phrases and "Training preview" in panel.title.text()
    # the model library lists the run's model for every music panel's picker
    from studio.models import ModelLibrary

    listed = ModelLibrary(panel.host.workspace, hf_cache=False).scan(["music-vae"])
    assert run in [e.path for e in listed]
    # resume training the same run to more steps
    box.form.editor("steps").setValue(30)
    handle = box.train(resume=True)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=90_000)
    assert handle.record.state == "done", handle.record.error
    conf = json.loads((panel.model_path() / "config.json").read_text())
    assert conf["trained_steps"] == 30

    # reopening the run puts its settings back
    box.form.editor("steps").setValue(999)
    box.set_data("bach")
    assert panel.host.reopen(run)
    assert box.form.p.steps == 30 and box.form.editor("steps").value() == 30
    assert box.form.p.data == str(melody_folder) and box.data_label.text() == melody_folder.name
    assert panel.model_path() == run


def test_a_bad_value_is_shown_not_submitted(panel) -> None:
    box = panel.train_box
    box.set_data("bach")
    mode = box.form.editor("mode")
    mode.setCurrentIndex(mode.findData("audio"))
    assert box.train() is None
    assert "audio mode needs a folder" in panel.status.text()


def test_errors_reach_the_status_line(panel, qtbot, tmp_path: Path) -> None:
    (tmp_path / "junk.mid").write_bytes(b"junk")
    panel.generate_box.load_file(str(tmp_path / "junk.mid"))
    qtbot.waitUntil(lambda: "failed" in panel.status.text(), timeout=60_000)
    assert "junk.mid" in panel.status.text()
    panel.interp_box.interpolate()
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
    transport = panel.transport_bar
    qtbot.waitUntil(lambda: transport.audio_ok is False, timeout=10_000)
    assert "PortAudio library was not found" in transport.audio_label.text()
    assert "export to midi and wav still works" in transport.audio_label.text().lower()
    panel.show_phrases([Phrase(PHRASE_A, 32, label="a"), Phrase(PHRASE_B, 32, label="b")],
                       "Two", "test")
    assert not transport.play_btn.isEnabled()
    assert transport.play(0) is False and "PortAudio" in panel.status.text()
    wav = panel.export_bar.export("wav", "strip", str(tmp_path / "out.wav"))
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
bar = panel.transport_bar
end = time.monotonic() + 10
while bar.audio_ok is None and time.monotonic() < end:
    app.processEvents(); time.sleep(0.01)
notes = np.array([[60, 0, 8, 90], [64, 8, 16, 90], [67, 16, 32, 90]], dtype=np.int32)
panel.show_phrases([Phrase(notes, 32, label="x"), Phrase(notes, 32, label="y")], "t", "t")
bar.transport.wait_ready(10)
panel.strip.select(1)
ok = bar.play(1)
end = time.monotonic() + 10
while bar.transport.player.latency_to_sound is None and time.monotonic() < end:
    app.processEvents(); time.sleep(0.002)
latency = bar.transport.player.latency_to_sound
panel.shutdown()
manager.shutdown()
print(json.dumps({"audio_ok": bar.audio_ok, "label": bar.audio_label.text(), "ok": ok,
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
        import plugins.music.params
        params_light = "torch" not in sys.modules and "PySide6" not in sys.modules
        import plugins.music.ui.panel
        print(json.dumps({"plugin_light": light, "params_light": params_light,
                          "panel_torch": "torch" in sys.modules,
                          "panel_jobs": "plugins.music.jobs" in sys.modules}))
    """, tmp_path)
    assert res == {"plugin_light": True, "params_light": True, "panel_torch": False,
                   "panel_jobs": False}
