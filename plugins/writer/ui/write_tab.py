"""The Write tab: a document editor where the model continues your text at the cursor.

Continue submits the ``generate`` job on the interactive lane with the tab's
:class:`~plugins.writer.params.GenerateParams` (the sampling controls are that class's form);
its text chunks arrive as preview events and are inserted at the position where Continue was
pressed (a ``QTextCursor`` that moves along with the document, so typing elsewhere meanwhile is
safe), on a tinted background so the model's words stand apart from the user's (a character
format: the document is saved as plain text, so the tint never reaches the file). One Ctrl+Z
removes a whole continuation. Stop cancels the job and ignores anything still
in flight, so the text stops at once. Alternatives streams several continuations into cards to
pick from, with the same sampling settings
(:meth:`~plugins.writer.params.AlternativesParams.following`). The Style box offers the shared
engine's named sampler presets (Precise, Balanced, Creative): choosing one shows its numbers,
and editing a number afterwards makes the style Custom (or the preset those numbers are).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QDropEvent, QFont, QKeyEvent, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from plugins.common.lm.sampling import CUSTOM, matching_preset, sampler_preset
from plugins.writer.params import AlternativesParams, GenerateParams
from plugins.writer.ui.cards import (
    AlternativeCards,
    dropped_texts,
    generated_format,
    is_generated,
    own_format,
)
from plugins.writer.ui.documents import DocumentStore
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import primary

PROMPT_CHARS = 6000  # text before the cursor sent as the prompt (the model keeps what fits)
AUTOSAVE_IDLE_MS = 1000  # save this long after the last edit...
AUTOSAVE_MAX_S = 5.0  # ...but at least this often while text keeps changing (streaming)
#: the fields a named sampler preset sets
SAMPLER_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")


class WriteTab(QWidget):
    """Editor + sampling controls + Continue / Stop / Alternatives."""

    #: a message for the status bar
    message = Signal(str)

    def __init__(self, host: Any, store: DocumentStore, model_path: Callable[[], str | None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.store = store
        self.model_path = model_path
        self.doc_id: str | None = None
        self.recovered: str = ""
        self._handle: JobHandle | None = None
        self._alt_handle: JobHandle | None = None
        self._insert: QTextCursor | None = None
        self._first_chunk = True
        self._last_seed: int | None = None  # the last continuation's (provenance of exports)
        self._alt_anchor = 0
        self._dirty_since: float | None = None
        self._loading = False

        # -- editor column ----------------------------------------------------------------------
        self.docs = QComboBox()
        self.docs.setMinimumWidth(140)
        self.docs.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.docs.setMinimumContentsLength(12)
        self.docs.activated.connect(self._on_doc_chosen)
        self.new_button = QPushButton("New")
        self.new_button.clicked.connect(self.new_document)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Copy a .txt/.md file into a new document (the file itself "
                                    "is never changed)")
        self.open_button.clicked.connect(self._ask_open)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._ask_export)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._ask_delete)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Document:"))
        bar.addWidget(self.docs, 1)
        for b in (self.new_button, self.open_button, self.export_button, self.delete_button):
            bar.addWidget(b)

        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Write here, then press Continue (Ctrl+Enter) to let the "
                                       "model go on from the cursor.")
        font = QFont("Georgia")
        font.setStyleHint(QFont.StyleHint.Serif)
        font.setPointSize(12)
        self.editor.setFont(font)
        self.editor.textChanged.connect(self._on_text_changed)
        self.editor.installEventFilter(self)  # Esc stops a continuation
        self.editor.viewport().installEventFilter(self)  # text files dropped: new documents
        self.editor.setToolTip("Text the model wrote has a tinted background until you edit "
                               "it (only here: the document stays plain text)")
        self.save_label = QLabel("")
        self.save_label.setObjectName("writerSaveLabel")
        self.speed_label = QLabel("")
        status = QHBoxLayout()
        status.addWidget(self.save_label, 1)
        status.addWidget(self.speed_label)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.editor, 1)
        lv.addLayout(status)

        # -- controls column: the generate job's sampling settings --------------------------------
        self.form = Form(GenerateParams, self, host.recall("generate", GenerateParams))
        self.alt_form = Form(AlternativesParams, self,
                             host.recall("alternatives", AlternativesParams))
        self.temperature = cast(QDoubleSpinBox, self.form.editor("temperature"))
        self.top_k = cast(QSpinBox, self.form.editor("top_k"))
        self.top_p = cast(QDoubleSpinBox, self.form.editor("top_p"))
        self.min_p = cast(QDoubleSpinBox, self.form.editor("min_p"))
        self.sampler = cast(QComboBox, self.form.editor("sampler"))
        self.rep_penalty = cast(QDoubleSpinBox, self.form.editor("repetition_penalty"))
        self.max_new = cast(QSpinBox, self.form.editor("max_new_tokens"))
        self.seed = cast(QSpinBox, self.form.editor("seed"))
        self.stop_edit = cast(QLineEdit, self.form.editor("stop"))
        self.stop_edit.setPlaceholderText(r"e.g. \n\n, THE END")
        self.random_seed = QCheckBox("a new seed each time")
        self.random_seed.setToolTip("A fresh seed for every continuation (the seed used is "
                                    "shown below; untick to reproduce a result)")
        self.random_seed.toggled.connect(self._random_toggled)
        self.random_seed.setChecked(self.form.p.seed is None)
        self._random_toggled(self.random_seed.isChecked())
        # the style and length on view; the numbers behind a style fold away
        form = QFormLayout()
        self.form.add_rows(form, "sampler", "max_new_tokens")
        self.show_advanced = QCheckBox("Show advanced settings")
        self.advanced = QWidget()
        af = QFormLayout(self.advanced)
        af.setContentsMargins(0, 0, 0, 0)
        self.form.add_rows(af, "temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                           "seed")
        af.addRow("", self.random_seed)
        self.form.add_rows(af, "stop")
        self.advanced.setVisible(False)
        self.show_advanced.toggled.connect(self.advanced.setVisible)
        form.addRow(self.show_advanced)
        form.addRow(self.advanced)
        sampling = QGroupBox("Sampling")
        sampling.setLayout(form)

        self.continue_button = primary(QPushButton("Continue"))
        self.continue_button.setToolTip("Continue the text at the cursor (Ctrl+Enter)")
        self.continue_button.clicked.connect(self.continue_text)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop writing (Esc in the editor)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.alt_button = QPushButton("Alternatives")
        self.alt_button.setToolTip("Several short continuations to choose from")
        self.alt_button.clicked.connect(self.request_alternatives)
        self.alt_count = cast(QSpinBox, self.alt_form.editor("n"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.continue_button)
        buttons.addWidget(self.stop_button)
        alt_row = QHBoxLayout()
        alt_row.addWidget(self.alt_button, 1)
        alt_row.addWidget(self.alt_form.widget("n"))

        self.alt_list = AlternativeCards()
        self.alt_list.chosen.connect(self.use_alternative)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(sampling)
        rv.addLayout(buttons)
        rv.addLayout(alt_row)
        rv.addWidget(self.alt_list, 1)
        rv.addWidget(self.status)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([700, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)  # above both columns, so the panel can be narrow
        layout.addWidget(split)

        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_IDLE_MS)
        self._autosave_timer.timeout.connect(self.autosave)
        self.form.changed.connect(self._on_sampling_changed)
        self.apply_sampler(self.form.p.sampler)  # a remembered style shows its own numbers
        self._open_session()

    # -- settings -------------------------------------------------------------------------------
    def apply_sampler(self, name: str) -> None:
        """Choose a sampler style: a named preset shows its numbers; Custom keeps them."""
        if name != CUSTOM:
            for field, value in sampler_preset(name).values().items():
                self.form.set_value(field, value)
        self.form.set_value("sampler", name)

    def _on_sampling_changed(self, name: str) -> None:
        if name == "sampler":
            self.apply_sampler(self.form.p.sampler)
        elif name in SAMPLER_FIELDS:  # a number edited by hand: Custom, unless it is a preset
            values = {f: getattr(self.form.p, f) for f in SAMPLER_FIELDS}
            self.form.set_value("sampler", matching_preset(values))

    def _random_toggled(self, on: bool) -> None:
        self.form.widget("seed").setEnabled(not on)

    def generate_params(self, model: str, prompt: str = "") -> GenerateParams | None:
        """The checked params of a continuation (None after saying what is wrong)."""
        seed = None if self.random_seed.isChecked() else self.seed.value()
        p: GenerateParams | None = self.form.checked(self.status, model=Path(model),
                                                     prompt=prompt, seed=seed)
        return p

    def remember(self) -> None:
        """Keep the sampling settings and the chosen model for the next session (the text
        lives in the documents, not in the settings)."""
        seed = None if self.random_seed.isChecked() else self.seed.value()
        self.host.remember("generate", dataclasses.replace(self.form.p, prompt="", seed=seed))
        self.host.remember("alternatives", self.alt_form.p)

    # -- documents ------------------------------------------------------------------------------
    def _open_session(self) -> None:
        session = self.store.read_session()
        docs = self.store.list()
        current = session.get("current")
        if current and any(d.id == current for d in docs):
            self.open_document(current)
            if not session.get("clean_exit", True):
                self.recovered = current
                saved = time.localtime(self.store.path(current).stat().st_mtime)
                self.save_label.setText("Recovered after an unexpected exit (autosaved "
                                        f"{time.strftime('%H:%M:%S', saved)})")
            cursor = self.editor.textCursor()
            cursor.setPosition(min(int(session.get("cursor", 0)),
                                   len(self.editor.toPlainText())))
            self.editor.setTextCursor(cursor)
        elif docs:
            self.open_document(docs[0].id)
        else:
            self.new_document()
        self.store.write_session(clean_exit=False)

    def _refresh_docs(self) -> None:
        self.docs.blockSignals(True)
        self.docs.clear()
        for d in self.store.list():
            self.docs.addItem(d.title, d.id)
        idx = self.docs.findData(self.doc_id)
        if idx >= 0:
            self.docs.setCurrentIndex(idx)
        self.docs.blockSignals(False)

    def open_document(self, doc_id: str) -> None:
        self.autosave()
        self.stop()
        self._loading = True
        try:
            self.editor.setPlainText(self.store.load(doc_id))
        finally:
            self._loading = False
        self.doc_id = doc_id
        self.editor.moveCursor(QTextCursor.MoveOperation.End)
        self.store.write_session(current=doc_id)
        self.save_label.setText("Saved")
        self._refresh_docs()

    def new_document(self, text: str = "") -> str:
        self.autosave()
        doc_id = self.store.new(text)
        self.open_document(doc_id)
        return doc_id

    def _on_doc_chosen(self, index: int) -> None:
        doc_id = self.docs.itemData(index)
        if doc_id and doc_id != self.doc_id:
            self.open_document(doc_id)

    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a text", "",
                                              "Text (*.txt *.md *.markdown);;All files (*)")
        if path:
            self.import_file(path)

    def import_file(self, path: str | Path) -> str | None:
        """A copy of a UTF-8 text file as a new document; bad files get a message."""
        from plugins.writer.engine.corpus import read_text_file
        from studio.errors import UserError

        try:
            text = read_text_file(path)
        except UserError as exc:
            self.status.setText(str(exc))
            QMessageBox.warning(self, "Cannot open", str(exc))
            return None
        return self.new_document(text)

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export", "", "Text (*.txt);;Markdown (*.md)")
        if path:
            self.export_to(path)

    def export_to(self, path: str | Path) -> Path:
        out = self.store.export(self.editor.toPlainText(), path)
        self._stamp(out)
        self.message.emit(f"Exported to {out}")
        self.status.setText(f"Exported to {out}")
        return out

    def _stamp(self, out: Path) -> None:
        """The export's provenance: the user's text with the chosen model's continuations in it
        (a composite), the model by name, the last continuation's seed and the sampling
        settings. Markdown carries it in an HTML comment, plain text in a sidecar file. Before
        any continuation in this session it names no model: the text may be the user's alone."""
        from plugins.common import provenance

        model = self.model_path() if self._last_seed is not None else None
        settings = dataclasses.replace(self.form.p, prompt="")
        provenance.stamp(out, provenance.make(
            "writer", "export", model=model or None, seed=self._last_seed, params=settings,
            source_type=provenance.COMPOSITE_TRAINED if model else ""))

    def _ask_delete(self) -> None:
        if self.doc_id is None:
            return
        answer = QMessageBox.question(self, "Delete document",
                                      f"Delete “{self.docs.currentText()}”? This cannot be undone.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_current()

    def delete_current(self) -> None:
        if self.doc_id is None:
            return
        self.stop()
        self._autosave_timer.stop()
        self.store.delete(self.doc_id)
        self.doc_id = None
        docs = self.store.list()
        if docs:
            self.open_document(docs[0].id)
        else:
            self.new_document()

    # -- autosave -------------------------------------------------------------------------------
    def _on_text_changed(self) -> None:
        if self._loading:
            return
        now = time.monotonic()
        if self._dirty_since is None:
            self._dirty_since = now
        self.save_label.setText("Editing…")
        if now - self._dirty_since >= AUTOSAVE_MAX_S:
            self.autosave()
        else:
            self._autosave_timer.start()

    def autosave(self) -> None:
        """Write the document now if it changed (atomic: a crash mid-write keeps the old file)."""
        self._autosave_timer.stop()
        if self._dirty_since is None or self.doc_id is None:
            return
        try:
            self.store.save(self.doc_id, self.editor.toPlainText())
            self.store.write_session(current=self.doc_id,
                                     cursor=self.editor.textCursor().position())
        except OSError as exc:
            self.save_label.setText(f"Autosave failed: {exc}")
            return
        self._dirty_since = None
        self.save_label.setText(f"Saved {time.strftime('%H:%M:%S')}")
        title = self.docs.currentText()
        from plugins.writer.ui.documents import title_of

        new_title = title_of(self.editor.toPlainText())
        if new_title != title:
            self._refresh_docs()

    def shutdown(self) -> None:
        self.stop()
        self.autosave()
        self.remember()
        if self.doc_id is not None:
            self.store.write_session(current=self.doc_id,
                                     cursor=self.editor.textCursor().position(), clean_exit=True)

    # -- generation -----------------------------------------------------------------------------
    def _model_or_warn(self) -> str | None:
        model = self.model_path()
        if not model:
            self.status.setText("Choose a model first (train one in the Train tab, or Browse "
                                "for a model folder).")
            return None
        return model

    @property
    def busy(self) -> bool:
        return self._handle is not None

    def continue_text(self) -> JobHandle | None:
        """Stream a continuation into the document at the cursor."""
        if self._handle is not None:
            return None
        model = self._model_or_warn()
        if model is None:
            return None
        cursor = self.editor.textCursor()
        pos = cursor.selectionEnd()
        params = self.generate_params(model, self.editor.toPlainText()[:pos][-PROMPT_CHARS:])
        if params is None:
            return None
        self._insert = QTextCursor(self.editor.document())
        self._insert.setPosition(pos)
        self._first_chunk = True
        handle = self.host.submit("generate", params, show_plots=False)
        self.remember()  # the settings, without the prompt the host remembered with them
        self._handle = handle
        handle.preview.connect(lambda kind, payload, data, h=handle: self._on_preview(
            h, kind, payload, data))
        handle.finished.connect(lambda rec, h=handle: self._on_finished(h, rec))
        self._set_busy(True)
        self.status.setText("Writing…")
        return handle

    def _on_preview(self, handle: JobHandle, kind: str, payload: Any, data: Any) -> None:
        if handle is not self._handle:
            return  # stopped: ignore what was still in flight
        if kind == "text" and self._insert is not None and payload:
            if self._first_chunk:
                self._insert.beginEditBlock()
                self._first_chunk = False
            else:
                self._insert.joinPreviousEditBlock()
            self._insert.insertText(str(payload), generated_format(self.editor))
            self._insert.endEditBlock()
            self.editor.setTextCursor(self._insert)
            self.editor.setCurrentCharFormat(own_format())  # what you type is yours
            self.editor.ensureCursorVisible()
        elif kind == "stats" and isinstance(payload, dict):
            self._show_stats(payload)

    def _show_stats(self, stats: dict[str, Any]) -> None:
        seed = stats.get("seed")
        self._last_seed = int(seed) if isinstance(seed, int) else self._last_seed
        tps = float(stats.get("tokens_per_s", 0.0))
        first = float(stats.get("first_token_s", 0.0))
        self.speed_label.setText(f"{tps:.1f} tokens/s · first token in {first:.2f} s · "
                                 f"seed {stats.get('seed', '?')}")

    def _on_finished(self, handle: JobHandle, rec: Any) -> None:
        if handle is not self._handle:
            return
        self._handle = None
        self._insert = None
        self._set_busy(False)
        if rec.state == "failed":
            self.status.setText(f"Could not continue: {rec.error}")
        elif rec.state == "cancelled":
            self.status.setText("Stopped.")
        else:
            self.status.setText("")
        self.autosave()

    def stop(self) -> None:
        """Stop the running continuation (and alternatives) at once."""
        for h in (self._handle, self._alt_handle):
            if h is not None and not h.is_finished:
                h.cancel()
        if self._handle is not None:
            self._handle = None
            self._insert = None
            self.status.setText("Stopped.")
        self._alt_handle = None
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.continue_button.setEnabled(not busy)
        self.alt_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy or self._alt_handle is not None)

    # -- alternatives ---------------------------------------------------------------------------
    def request_alternatives(self) -> JobHandle | None:
        if self._handle is not None or self._alt_handle is not None:
            return None
        model = self._model_or_warn()
        if model is None:
            return None
        pos = self.editor.textCursor().selectionEnd()
        settings = self.generate_params(model, self.editor.toPlainText()[:pos][-PROMPT_CHARS:])
        if settings is None:
            return None
        self._alt_anchor = pos
        n = self.alt_count.value()
        params = AlternativesParams.following(settings, n)
        self.alt_list.start(n)
        handle = self.host.submit("alternatives", params, show_plots=False)
        self.remember()
        self._alt_handle = handle
        handle.preview.connect(lambda kind, payload, data, h=handle: self._on_alt_preview(
            h, kind, payload, data))
        handle.finished.connect(lambda rec, h=handle: self._on_alt_finished(h, rec))
        self.continue_button.setEnabled(False)
        self.alt_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("Writing alternatives…")
        return handle

    def _on_alt_preview(self, handle: JobHandle, kind: str, payload: Any, data: Any) -> None:
        if handle is not self._alt_handle:
            return
        if kind == "text":
            self.alt_list.append(int(data.get("index", 0)), str(payload))
        elif kind == "stats" and isinstance(payload, dict):
            self._show_stats(payload)

    def _on_alt_finished(self, handle: JobHandle, rec: Any) -> None:
        if handle is not self._alt_handle:
            return
        self._alt_handle = None
        self._set_busy(self._handle is not None)
        if rec.state == "failed":
            self.status.setText(f"Could not write alternatives: {rec.error}")
        elif rec.state == "done":
            self.alt_list.finish(list(rec.result or []))
            self.status.setText("Insert the one you like.")

    def use_alternative(self, index: int) -> None:
        """Insert alternative ``index`` where Alternatives was pressed."""
        text = self.alt_list.text(index)
        if not text:
            return
        cursor = QTextCursor(self.editor.document())
        cursor.setPosition(min(self._alt_anchor, len(self.editor.toPlainText())))
        cursor.insertText(text, generated_format(self.editor))
        self.editor.setTextCursor(cursor)
        self.editor.setCurrentCharFormat(own_format())
        self.editor.setFocus()

    def _type_as_yourself(self) -> None:
        """What the user types is theirs, even right after (or inside) the model's words: a
        cursor placed there would otherwise take on the tint of the text before it. Called
        before each key press (moving the cursor resets the format, so earlier is too early)."""
        if not self.editor.textCursor().hasSelection() and is_generated(
                self.editor.currentCharFormat()):
            self.editor.setCurrentCharFormat(own_format())

    # -- keys and drops on the editor ---------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if watched is self.editor and kind in (QEvent.Type.ShortcutOverride,
                                               QEvent.Type.KeyPress):
            key = cast(QKeyEvent, event)
            if kind == QEvent.Type.KeyPress:
                self._type_as_yourself()
            if key.key() == Qt.Key.Key_Escape and self.stop_button.isEnabled():
                event.accept()  # before the window's Esc (stop a training run)
                if kind == QEvent.Type.KeyPress:
                    self.stop()
                return True
        if watched is self.editor.viewport() and kind in (QEvent.Type.DragEnter,
                                                          QEvent.Type.DragMove,
                                                          QEvent.Type.Drop):
            drag = cast(QDropEvent, event)
            files = dropped_texts(drag.mimeData())
            if not files:
                return False  # text dragged within the editor: Qt's own handling
            drag.acceptProposedAction()
            if kind == QEvent.Type.Drop:
                for path in files:
                    self.import_file(path)
            return True
        return super().eventFilter(watched, event)
