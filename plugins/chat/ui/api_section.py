"""The "Local API" section: an OpenAI-compatible server for other apps on this computer.

Off until started; the ``serve`` job binds 127.0.0.1 only and refuses any request without the
random bearer token it shows here. Stop ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.params import ServeParams
from plugins.chat.ui.words import error_words
from studio.widgets.form import Form


class ApiSection(QWidget):
    def __init__(self, host: Any, model: Callable[[], Path | None],
                 persona: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.model = model
        self.persona = persona
        self.handle: Any = None
        self.info: dict[str, Any] | None = None
        self.form = Form(ServeParams, self, host.recall("serve", ServeParams))
        rows = QFormLayout()
        self.form.add_rows(rows, "port", "max_tokens")
        self.start = QPushButton("Start")
        self.start.setToolTip("Let other apps on this computer chat with the chosen model")
        self.start.clicked.connect(self.toggle)
        self.address = QLineEdit()
        self.address.setReadOnly(True)
        self.address.setPlaceholderText("not running")
        self.token = QLineEdit()
        self.token.setReadOnly(True)
        self.token.setPlaceholderText("made when it starts")
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.token.text()))
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(copy)
        rows.addRow("Address:", self.address)
        rows.addRow("Key:", token_row)
        self.message = QLabel("Off. When on, only programs on this computer can reach it, and "
                              "only with the key. Nothing leaves your machine.")
        self.message.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(rows)
        lay.addWidget(self.start)
        lay.addWidget(self.message)
        lay.addStretch(1)

    @property
    def running(self) -> bool:
        return self.handle is not None

    def toggle(self) -> Any:
        if self.handle is not None:
            self.handle.cancel()
            self.message.setText("Stopping…")
            return None
        model = self.model()
        if model is None:
            self.message.setText("Choose a model first.")
            return None
        p = self.form.checked(self.message, model=model, persona=self.persona())
        if p is None:
            return None
        handle = self.host.submit("serve", p, show_plots=False)
        self.handle = handle
        handle.preview.connect(self._on_preview)
        handle.finished.connect(lambda rec, h=handle: self._finished(h, rec))
        self.start.setText("Stop")
        self.message.setText("Starting: loading the model…")
        return handle

    def _on_preview(self, kind: str, payload: Any, data: Any) -> None:
        if kind == "api" and isinstance(payload, dict):
            self.info = payload
            self.address.setText(f"{payload['url']}/chat/completions")
            self.token.setText(str(payload["token"]))
            self.message.setText(f"On, with {payload.get('model')}. Other apps use the address "
                                 "above with the key as their API key (bearer token); only "
                                 "this computer can reach it.")

    def _finished(self, handle: Any, rec: Any) -> None:
        if handle is not self.handle:
            return
        self.handle = None
        self.info = None
        self.start.setText("Start")
        self.address.clear()
        self.token.clear()
        self.message.setText("Off." if rec.state in ("done", "cancelled")
                             else "⚠ " + error_words(rec.error))
