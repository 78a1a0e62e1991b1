"""Export: the selected phrase or the whole strip as a MIDI file or a WAV file.

Small and immediate, so it runs on the GUI thread: MIDI files of a few phrases are written in
milliseconds, and a WAV is the transport's already-rendered buffer copied into a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QMenu, QToolButton, QWidget

if TYPE_CHECKING:  # pragma: no cover
    from plugins.music.ui.panel import MusicPanel

BUTTONS = (("MIDI file of the selected phrase…", "mid", "selected"),
           ("MIDI file of the whole strip…", "mid", "strip"),
           ("WAV file of the selected phrase…", "wav", "selected"),
           ("WAV file of the whole strip…", "wav", "strip"))


class ExportBar(QWidget):
    """One "Export" button with a menu: MIDI or WAV, the selected phrase or the strip (a
    button each took two rows beside the transport; the panel must fit 1280 px with the plots
    dock open)."""

    def __init__(self, panel: MusicPanel) -> None:
        super().__init__()
        self.panel = panel
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.button = QToolButton()
        self.button.setText("Export")
        self.button.setToolTip("Save the selected phrase or the whole strip as MIDI or WAV")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        menu = QMenu(self.button)
        #: the menu's actions, in BUTTONS' order
        self.buttons: list[QAction] = []
        for text, fmt, which in BUTTONS:
            act = menu.addAction(text)
            act.triggered.connect(lambda _=False, f=fmt, s=which: self.export(f, s))
            self.buttons.append(act)
        self.button.setMenu(menu)
        lay.addWidget(self.button)

    def export(self, fmt: str, which: str = "strip", path: str | Path | None = None
               ) -> Path | None:
        """Write the selected phrase or the whole strip as ``fmt`` ("mid" or "wav");
        ``path`` skips the file dialog."""
        panel = self.panel
        if not panel.phrases:
            panel.say("Nothing to export yet.", error=True)
            return None
        index = panel.strip.selected if which == "selected" else None
        if index is not None and not 0 <= index < len(panel.phrases):
            panel.say("Select a phrase to export.", error=True)
            return None
        items = panel.phrases if index is None else [panel.phrases[index]]
        if fmt == "mid" and any(p.kind == "audio" for p in items):
            panel.say("Sound phrases have no notes: export them as WAV.", error=True)
            return None
        if path is None:
            stem = "strip" if index is None else (items[0].label or "phrase").replace("/", "-")
            filt = "MIDI files (*.mid)" if fmt == "mid" else "WAV files (*.wav)"
            path, _ = QFileDialog.getSaveFileName(self, "Export", f"{stem}.{fmt}", filt)
            if not path:
                return None
        target = Path(path)
        if target.suffix.lower() != f".{fmt}":
            target = target.with_suffix(f".{fmt}")
        try:
            if fmt == "mid":
                from plugins.music.engine.midi import write_midi

                write_midi(items, target, panel.transport_bar.tempo(),
                           instruments=panel.transport_bar.instruments())
            else:
                from plugins.music.engine.synth import write_wav

                audio, rate = panel.transport_bar.audio(index)
                write_wav(audio, target, rate)
            self.stamp(target)
        except (OSError, ValueError) as exc:
            panel.say(f"Export failed: {exc}", error=True)
            return None
        panel.say("")
        panel.result.show_result(f"Exported {target.name}", target)
        return target

    def stamp(self, target: Path) -> None:
        """The file's provenance: the model open in the panel (by name) when the strip came
        from a job; phrases read from a file were not generated, so they claim no model."""
        from plugins.common import provenance

        panel = self.panel
        model = panel.strip_model or None if panel.strip_source == "job" else \
            panel.model_path() if panel.strip_source == "training" else None
        provenance.stamp(target, provenance.make(
            "music", "export", model=model, params=self.settings(),
            source_type=provenance.TRAINED if model is not None else ""))

    def settings(self) -> dict[str, object]:
        """What an exported file records of how it was made (no paths: names only)."""
        bar = self.panel.transport_bar
        inst = bar.instruments()
        out: dict[str, object] = {"tempo": bar.tempo(), "melody_program": inst.melody,
                                  "accompaniment_program": inst.accompaniment,
                                  "drums": inst.drums}
        if bar.choice is not None:
            out["synth"] = bar.choice.name
            if bar.choice.soundfont is not None:
                out["soundfont"] = bar.choice.soundfont.name
        return out

    def refresh(self) -> None:
        has = bool(self.panel.phrases)
        for b in self.buttons:
            b.setEnabled(has)
        self.button.setEnabled(has)
