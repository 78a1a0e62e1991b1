"""The composer panel: train, sample, interpolate, vary, play and export phrases.

Thin by rule: every model call is a job (``host.submit`` with the job's params object: the same
jobs as the command line), results arrive as "phrases" previews; sound is rendered ahead of time
on the transport's own thread and played by a PortAudio callback that only copies samples (see
:mod:`plugins.music.engine.playback`).

The panel is its parts, one module each: the model box (:mod:`.model_box`), the train box
(:mod:`.train_box`), the generate and interpolate boxes (:mod:`.generate`), the transport
(:mod:`.transport`) and export (:mod:`.export`), around the phrase strip (:mod:`.strip`). This
module lays them out and holds what they share: the strip's phrases and the phrase jobs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from plugins.music.engine.phrase import Phrase
from plugins.music.params import SampleParams
from plugins.music.ui.export import ExportBar
from plugins.music.ui.generate import GenerateBox, InterpolateBox
from plugins.music.ui.model_box import ModelBox
from plugins.music.ui.strip import StripView
from plugins.music.ui.train_box import TrainBox
from plugins.music.ui.transport import TransportBar
from studio.widgets.form import Form


class MusicPanel(QWidget):
    """The Music plugin's central widget."""

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.phrases: list[Phrase] = []
        self.strip_source = ""  # "training" while the strip shows live training samples
        self.strip_model = ""  # the model that made the strip's phrases ("" when none did)
        self.handles: list[Any] = []  # running phrase jobs
        self.last_result = ""  # the folder the last phrase job wrote to
        root = QHBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        split = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(split)

        # the strip and what acts on it (built first: the boxes read its selection)
        main = QWidget()
        ml = QVBoxLayout(main)
        ml.setContentsMargins(4, 0, 0, 0)
        head = QHBoxLayout()
        self.title = QLabel("Phrases")
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        head.addWidget(self.title, 1)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(lambda: self.show_phrases([], "Phrases", ""))
        head.addWidget(self.clear_btn)
        ml.addLayout(head)
        self.strip = StripView()
        self.strip.selection_changed.connect(lambda _i: self.update_buttons())
        self.strip.activated.connect(lambda i: self.transport_bar.play(i))
        self.strip.menu_requested.connect(self._phrase_menu)
        self.strip_scroll = QScrollArea()
        self.strip_scroll.setWidget(self.strip)
        self.strip_scroll.setWidgetResizable(True)
        ml.addWidget(self.strip_scroll, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.transport_bar = TransportBar(self)
        ml.addWidget(self.transport_bar)
        self.export_bar = ExportBar(self)
        ml.addWidget(self.export_bar)
        ml.addWidget(self.status)

        # the side column: model, training, generation
        self.sample_form = Form(SampleParams, self, host.recall("sample", SampleParams))
        self.model_box = ModelBox(self.sample_form, host.runs_dir())
        self.model_box.changed.connect(self._model_changed)
        self.train_box = TrainBox(self)
        self.generate_box = GenerateBox(self, self.sample_form)
        self.interp_box = InterpolateBox(self)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 4, 0)
        for box in (self.model_box, self.train_box, self.generate_box, self.interp_box):
            sl.addWidget(box)
        sl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(side.sizeHint().width() + 24)
        split.addWidget(scroll)
        split.addWidget(main)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([side.sizeHint().width() + 24, 900])

        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.transport_bar.toggle)
        self._model_changed()

    # ------------------------------------------------------------------------------------------
    # What the boxes share
    # ------------------------------------------------------------------------------------------
    def model_path(self) -> Path | None:
        return self.model_box.path()

    def need_model(self) -> bool:
        if self.model_path() is None:
            self.say("Train or choose a model first.", error=True)
            return False
        return True

    def _model_changed(self) -> None:
        conf = self.model_box.config()
        if conf and not self.phrases:  # play new phrases at the tempo the model learnt
            self.transport_bar.set_tempo(float(conf.get("tempo", 120)))
        self.update_buttons()

    def run_phrase_job(self, job: str, params: Any, title: str) -> Any:
        """Submit a job whose "phrases" preview fills the strip."""
        h = self.host.submit(job, params, title=title, show_plots=False)
        self.handles.append(h)
        h.preview.connect(self._on_phrases_preview)
        h.finished.connect(lambda rec, h=h: self._on_job_finished(h, rec))
        self.say(f"{title}…")
        self.update_buttons()
        return h

    def _on_phrases_preview(self, kind: str, payload: Any, _data: Any) -> None:
        if kind != "phrases" or not isinstance(payload, dict):
            return
        phrases = [Phrase.from_payload(d) for d in payload["phrases"]]
        if payload.get("tempo"):
            self.transport_bar.set_tempo(float(payload["tempo"]))
        self.show_phrases(phrases, payload.get("title", "Phrases"), "job")
        self.last_result = str(payload.get("out") or "")
        self.strip_model = str(payload.get("model") or "")  # what exports name as their maker

    def _on_job_finished(self, handle: Any, rec: Any) -> None:
        with contextlib.suppress(ValueError):
            self.handles.remove(handle)
        if rec.state == "failed":
            self.say(f"{rec.title} failed: {rec.error}", error=True)
        elif rec.state == "done":
            where = f" (files in {Path(self.last_result).name})" if self.last_result else ""
            self.say(f"{rec.title}: done{where}")
        self.update_buttons()

    # ------------------------------------------------------------------------------------------
    # The strip
    # ------------------------------------------------------------------------------------------
    def show_phrases(self, phrases: list[Phrase], title: str, source: str) -> None:
        self.transport_bar.stop()
        self.phrases = list(phrases)
        self.strip_source = source
        self.title.setText(f"{title}  ({len(phrases)})" if phrases else title)
        self.strip.set_phrases(self.phrases)
        self.refresh_roles()
        self.transport_bar.rerender()
        self.update_buttons()

    def refresh_roles(self) -> None:
        """Mark the strip's tiles that are interpolation ends A and B."""
        roles = {}
        for slot, ph in self.interp_box.slots.items():
            for i, p in enumerate(self.phrases):
                if p is ph:
                    roles[i] = slot
        self.strip.roles = roles
        self.strip.update()

    def _phrase_menu(self, index: int, pos: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction("Play", lambda: self.transport_bar.play(index))
        menu.addAction("Use as A", lambda: self.interp_box.set_slot("A", index))
        menu.addAction("Use as B", lambda: self.interp_box.set_slot("B", index))
        menu.addAction("Variations", lambda: self.generate_box.variations(index))
        menu.addSeparator()
        menu.addAction("Export MIDI…", lambda: self.export_bar.export("mid", "selected"))
        menu.addAction("Export WAV…", lambda: self.export_bar.export("wav", "selected"))
        menu.popup(pos)

    # ------------------------------------------------------------------------------------------
    # Misc
    # ------------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #b91c1c;" if error else "")
        if error:
            self.host.log(text, "warning")

    def update_buttons(self) -> None:
        for part in ("train_box", "generate_box", "interp_box", "transport_bar", "export_bar"):
            box = getattr(self, part, None)
            if box is not None:  # (while the panel is being built)
                box.refresh()

    def shutdown(self) -> None:
        """Called by the window on close: silence, release the device, stop the render thread."""
        self.transport_bar.shutdown()
