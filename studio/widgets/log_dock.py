"""The Log dock: job messages, warnings and full tracebacks of failed jobs."""

from __future__ import annotations

import html
import time

from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from studio import theme

LEVEL_COLOURS = {"warning": "warning", "error": "error", "debug": "muted"}  # theme.colour
MAX_LINES = 5000


class LogWidget(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        font: QFont = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.view.setFont(font)
        clear = QPushButton("Clear log")
        clear.clicked.connect(self.view.clear)
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(clear)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        lay.addLayout(bar)

    def append(self, level: str, text: str, job_id: int = 0) -> None:
        stamp = time.strftime("%H:%M:%S")
        prefix = f"{stamp} " + (f"[job {job_id}] " if job_id else "")
        colour = theme.colour(LEVEL_COLOURS[level]) if level in LEVEL_COLOURS else None
        body = html.escape(prefix + text).replace("\n", "<br>").replace("  ", "&nbsp;&nbsp;")
        if colour:
            body = f'<span style="color:{colour}">{body}</span>'
        self.view.appendHtml(body)

    def text(self) -> str:
        return self.view.toPlainText()
