"""The "Model" section: how replies are made with the chosen model.

The reply job's own fields (Form binder on :class:`~plugins.chat.params.ReplyParams`): which
engine runs it, how long a reply may be, documents and memory; and the chat format (template):
the model's own, a named one, or the user's Jinja file, previewed by the ``template`` job so the
user sees exactly what the model will read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.params import TemplateParams
from plugins.chat.ui.words import TEMPLATE_NAMES, error_words
from studio.widgets.form import Form

OWN_FILE = "__file__"


class ModelSection(QWidget):
    """Backend, reply length, chat format and its preview."""

    #: the chat format changed ("" = the model's own, a built-in name, or a .jinja file)
    template_changed = Signal(str)

    def __init__(self, host: Any, form: Form, model: Callable[[], Path | None],
                 chat: Callable[[], int | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.form = form
        self.model = model
        self.chat = chat
        self._handle: Any = None
        rows = QFormLayout()
        form.add_rows(rows, "backend", "context", "max_new_tokens")
        self.template = QComboBox()
        self.template.setToolTip("How the conversation is written out for the model. The "
                                 "model's own is right for chat models; a model without one "
                                 "needs a choice")
        self.set_template_choices(())
        self.template.activated.connect(self._template_picked)
        rows.addRow("Chat format:", self.template)
        form.add_rows(rows, "passages", "memory", "intents")
        self.preview_button = QPushButton("Show what the model reads")
        self.preview_button.setToolTip("The next prompt of this chat in the chosen format, "
                                       "with its token count")
        self.preview_button.clicked.connect(self.preview)
        self.preview_text = QPlainTextEdit()
        self.preview_text.setReadOnly(True)
        self.preview_text.setPlaceholderText("The prompt appears here.")
        self.preview_text.setMinimumHeight(90)
        self.preview_info = QLabel("")
        self.preview_info.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.preview_button)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(rows)
        lay.addLayout(top)
        lay.addWidget(self.preview_info)
        lay.addWidget(self.preview_text, 1)

    # -- the chat format --------------------------------------------------------------------------
    def set_template_choices(self, model_names: tuple[str, ...], current: str = "") -> None:
        """Fill the format box: the model's own, its named templates, the built-ins, a file."""
        self.template.blockSignals(True)
        self.template.clear()
        for key, label in TEMPLATE_NAMES.items():
            self.template.addItem(label, key)
        for name in model_names:
            if name != "default":
                self.template.addItem(f"The model's “{name}”", name)
        self.template.addItem("Your own file…", OWN_FILE)
        self.show_template(current)
        self.template.blockSignals(False)

    def show_template(self, current: str) -> None:
        i = self.template.findData(current)
        if i < 0 and current:
            self.template.insertItem(self.template.count() - 1, Path(current).name, current)
            i = self.template.findData(current)
        self.template.blockSignals(True)
        self.template.setCurrentIndex(max(i, 0))
        self.template.blockSignals(False)

    def current_template(self) -> str:
        return str(self.template.currentData() or "")

    def _template_picked(self, _index: int) -> None:
        value = self.current_template()
        if value == OWN_FILE:
            path, _ = QFileDialog.getOpenFileName(self, "A chat format (Jinja)", "",
                                                  "Jinja templates (*.jinja *.j2 *.txt)")
            if not path:
                self.show_template(self.form.p.template)
                return
            value = path
            self.show_template(value)
        self.template_changed.emit(value)

    # -- preview ----------------------------------------------------------------------------------
    def preview(self) -> Any:
        """Run the template job for the chosen model (and this chat's next prompt)."""
        model = self.model()
        if model is None:
            self.preview_info.setText("Choose a model first.")
            return None
        p = TemplateParams(model=model, template=self.current_template(), chat=self.chat())
        self.preview_info.setText("Formatting…")
        handle = self.host.submit("template", p, show_plots=False, remember=False)
        self._handle = handle
        handle.finished.connect(lambda rec, h=handle: self._previewed(h, rec))
        return handle

    def _previewed(self, handle: Any, rec: Any) -> None:
        if handle is not self._handle:
            return
        self._handle = None
        if rec.state != "done":
            self.preview_info.setText("⚠ " + error_words(rec.error))
            return
        tp = rec.result
        self.preview_text.setPlainText(tp.text)
        tokens = f" · {tp.tokens:,} tokens" if tp.tokens is not None else ""
        system = "" if tp.supports_system else " · this format has no place for instructions"
        self.preview_info.setText(f"Format: {tp.label}{tokens}{system}")
