"""The transport: play the strip or one phrase, stop, loop, tempo and voice, and whether sound
can work here at all.

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
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from plugins.music.params import Voice

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from plugins.music.ui.panel import MusicPanel


class TransportBar(QWidget):
    """Play / Selected / Stop / Loop, tempo and voice, and the audio device's status."""

    audio_status = Signal(bool, str)  # from the probe thread: usable?, message

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
        self.stop_btn.clicked.connect(self.stop)
        top.addWidget(self.stop_btn)
        self.loop_check = QCheckBox("Loop")
        self.loop_check.setToolTip("Play again from the start at the end")
        self.loop_check.toggled.connect(self._on_loop)
        top.addWidget(self.loop_check)
        top.addStretch(1)
        rows.addLayout(top)
        # a second row: the panel must fit beside the plots dock at 1400 px
        second = QHBoxLayout()
        second.addWidget(QLabel("Tempo"))
        self.tempo_spin = QSpinBox()
        self.tempo_spin.setRange(30, 300)
        self.tempo_spin.setValue(120)
        self.tempo_spin.setSuffix(" bpm")
        self.tempo_spin.setToolTip("Playback tempo, also written into generated and exported "
                                   "MIDI files")
        self.tempo_spin.valueChanged.connect(lambda _v: self.rerender())
        second.addWidget(self.tempo_spin)
        self.voice_combo = QComboBox()
        for voice in typing.get_args(Voice):
            self.voice_combo.addItem(voice.capitalize(), voice)
        self.voice_combo.setToolTip("The synth voice that plays note phrases")
        self.voice_combo.currentIndexChanged.connect(lambda _i: self.rerender())
        second.addWidget(self.voice_combo)
        second.addStretch(1)
        rows.addLayout(second)
        self.audio_label = QLabel(self.audio_message)
        self.audio_label.setWordWrap(True)
        rows.addWidget(self.audio_label)
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._tick)
        self.audio_status.connect(self._on_audio_status)
        self._probe_audio()

    # -- settings -------------------------------------------------------------------------------
    def tempo(self) -> float:
        return float(self.tempo_spin.value())

    def set_tempo(self, bpm: float) -> None:
        self.tempo_spin.setValue(int(round(bpm)))

    def voice(self) -> str:
        return str(self.voice_combo.currentData())

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
        self.audio_label.setStyleSheet("" if ok else "color: #b45309;")
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
        self.engine().set_strip(phrases, self.tempo(), self.voice())

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
