"""Layout pieces panels share (levels, music): a settings column that scrolls on its own (so
a tab's buttons stay in view), a "Show advanced settings" fold, and a picture label that
shrinks with the room it has.

Why the scroll area's vertical size policy is Ignored: a tab holding word-wrapped labels has a
height for its width, and Qt then takes the tab's *preferred* height for that width as its
minimum, so the whole panel scrolled at 1280x720 instead of the settings column.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QWidget,
)


class SettingsScroll(QScrollArea):
    """A settings column that scrolls vertically only: as wide as its contents need (asked
    again whenever they change, so nothing is clipped on the right), never taller than they
    are (the room left goes to the tab's lists and pictures) and never lending the tab a
    preferred height (see the module docstring)."""

    def __init__(self, content: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setWidget(content)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        content.installEventFilter(self)
        self._fit_height()

    def minimumSizeHint(self) -> QSize:
        content = self.widget()
        bar = self.verticalScrollBar().sizeHint().width()
        w = content.minimumSizeHint().width() if content is not None else 0
        return QSize(w + bar + 2 * self.frameWidth(), 60)

    def _fit_height(self) -> None:
        content = self.widget()
        if content is not None:
            self.setMaximumHeight(max(60, content.sizeHint().height() + 2 * self.frameWidth()))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.widget() and event.type() in (QEvent.Type.LayoutRequest,
                                                         QEvent.Type.Show,
                                                         QEvent.Type.PolishRequest):
            self._fit_height()
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._fit_height()


def settings_scroll(content: QWidget) -> QScrollArea:
    """``content`` in a :class:`SettingsScroll`."""
    return SettingsScroll(content)


def advanced_toggle(section: QWidget) -> QCheckBox:
    """"Show advanced settings": shows ``section`` while ticked (folded to start with)."""
    box = QCheckBox("Show advanced settings")
    box.setToolTip("Settings most levels do not need")
    section.setVisible(False)
    box.toggled.connect(section.setVisible)
    return box


class FitPicture(QLabel):
    """A picture scaled to the label's size (aspect kept): it takes the room there is and
    never asks for more, so a big preview does not push the tab's buttons out of view."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = QPixmap()
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)

    def set_picture(self, pix: QPixmap) -> None:
        self._full = pix
        self._rescale()

    def _rescale(self) -> None:
        if self._full.isNull():
            return
        w, h = max(1, self.width()), max(1, self.height())
        self.setPixmap(self._full.scaled(w, h, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.FastTransformation))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._rescale()
