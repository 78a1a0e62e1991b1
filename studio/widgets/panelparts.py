"""Pieces every plugin panel shares, so panels read alike (issue 16's "one panel grammar"):
a header (title and one line of what the panel does), the primary button, and the result
line "Saved · Show in folder · Open" that stands where panels used to print paths.

Why here: the same three things were built by hand in each panel, with different words
("Done: /tmp/.../runs/gan/2026..."), so each panel said a finished job differently.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


def header(title: str, what: str) -> QWidget:
    """The panel's title and one line of what it does (the window's style sheet sizes the
    title: object name ``pluginTitle``; the line is a ``caption``)."""
    box = QWidget()
    box.setObjectName("panelHeader")
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 2)
    lay.setSpacing(0)
    t = QLabel(title)
    t.setObjectName("pluginTitle")
    line = QLabel(what)
    line.setObjectName("caption")
    line.setWordWrap(True)
    lay.addWidget(t)
    lay.addWidget(line)
    return box


def primary(button: QPushButton) -> QPushButton:
    """Mark ``button`` as the panel's (or tab's) main action: styled as primary, pressed by
    Ctrl+Enter (the window looks for the visible button with this object name)."""
    button.setObjectName("primary")
    tip = button.toolTip()
    if "Ctrl+Enter" not in tip:
        button.setToolTip((tip + " " if tip else "") + "(Ctrl+Enter)")
    return button


def reveal(path: Path) -> None:
    """Open the system's file manager at ``path`` (its folder when it is a file)."""
    folder = path if path.is_dir() else path.parent
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def open_path(path: Path) -> None:
    """Open ``path`` with the system's program for it."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class ResultLine(QWidget):
    """"Saved · Show in folder · Open": what a finished job made, in words, with the two
    things a person does next. Hidden until there is a result.

    ``show_result("Saved", path)`` names nothing but the words given; the path is only
    behind the buttons (and in their tooltips, for whoever wants to know where). ``open_``
    replaces "Open the file" with the panel's own next step ("Explore it").
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self._open: Callable[[], None] | None = None
        self.text = QLabel("")
        self.text.setObjectName("success")
        self.text.setWordWrap(True)
        self.folder_button = self._link("Show in folder", self.show_folder)
        self.open_button = self._link("Open", self.open)
        self.dots = [QLabel("·"), QLabel("·")]
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.text)
        lay.addWidget(self.dots[0])
        lay.addWidget(self.folder_button)
        lay.addWidget(self.dots[1])
        lay.addWidget(self.open_button)
        lay.addStretch(1)
        self.hide()

    @staticmethod
    def _link(text: str, slot: Callable[[], None]) -> QPushButton:
        """A button that reads as a link (it is still a button: Tab reaches it, Space
        presses it)."""
        b = QPushButton(text)
        b.setFlat(True)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        b.setStyleSheet("QPushButton { border: none; padding: 0 2px; color: palette(link); "
                        "text-decoration: underline; }")
        b.clicked.connect(slot)
        return b

    def show_result(self, text: str, path: Path | None = None, *,
                    open_: Callable[[], None] | None = None, open_text: str = "Open") -> None:
        self.path = Path(path) if path is not None else None
        self._open = open_
        self.text.setText(text)
        self.text.setObjectName("success")
        self._restyle()
        has = self.path is not None
        self.folder_button.setVisible(has)
        self.folder_button.setToolTip(f"Open the folder that holds {self.path.name}" if has
                                      and self.path else "")
        self.open_button.setText(open_text)
        self.open_button.setVisible(open_ is not None or has)
        self.dots[0].setVisible(has)
        self.dots[1].setVisible(self.open_button.isVisibleTo(self) and has)
        self.show()

    def show_problem(self, text: str) -> None:
        """A failure in the same place, in the theme's error colour (no buttons)."""
        self.path = None
        self._open = None
        self.text.setText(text)
        self.text.setObjectName("error")
        self._restyle()
        self.folder_button.hide()
        self.open_button.hide()
        for dot in self.dots:
            dot.hide()
        self.show()

    def clear(self) -> None:
        self.path = None
        self._open = None
        self.text.setText("")
        self.hide()

    def _restyle(self) -> None:
        style = self.text.style()
        style.unpolish(self.text)
        style.polish(self.text)

    def show_folder(self) -> None:
        if self.path is not None:
            reveal(self.path)

    def open(self) -> None:
        if self._open is not None:
            self._open()
        elif self.path is not None:
            open_path(self.path)
