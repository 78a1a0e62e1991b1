"""Small pieces of the Write tab: alternatives as cards, the tint of model-written text, and
what a drop of files onto the writer means.

Why cards: in a list, several continuations of a few lines ran together (one wrapped item
after another, told apart only by the selection), and inserting one took a double-click that
nobody finds. Each alternative is now its own framed card with its own Insert button.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QTextCharFormat, QTextFormat
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
EMPTY = "(nothing: the model ended the text here)"


#: the character-format property that marks text the model wrote
GENERATED = QTextFormat.Property.UserProperty + 1


def generated_format(editor: QPlainTextEdit) -> QTextCharFormat:
    """The character format of model-written text: a faint tint of the theme's highlight
    colour (readable in both themes: the text colour is unchanged)."""
    tint = QColor(editor.palette().highlight().color())
    tint.setAlpha(60)
    fmt = QTextCharFormat()
    fmt.setBackground(tint)
    fmt.setProperty(GENERATED, True)
    return fmt


def own_format() -> QTextCharFormat:
    """The format of what the user types: explicitly untinted (an empty format would let
    Qt take the tint of the text before the cursor)."""
    fmt = QTextCharFormat()
    fmt.setBackground(QBrush(Qt.BrushStyle.NoBrush))
    fmt.setProperty(GENERATED, False)
    return fmt


def is_generated(fmt: QTextCharFormat) -> bool:
    """Whether text in format ``fmt`` was written by the model."""
    return bool(fmt.boolProperty(GENERATED))


def dropped_texts(mime: Any) -> list[Path]:
    """The text files (and the text files in dropped folders) of a drop; [] when the drop
    holds anything else, so Qt's own handling (dragging text) goes on."""
    if not mime.hasUrls():
        return []
    paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if not paths:
        return []
    files = [p for p in paths if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES]
    return files if len(files) == len(paths) else []


def dropped_corpus(mime: Any) -> Path | None:
    """One text file or one folder dropped (onto Train or Evaluate): the text to use."""
    if not mime.hasUrls():
        return None
    paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if len(paths) != 1:
        return None
    p = paths[0]
    if p.is_dir() or (p.is_file() and p.suffix.lower() in TEXT_SUFFIXES):
        return p
    return None


class Card(QFrame):
    """One alternative: its text and an Insert button."""

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("altCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("QFrame#altCard { background: palette(base); border: 1px solid "
                           "palette(mid); border-radius: 6px; }")
        self.value = ""
        self.label = QLabel("…")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.insert = QPushButton("Insert")
        self.insert.setToolTip("Insert this alternative where you asked for alternatives")
        self.insert.setAccessibleName(f"Insert alternative {index + 1}")
        self.insert.setEnabled(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        number = QLabel(f"{index + 1}")
        number.setObjectName("caption")
        row.addWidget(number)
        row.addStretch(1)
        row.addWidget(self.insert)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.addWidget(self.label)
        lay.addLayout(row)

    def set_text(self, text: str, final: bool = False) -> None:
        self.value = text
        self.label.setText(text.strip() or (EMPTY if final else "…"))
        self.insert.setEnabled(final and bool(text))


class AlternativeCards(QScrollArea):
    """The alternatives, one card each, in a column that scrolls on its own."""

    #: the user wants alternative ``index`` in the text
    chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumHeight(60)
        self.cards: list[Card] = []
        body = QWidget()
        self.column = QVBoxLayout(body)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.hint = QLabel("Alternatives appear here as cards: insert the one you like.")
        self.hint.setObjectName("caption")
        self.hint.setWordWrap(True)
        self.column.addWidget(self.hint)
        self.column.addStretch(1)
        self.setWidget(body)

    def count(self) -> int:
        return len(self.cards)

    def text(self, index: int) -> str:
        return self.cards[index].value if 0 <= index < len(self.cards) else ""

    def start(self, n: int) -> None:
        """``n`` empty cards, filled as the alternatives stream in."""
        for card in self.cards:
            card.deleteLater()
        self.cards = []
        self.hint.hide()
        for i in range(n):
            card = Card(i)
            card.insert.clicked.connect(lambda _=False, i=i: self.chosen.emit(i))
            self.column.insertWidget(self.column.count() - 1, card)
            self.cards.append(card)

    def append(self, index: int, chunk: str) -> None:
        if 0 <= index < len(self.cards):
            card = self.cards[index]
            card.set_text(card.value + chunk)

    def finish(self, texts: list[str]) -> None:
        for card, text in zip(self.cards, texts, strict=False):
            card.set_text(text, final=True)
