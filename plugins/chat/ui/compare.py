"""A/B: the same message answered by two models, side by side.

The ``compare`` job answers with model A, then with model B as a sibling reply (so the chat
keeps both, and the arrows switch between them). While it runs, the two replies stream into two
columns above the conversation; they stay there until closed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.params import MODEL_KINDS
from plugins.chat.ui.words import stats_words
from studio.widgets.modelpicker import ModelPicker


class CompareSection(QWidget):
    """Model B, and the button that sends the message box to both models."""

    compare = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picker_b = ModelPicker(MODEL_KINDS)
        self.picker_b.setToolTip("The second model: an improved one, another size, a GGUF copy")
        self.button = QPushButton("Compare: send to both")
        self.button.setToolTip("Send the message you wrote to the chat's model (A) and to "
                               "this one (B); both replies are kept in the chat")
        self.button.clicked.connect(self.compare.emit)
        rows = QFormLayout()
        rows.addRow("Model B:", self.picker_b)
        note = QLabel("Write a message below, then compare how the chosen model (A) and model "
                      "B answer it, side by side.")
        note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(rows)
        lay.addWidget(self.button)
        lay.addWidget(note)
        lay.addStretch(1)

    def model_b(self) -> Path | None:
        return self.picker_b.path()


class CompareView(QWidget):
    """Two replies side by side, streaming."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.titles = [QLabel(""), QLabel("")]
        self.views = [QTextBrowser(), QTextBrowser()]
        self.figures = [QLabel(""), QLabel("")]
        self.texts = ["", ""]
        split = QSplitter()
        for i in range(2):
            col = QWidget()
            v = QVBoxLayout(col)
            v.setContentsMargins(0, 0, 0, 0)
            self.titles[i].setWordWrap(True)
            self.figures[i].setWordWrap(True)
            v.addWidget(self.titles[i])
            v.addWidget(self.views[i], 1)
            v.addWidget(self.figures[i])
            split.addWidget(col)
        close = QPushButton("Close")
        close.clicked.connect(self.hide)
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Side by side</b> (both replies are kept in the chat: ‹ › "
                             "switches)"), 1)
        top.addWidget(close)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(80)
        self._timer.timeout.connect(self.flush)
        self.hide()

    def start(self, a: str, b: str) -> None:
        self.texts = ["", ""]
        for i, name in enumerate((a, b)):
            self.titles[i].setText(f"<b>{'AB'[i]}</b>: {name}")
            self.views[i].setMarkdown("")
            self.figures[i].setText("waiting…" if i else "loading the model…")
        self.show()

    def on_event(self, kind: str, payload: Any, data: Any) -> None:
        i = int((data or {}).get("index", 0)) if isinstance(data, dict) else 0
        if i not in (0, 1):
            return
        if kind == "reply":
            self.figures[i].setText("writing…")
        elif kind == "text":
            self.texts[i] += str(payload)
            if not self._timer.isActive():
                self._timer.start()
        elif kind == "stats" and isinstance(payload, dict):
            self.flush()
            self.figures[i].setText(stats_words(payload))

    def flush(self) -> None:
        self._timer.stop()
        for i in range(2):
            if self.views[i].toMarkdown().strip() != self.texts[i].strip():
                self.views[i].setMarkdown(self.texts[i])

