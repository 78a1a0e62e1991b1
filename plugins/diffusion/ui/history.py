"""The history strip: one thumbnail per generated image; a click restores its settings.

Each entry keeps the image, how it was made (the A1111 record the PNG and its layer carry) and
the job's typed params it came from (with the image's own seed), which a click hands back to the
editor's form.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from . import qimages

THUMB = 48


class HistoryStrip(QListWidget):
    """Newest first. ``restore(settings)`` (the params object) when an entry is clicked,
    ``reuse(index)`` on a double click (adds the image to the canvas again)."""

    restore = Signal(object)
    reuse = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setMinimumHeight(THUMB + 26)
        self.setMovement(QListView.Movement.Static)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.entries: list[tuple[np.ndarray, dict[str, Any], Any]] = []
        self.itemClicked.connect(self._clicked)
        self.itemDoubleClicked.connect(
            lambda item: self.reuse.emit(int(item.data(Qt.ItemDataRole.UserRole))))

    def add(self, image: np.ndarray, params: dict[str, Any], settings: Any) -> None:
        """``params``: how the image was made (A1111 record as JSON); ``settings``: the job's
        params object that made it."""
        index = len(self.entries)
        self.entries.append((image, params, settings))
        pix = QPixmap.fromImage(qimages.from_array(image)).scaled(
            THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation)
        item = QListWidgetItem(QIcon(pix), f"{params.get('mode', '')} {params.get('seed', '')}")
        item.setData(Qt.ItemDataRole.UserRole, index)
        tip = params.get("prompt") or "(no prompt)"
        sampler = params.get("scheduler")  # A1111's name, e.g. "DPM++ 2M Karras"
        item.setToolTip(f"{tip}\n{sampler}, {params.get('steps')} steps, seed "
                        f"{params.get('seed')}\nClick: restore these settings. Double-click: "
                        "add the image to the canvas.")
        self.insertItem(0, item)

    def _clicked(self, item: QListWidgetItem) -> None:
        index = int(item.data(Qt.ItemDataRole.UserRole))
        self.restore.emit(self.entries[index][2])
