"""The composer panel: train, sample, interpolate, vary, play and export phrases.

Thin by rule: every model call is a job (``host.submit`` with the job's params object: the same
jobs as the command line), results arrive as "phrases" previews; sound is rendered ahead of time
on the transport's own thread and played by a PortAudio callback that only copies samples (see
:mod:`plugins.music.engine.playback`).

The panel is its parts, one module each: the model box (:mod:`.model_box`), the train box
(:mod:`.train_box`), the generate and interpolate boxes (:mod:`.generate`), the transport
(:mod:`.transport`) and export (:mod:`.export`), around the phrase strip (:mod:`.strip`). This
module lays them out and holds what they share: the strip's phrases and the phrase jobs.

Every change to the strip that the user made (a job's phrases, Clear, removing or moving a
phrase) is a command on a ``QUndoStack`` holding before-and-after snapshots, so Undo brings
back a strip a new job replaced; live training samples refresh the strip without filling the
stack. A phrase dragged out of the strip is written as a MIDI file (a WAV for sound phrases)
under the workspace, named by its label and content, stamped with its provenance.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QKeySequence, QShortcut, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plugins.music.engine.phrase import Phrase
from plugins.music.params import SampleParams
from plugins.music.ui.export import ExportBar
from plugins.music.ui.generate import GenerateBox, InterpolateBox
from plugins.music.ui.model_box import ModelBox
from plugins.music.ui.strip import TILE_H, StripView
from plugins.music.ui.train_box import TrainBox
from plugins.music.ui.transport import TransportBar
from studio import theme
from studio.widgets.form import Form
from studio.widgets.panelparts import ResultLine, header
from studio.widgets.settingsarea import settings_scroll

#: what a dropped file must end in to be loaded as phrases (Load MIDI… takes the same)
PHRASE_FILES = (".mid", ".midi", ".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class StripState:
    """What the strip shows: a snapshot an undo brings back."""

    phrases: tuple[Phrase, ...]
    title: str
    source: str
    model: str
    selected: int


class StripEdit(QUndoCommand):
    """One change to the strip, undone and redone by swapping snapshots."""

    def __init__(self, panel: MusicPanel, before: StripState, after: StripState,
                 text: str) -> None:
        super().__init__(text)
        self.panel, self.before, self.after = panel, before, after

    def redo(self) -> None:
        self.panel.apply_state(self.after)

    def undo(self) -> None:
        self.panel.apply_state(self.before)


class MusicPanel(QWidget):
    """The Music plugin's central widget."""

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.phrases: list[Phrase] = []
        self.title_text = "Phrases"
        self.strip_source = ""  # "training" while the strip shows live training samples
        self.strip_model = ""  # the model that made the strip's phrases ("" when none did)
        self.handles: list[Any] = []  # running phrase jobs
        self.last_result = ""  # the folder the last phrase job wrote to
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.addWidget(header("Music", "Learn melodies from your MIDI files or the built-in "
                              "Bach chorales, then generate, vary and continue phrases, play "
                              "them and export MIDI or WAV. Drop a MIDI file on the phrases "
                              "to load it."))
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        root.addWidget(split, 1)

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
        self.undo_stack = QUndoStack(self)
        self.undo_btn = QPushButton("Undo")
        self.undo_btn.clicked.connect(self.undo_stack.undo)
        self.redo_btn = QPushButton("Redo")
        self.redo_btn.clicked.connect(self.undo_stack.redo)
        self.undo_stack.indexChanged.connect(lambda _i: self._sync_undo())
        self._sync_undo()
        head.addWidget(self.undo_btn)
        head.addWidget(self.redo_btn)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.setToolTip("Empty the strip (Undo brings it back)")
        self.clear_btn.clicked.connect(lambda: self.show_phrases([], "Phrases", "", "Clear"))
        head.addWidget(self.clear_btn)
        ml.addLayout(head)
        self.strip = StripView()
        self.strip.selection_changed.connect(lambda _i: self.update_buttons())
        self.strip.activated.connect(lambda i: self.transport_bar.play(i))
        self.strip.menu_requested.connect(self._phrase_menu)
        self.strip.delete_requested.connect(self.remove_phrase)
        self.strip.drag_provider = self.drag_mime
        self.strip_scroll = QScrollArea()
        self.strip_scroll.setWidget(self.strip)
        self.strip_scroll.setWidgetResizable(True)
        self.strip_scroll.setMinimumHeight(TILE_H // 2)
        ml.addWidget(self.strip_scroll, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result = ResultLine()
        self.transport_bar = TransportBar(self)
        self.export_bar = ExportBar(self)
        bottom = QHBoxLayout()
        bottom.addWidget(self.transport_bar, 1)
        bottom.addWidget(self.export_bar, 0, Qt.AlignmentFlag.AlignTop)
        ml.addLayout(bottom)
        ml.addWidget(self.status)
        ml.addWidget(self.result)

        # the side column: the model, then a tab to train one and a tab to generate with it
        self.sample_form = Form(SampleParams, self, host.recall("sample", SampleParams))
        self.model_box = ModelBox(self.sample_form, host.runs_dir())
        self.model_box.changed.connect(self._model_changed)
        self.train_box = TrainBox(self)
        self.generate_box = GenerateBox(self, self.sample_form)
        self.interp_box = InterpolateBox(self)
        gen_settings = QWidget()
        gl = QVBoxLayout(gen_settings)
        gl.setContentsMargins(0, 0, 4, 0)
        gl.addWidget(self.generate_box)
        gl.addWidget(self.interp_box)
        gl.addStretch(1)
        gen_page = QWidget()
        gp = QVBoxLayout(gen_page)
        gp.addWidget(settings_scroll(gen_settings), 1)
        gen_row = QHBoxLayout()
        gen_row.addWidget(self.generate_box.sample_btn)
        gen_row.addStretch(1)
        gp.addLayout(gen_row)
        gp.addStretch()
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.train_box, "Train")
        self.side_tabs.addTab(gen_page, "Generate")
        self.generate_page = gen_page
        self.train_box.generate_wanted.connect(lambda: self.side_tabs.setCurrentWidget(gen_page))
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 4, 0)
        sl.addWidget(self.model_box)
        sl.addWidget(self.side_tabs, 1)
        split.addWidget(side)
        split.addWidget(main)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([side.minimumSizeHint().width(), 900])
        # with a model, the first thing to do is to generate with it
        if self.model_path() is not None:
            self.side_tabs.setCurrentWidget(gen_page)
        self.setAcceptDrops(True)
        host.job_started.connect(self._job_started)

        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.transport_bar.toggle)
        for keys, slot in ((QKeySequence.StandardKey.Undo, self.undo_stack.undo),
                           (QKeySequence.StandardKey.Redo, self.undo_stack.redo)):
            QShortcut(keys, self, activated=slot,
                      context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
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
        self.result.clear()
        self.last_result = ""
        self.say(f"{title}…")
        self.update_buttons()
        return h

    def _on_phrases_preview(self, kind: str, payload: Any, _data: Any) -> None:
        if kind != "phrases" or not isinstance(payload, dict):
            return
        phrases = [Phrase.from_payload(d) for d in payload["phrases"]]
        if payload.get("tempo"):
            self.transport_bar.set_tempo(float(payload["tempo"]))
        # the model is what exports name as their maker
        self.show_phrases(phrases, payload.get("title", "Phrases"), "job",
                          model=str(payload.get("model") or ""))
        self.last_result = str(payload.get("out") or "")

    def _on_job_finished(self, handle: Any, rec: Any) -> None:
        with contextlib.suppress(ValueError):
            self.handles.remove(handle)
        if rec.state == "failed":
            self.say(f"{rec.title} failed: {rec.error}", error=True)
        elif rec.state == "done":
            self.say("")
            if self.last_result:
                folder = Path(self.last_result)
                first = sorted(folder.glob("*.mid")) if folder.is_dir() else []
                self.result.show_result("Saved", first[0] if first else folder)
        self.update_buttons()

    # ------------------------------------------------------------------------------------------
    # The strip
    # ------------------------------------------------------------------------------------------
    def show_phrases(self, phrases: list[Phrase], title: str, source: str,
                     undo_text: str = "", model: str = "") -> None:
        """Show ``phrases`` (``model`` made them, for a job's); a change the user made (not live
        training samples) can be undone, named by ``undo_text`` (default: the title)."""
        after = StripState(tuple(phrases), title, source, model, 0 if phrases else -1)
        if source == "training":
            self.apply_state(after)
            return
        self.undo_stack.push(StripEdit(self, self.state(), after, undo_text or title))

    def _sync_undo(self) -> None:
        """The Undo and Redo buttons say what they would undo or redo (the stack clears itself,
        signalling, while the panel is being destroyed: the buttons may be gone)."""
        stack = self.undo_stack
        with contextlib.suppress(RuntimeError):
            self.undo_btn.setEnabled(stack.canUndo())
            self.redo_btn.setEnabled(stack.canRedo())
            u, r = stack.undoText(), stack.redoText()
            self.undo_btn.setToolTip(f"Undo {u[:1].lower() + u[1:]} (Ctrl+Z)" if u else "Undo")
            self.redo_btn.setToolTip(f"Redo {r[:1].lower() + r[1:]} (Ctrl+Shift+Z)" if r
                                     else "Redo")

    def state(self) -> StripState:
        return StripState(tuple(self.phrases), self.title_text, self.strip_source,
                          self.strip_model, self.strip.selected)

    def apply_state(self, st: StripState) -> None:
        self.transport_bar.stop()
        self.phrases = list(st.phrases)
        self.strip_source = st.source
        self.strip_model = st.model
        self.title_text = st.title
        self.title.setText(f"{st.title}  ({len(st.phrases)})" if st.phrases else st.title)
        self.strip.set_phrases(self.phrases)
        self.strip.select(min(st.selected, len(self.phrases) - 1))
        self.refresh_roles()
        self.transport_bar.rerender()
        self.update_buttons()

    def remove_phrase(self, index: int) -> None:
        if not 0 <= index < len(self.phrases):
            return
        label = self.phrases[index].label or f"phrase {index + 1}"
        rest = self.phrases[:index] + self.phrases[index + 1:]
        after = StripState(tuple(rest), self.title_text, self.strip_source, self.strip_model,
                           min(index, len(rest) - 1))
        self.undo_stack.push(StripEdit(self, self.state(), after, f"Remove {label}"))

    def move_phrase(self, index: int, by: int) -> None:
        j = index + by
        if not (0 <= index < len(self.phrases) and 0 <= j < len(self.phrases)):
            return
        items = list(self.phrases)
        items[index], items[j] = items[j], items[index]
        label = items[j].label or f"phrase {index + 1}"
        after = StripState(tuple(items), self.title_text, self.strip_source, self.strip_model,
                           j)
        self.undo_stack.push(StripEdit(self, self.state(), after, f"Move {label}"))

    # ------------------------------------------------------------------------------------------
    # Into the DAW
    # ------------------------------------------------------------------------------------------
    def drag_file(self, index: int) -> Path | None:
        """Phrase ``index`` as a file a DAW can take: a MIDI file with the transport's tempo
        and instruments (a WAV for sound phrases), written atomically under the workspace,
        named by its label and a hash of what it holds (dragging it again reuses the file; a
        different phrase never overwrites one a DAW may still read), with its provenance."""
        if not 0 <= index < len(self.phrases):
            return None
        ph = self.phrases[index]
        bar = self.transport_bar
        inst = bar.instruments()
        folder = Path(self.host.workspace) / "music" / "dragged"
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w\-. ]+", "-", ph.label or f"phrase {index + 1}").strip(" .-")
        digest = hashlib.sha256()
        if ph.kind == "audio":
            audio, rate = bar.audio(index)
            digest.update(audio.tobytes())
            target = folder / f"{stem or 'phrase'}-{digest.hexdigest()[:8]}.wav"
            if not target.exists():
                from plugins.music.engine.synth import write_wav

                write_wav(audio, target, rate)
                self.export_bar.stamp(target)
            return target
        digest.update(repr((ph.notes.tolist(), ph.steps, ph.metre, ph.kind, bar.tempo(),
                            inst)).encode())
        target = folder / f"{stem or 'phrase'}-{digest.hexdigest()[:8]}.mid"
        if not target.exists():
            from plugins.music.engine.midi import write_midi

            write_midi(ph, target, bar.tempo(), instruments=inst)
            self.export_bar.stamp(target)
        return target

    def drag_mime(self, index: int) -> QMimeData | None:
        """What a drag out of the strip carries: the phrase's file as a local URL."""
        try:
            path = self.drag_file(index)
        except (OSError, ValueError) as exc:
            self.say(f"Could not drag the phrase out: {exc}", error=True)
            return None
        if path is None:
            return None
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        return mime

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
        menu.addAction("Continue", lambda: self.generate_box.continue_phrase(index))
        menu.addSeparator()
        menu.addAction("Move earlier", lambda: self.move_phrase(index, -1))
        menu.addAction("Move later", lambda: self.move_phrase(index, 1))
        menu.addAction("Remove", lambda: self.remove_phrase(index))
        menu.addSeparator()
        menu.addAction("Export MIDI…", lambda: self.export_bar.export("mid", "selected"))
        menu.addAction("Export WAV…", lambda: self.export_bar.export("wav", "selected"))
        menu.popup(pos)

    # ------------------------------------------------------------------------------------------
    # Misc
    # ------------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {theme.colour('error')};" if error else "")
        if error:
            self.host.log(text, "warning")

    # ------------------------------------------------------------------------------------------
    # Drops and jobs the studio started
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def dropped_files(mime: Any) -> list[Path]:
        """The dropped local MIDI (or audio) files, in the order dropped."""
        if not mime.hasUrls():
            return []
        out = []
        for url in mime.urls():
            path = Path(url.toLocalFile()) if url.isLocalFile() else None
            if path is not None and path.is_file() and path.suffix.lower() in PHRASE_FILES:
                out.append(path)
        return out

    def dragEnterEvent(self, event: Any) -> None:
        if self.dropped_files(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: Any) -> None:
        if self.dropped_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        """A MIDI file dropped on the panel is loaded as phrases (with a model, next to what
        the model makes of them), as Load MIDI… does."""
        files = self.dropped_files(event.mimeData())
        if not files:
            return
        event.acceptProposedAction()
        self.generate_box.load_file(files[0])
        if len(files) > 1:
            self.say(f"Loading {files[0].name} (one file at a time: drop the others after "
                     "it).")

    def _job_started(self, job: str, params: Any, handle: Any) -> None:
        """A training run the studio started (the welcome page's quick start) shows in the
        Train tab: its settings, progress and live samples."""
        if job == "train":
            self.side_tabs.setCurrentWidget(self.train_box)
            self.train_box.job_started(params, handle)

    def update_buttons(self) -> None:
        for part in ("train_box", "generate_box", "interp_box", "transport_bar", "export_bar"):
            box = getattr(self, part, None)
            if box is not None:  # (while the panel is being built)
                box.refresh()

    def shutdown(self) -> None:
        """Called by the window on close: silence, release the device, stop the render thread."""
        self.transport_bar.shutdown()
