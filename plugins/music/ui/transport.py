"""The transport: play the strip or one phrase, stop, loop, tempo, the sound (a General MIDI
SoundFont through FluidSynth, or a built-in synth voice), who plays each part, and whether sound
can work here at all.

Which synth plays is decided off the GUI thread (loading FluidSynth takes a moment) and said in
words under the buttons, with the reason when it is the built-in synth. The SoundFont and the
instruments are remembered between sessions.

The strip's sound is rendered ahead of time on the engine Transport's own thread, and a
PortAudio callback only copies samples (``plugins.music.engine.playback``): nothing here
computes audio. Without PortAudio or an output device, playback is off with a plain message and
export keeps working.
"""

from __future__ import annotations

import contextlib
import threading
import typing
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from plugins.music.engine import gm
from plugins.music.engine.arrange import Instruments
from plugins.music.params import Voice
from studio import theme

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from plugins.music.ui.panel import MusicPanel


class TransportBar(QWidget):
    """Play / Selected / Stop / Loop, tempo and voice, and the audio device's status."""

    audio_status = Signal(bool, str)  # from the probe thread: usable?, message
    synth_status = Signal(object)  # from the probe thread: a SynthChoice

    def __init__(self, panel: MusicPanel) -> None:
        super().__init__()
        self.panel = panel
        self.transport: Any = None  # plugins.music.engine.playback.Transport, made on first use
        self.audio_ok: bool | None = None
        self.audio_message = "Audio: checking…"
        rows = QVBoxLayout(self)
        rows.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.play_btn = QPushButton("▶ Play")
        self.play_btn.setToolTip("Play the whole strip (Space)")
        self.play_btn.clicked.connect(lambda: self.play(None))
        top.addWidget(self.play_btn)
        self.play_sel_btn = QPushButton("▶ Selected")
        self.play_sel_btn.setToolTip("Play the selected phrase (or double-click it)")
        self.play_sel_btn.clicked.connect(lambda: self.play(panel.strip.selected))
        top.addWidget(self.play_sel_btn)
        self.stop_btn = QPushButton("■ Stop")
        self.stop_btn.setToolTip("Stop playing")
        self.stop_btn.clicked.connect(self.stop)
        top.addWidget(self.stop_btn)
        self.loop_check = QCheckBox("Loop")
        self.loop_check.setToolTip("Play again from the start at the end")
        self.loop_check.toggled.connect(self._on_loop)
        top.addWidget(self.loop_check)
        top.addStretch(1)
        rows.addLayout(top)
        second = QHBoxLayout()
        second.addWidget(QLabel("Tempo:"))
        self.tempo_spin = QSpinBox()
        self.tempo_spin.setRange(30, 300)
        self.tempo_spin.setValue(120)
        self.tempo_spin.setSuffix(" bpm")
        self.tempo_spin.setAccessibleName("Tempo")
        self.tempo_spin.setToolTip("Playback tempo, also written into generated and exported "
                                   "MIDI files")
        self.tempo_spin.valueChanged.connect(lambda _v: self.rerender())
        second.addWidget(self.tempo_spin)
        # what plays the parts: folded (the defaults play well; the panel must fit 1280 px)
        self.sound_toggle = QCheckBox("Show sound settings")
        self.sound_toggle.setToolTip("The SoundFont or built-in voice, the instrument of each "
                                     "part, and drums")
        second.addWidget(self.sound_toggle)
        second.addStretch(1)
        rows.addLayout(second)
        self.sound_box = QWidget()
        grid = QGridLayout(self.sound_box)
        grid.setContentsMargins(0, 0, 0, 0)
        self.voice_combo = QComboBox()
        self.voice_combo.addItem("General MIDI", "soundfont")
        for voice in typing.get_args(Voice):
            self.voice_combo.addItem(f"{voice.capitalize()} (built-in)", voice)
        self.voice_combo.setToolTip("What plays the notes: General MIDI instruments from a "
                                    "SoundFont (FluidSynth), or a voice of the built-in synth")
        self.voice_combo.setAccessibleName("Sound")
        voice = str(panel.host.recall_value("voice", "soundfont"))
        self.voice_combo.setCurrentIndex(max(0, self.voice_combo.findData(voice)))
        self.voice_combo.currentIndexChanged.connect(lambda _i: self._sound_changed())
        grid.addWidget(QLabel("Sound:"), 0, 0)
        grid.addWidget(self.voice_combo, 0, 1)
        self.soundfont_btn = QPushButton("SoundFont…")
        self.soundfont_btn.setToolTip("Choose any SoundFont (.sf2) to play the parts with")
        self.soundfont_btn.clicked.connect(lambda: self.choose_soundfont())
        grid.addWidget(self.soundfont_btn, 0, 2)
        # who plays what: General MIDI programs per part, and a beat on channel 10
        self.program_combos: dict[str, QComboBox] = {}
        for row, (part, label, default) in enumerate(
                (("melody", "Melody:", gm.PIANO), ("accompaniment", "Accompaniment:", gm.PIANO)),
                start=1):
            combo = QComboBox()
            for i, name in enumerate(gm.PROGRAMS):
                combo.addItem(f"{i + 1} {name}", i)
            combo.setAccessibleName(f"{label[:-1]} instrument")
            combo.setToolTip(f"The General MIDI instrument of the {part}"
                             + (" (a piano roll's notes below its top line)"
                                if part == "accompaniment" else ""))
            combo.setMaxVisibleItems(20)
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
            combo.setCurrentIndex(int(panel.host.recall_value(f"program_{part}", default)))
            combo.currentIndexChanged.connect(lambda _i: self._sound_changed())
            self.program_combos[part] = combo
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(combo, row, 1)
        self.drums_check = QCheckBox("Drums")
        self.drums_check.setToolTip("A beat that follows the metre, on channel 10 (General "
                                    "MIDI percussion), in playback and exported MIDI")
        self.drums_check.setChecked(bool(panel.host.recall_value("drums", False)))
        self.drums_check.toggled.connect(lambda _on: self._sound_changed())
        grid.addWidget(self.drums_check, 1, 2)
        grid.setColumnStretch(1, 1)
        self.sound_box.setVisible(False)
        self.sound_toggle.toggled.connect(self.sound_box.setVisible)
        rows.addWidget(self.sound_box)
        self.choice: Any = None  # the SynthChoice, once the probe has made it
        self.synth_label = QLabel("Sound: checking…")
        self.synth_label.setObjectName("caption")
        self.synth_label.setWordWrap(True)
        rows.addWidget(self.synth_label)
        self.audio_label = QLabel(self.audio_message)
        self.audio_label.setObjectName("caption")
        self.audio_label.setWordWrap(True)
        rows.addWidget(self.audio_label)
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._tick)
        self.audio_status.connect(self._on_audio_status)
        self.synth_status.connect(self._on_synth_status)
        self._probe_audio()
        self._probe_synth()

    # -- settings -------------------------------------------------------------------------------
    def tempo(self) -> float:
        return float(self.tempo_spin.value())

    def set_tempo(self, bpm: float) -> None:
        self.tempo_spin.setValue(int(round(bpm)))

    def voice(self) -> str:
        """The built-in synth's voice (piano when General MIDI is chosen and unavailable)."""
        data = str(self.voice_combo.currentData())
        return "piano" if data == "soundfont" else data

    def instruments(self) -> Instruments:
        return Instruments(melody=int(self.program_combos["melody"].currentData()),
                           accompaniment=int(self.program_combos["accompaniment"].currentData()),
                           drums=self.drums_check.isChecked())

    def instrument_fields(self) -> dict[str, Any]:
        """The instruments as the generating jobs' params fields."""
        inst = self.instruments()
        return {"melody_program": inst.melody, "accompaniment_program": inst.accompaniment,
                "drums": inst.drums}

    def soundfont(self) -> str:
        return str(self.panel.host.recall_value("soundfont", "") or "")

    def choose_soundfont(self, path: str | None = None) -> None:
        """Pick a SoundFont (``path`` skips the file dialog); "" goes back to the installed
        one."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a SoundFont", "",
                                                  "SoundFonts (*.sf2 *.sf3);;All files (*)")
            if not path:
                return
        self.panel.host.remember_value("soundfont", str(path))
        i = self.voice_combo.findData("soundfont")
        if self.voice_combo.currentIndex() != i:
            self.voice_combo.setCurrentIndex(i)  # (re-probes)
        else:
            self._sound_changed()

    def _sound_changed(self) -> None:
        host = self.panel.host
        host.remember_value("voice", str(self.voice_combo.currentData()))
        for part, combo in self.program_combos.items():
            host.remember_value(f"program_{part}", int(combo.currentData()))
        host.remember_value("drums", self.drums_check.isChecked())
        self._probe_synth()

    def _probe_synth(self) -> None:
        """Decide (off the GUI thread: loading FluidSynth and checking the SoundFont take a
        moment) which synth plays; the answer re-renders the strip."""
        want = "auto" if self.voice_combo.currentData() == "soundfont" else "builtin"
        chosen = self.soundfont()

        def probe() -> None:
            from plugins.music.engine.soundfont import SynthChoice, choose
            from studio.errors import UserError

            try:
                choice = choose(want, chosen or None)
            except UserError as exc:  # the remembered SoundFont is gone: say so, play on
                choice = choose(want) if want == "auto" else SynthChoice()
                if not choice.uses_soundfont:
                    choice = SynthChoice(None, str(exc))
            with contextlib.suppress(RuntimeError):  # the panel was closed meanwhile
                self.synth_status.emit(choice)

        threading.Thread(target=probe, name="music-synth-probe", daemon=True).start()

    def _on_synth_status(self, choice: Any) -> None:
        self.choice = choice
        text = f"Sound: {choice.describe()}"
        if not choice.uses_soundfont and choice.note:
            text += " — choose a SoundFont… for real instruments"
        self.synth_label.setText(text)
        self.synth_label.setStyleSheet("" if choice.uses_soundfont or not choice.note
                                       else f"color: {theme.colour('warning')};")
        self.rerender()

    # -- the audio device -----------------------------------------------------------------------
    def _probe_audio(self) -> None:
        """Find out (off the GUI thread: importing PortAudio takes a while) whether playback
        can work, so the transport says so before anyone presses Play."""

        def probe() -> None:
            from plugins.music.engine.playback import AudioUnavailable, load_sounddevice

            try:
                sd = load_sounddevice()
                try:
                    dev = sd.query_devices(kind="output")
                    msg = f"Audio: {dev['name']}"
                    ok = True
                except Exception:  # no default output device
                    ok, msg = False, ("No audio output device found: playback is off; export "
                                      "to MIDI and WAV still works.")
            except AudioUnavailable as exc:
                ok, msg = False, str(exc)
            with contextlib.suppress(RuntimeError):  # the panel was closed meanwhile
                self.audio_status.emit(ok, msg)

        threading.Thread(target=probe, name="music-audio-probe", daemon=True).start()

    def _on_audio_status(self, ok: bool, message: str) -> None:
        self.audio_ok = ok
        self.audio_message = message
        self.audio_label.setText(message)
        self.audio_label.setStyleSheet("" if ok else f"color: {theme.colour('warning')};")
        self.panel.update_buttons()

    # -- sound ----------------------------------------------------------------------------------
    def engine(self) -> Any:
        """The engine's Transport (made on first use: it starts a render thread)."""
        if self.transport is None:
            from plugins.music.engine.playback import Transport

            self.transport = Transport()
        return self.transport

    @property
    def playing(self) -> bool:
        return self.transport is not None and self.transport.player.playing

    def rerender(self) -> None:
        """Render the strip's sound ahead of time (on the transport's thread)."""
        phrases = self.panel.phrases
        if not phrases:
            return
        if self.playing:
            self.stop()
        self.engine().set_strip(phrases, self.tempo(), self.voice(), self.choice,
                                self.instruments())

    def audio(self, index: int | None) -> tuple[np.ndarray, int]:
        """The rendered samples of one phrase or the whole strip, and their sample rate
        (rendered ahead of time: usually no wait at all)."""
        t = self.engine()
        if t.phrase_count != len(self.panel.phrases) or not t.ready:
            self.rerender()
        return t.audio(index), int(t.sample_rate)

    def play(self, index: int | None = None) -> bool:
        panel = self.panel
        if not panel.phrases:
            panel.say("Nothing to play yet.", error=True)
            return False
        from plugins.music.engine.playback import AudioUnavailable

        try:
            self.engine().play(index if index is not None and index >= 0 else None,
                               self.loop_check.isChecked())
        except AudioUnavailable as exc:
            self._on_audio_status(False, str(exc))
            panel.say(str(exc), error=True)
            return False
        self._timer.start()
        panel.update_buttons()
        return True

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.stop()
        self._timer.stop()
        self.panel.strip.set_playhead(None)
        self.panel.update_buttons()

    def toggle(self) -> None:
        if self.playing:
            self.stop()
        else:
            self.play(None)

    def _on_loop(self, on: bool) -> None:
        if self.transport is not None:
            self.transport.set_loop(on)

    def _tick(self) -> None:
        t = self.transport
        head = t.playhead() if t is not None else None
        self.panel.strip.set_playhead(head)
        if t is None or not t.player.playing:
            self._timer.stop()
            self.panel.strip.set_playhead(None)
            self.panel.update_buttons()

    def refresh(self) -> None:
        panel = self.panel
        can_play = bool(panel.phrases) and self.audio_ok is not False
        self.play_btn.setEnabled(can_play)
        self.play_sel_btn.setEnabled(can_play and 0 <= panel.strip.selected < len(panel.phrases))
        self.stop_btn.setEnabled(self.playing)

    def shutdown(self) -> None:
        """Silence, release the device, stop the render thread."""
        self._timer.stop()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
