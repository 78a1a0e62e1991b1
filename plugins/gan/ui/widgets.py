"""Small Qt building blocks for the GAN panel: image views, a clickable sample grid, the run
folder picker. No torch here; images arrive as uint8 numpy arrays from jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QWidget,
)


def to_qimage(image: np.ndarray) -> QImage:
    """uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` into a QImage that owns its pixels."""
    arr = np.ascontiguousarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.ascontiguousarray(arr[..., 0])
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        qimg = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    else:
        qimg = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    return qimg.copy()


def to_pixmap(image: np.ndarray, scale: int = 1) -> QPixmap:
    pix = QPixmap.fromImage(to_qimage(image))
    if scale > 1:
        pix = pix.scaled(pix.width() * scale, pix.height() * scale,
                         Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.FastTransformation)
    return pix


class ImageView(QLabel):
    """Shows one image as large as fits, enlarged with crisp (nearest) pixels."""

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: np.ndarray | None = None
        self._placeholder = placeholder
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setObjectName("placeholder")
        self.setText(placeholder)
        self.setWordWrap(True)

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    def set_image(self, image: np.ndarray | None) -> None:
        self._image = None if image is None else np.asarray(image)
        self._render()

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._render()

    def _render(self) -> None:
        if self._image is None:
            self.setPixmap(QPixmap())
            self.setText(self._placeholder)
            return
        avail = self.contentsRect().size()
        pix = QPixmap.fromImage(to_qimage(self._image))
        if avail.width() > 8 and avail.height() > 8:
            # as large as fits, with crisp pixels (nearest neighbour) for small GAN images
            pix = pix.scaled(avail, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.FastTransformation)
        self.setPixmap(pix)

    def sizeHint(self) -> QSize:
        return QSize(320, 320)


class SampleGrid(QWidget):
    """Generated samples as clickable tiles; ``clicked(index)`` when one is chosen."""

    clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setSpacing(3)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.tiles: list[QToolButton] = []
        self.images: np.ndarray | None = None
        self.tile_px = 72

    def set_images(self, images: np.ndarray, columns: int, tooltips: list[str] | None = None
                   ) -> None:
        for t in self.tiles:
            t.deleteLater()
        self.tiles = []
        self.images = images
        for i, img in enumerate(images):
            btn = QToolButton()
            h = img.shape[0]
            scale = max(1, self.tile_px // max(h, 1))
            pix = to_pixmap(img, scale)
            btn.setIcon(pix)
            btn.setIconSize(pix.size())
            btn.setAutoRaise(True)
            btn.setCursor(Qt.CursorShape.PointingHandCursor)
            if tooltips:
                btn.setToolTip(tooltips[i])
            btn.clicked.connect(lambda _=False, i=i: self.clicked.emit(i))
            self.grid.addWidget(btn, i // columns, i % columns)
            self.tiles.append(btn)

    def update_images(self, images: np.ndarray) -> None:
        """Replace the pictures in place (live slider edits: no flicker, no relayout)."""
        if self.images is None or len(images) != len(self.tiles):
            return
        self.images = images
        for btn, img in zip(self.tiles, images, strict=True):
            scale = max(1, self.tile_px // max(img.shape[0], 1))
            btn.setIcon(to_pixmap(img, scale))


class FolderPicker(QWidget):
    """The run folder a training job writes to: a line edit and a Browse button. (Job
    parameters get their widgets from their params class; the run folder is the host's
    ``out``, not a parameter.)"""

    changed = Signal(str)

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.line = QLineEdit()
        self.line.setPlaceholderText(placeholder)
        self.line.textChanged.connect(self.changed.emit)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.line, 1)
        lay.addWidget(self.browse)
        self.start_dir: Callable[[], str] = lambda: self.line.text()

    def text(self) -> str:
        return self.line.text().strip()

    def setText(self, text: str) -> None:
        self.line.setText(text)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder", self.start_dir())
        if path:
            self.line.setText(path)


def caption(text: str) -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    lab.setObjectName("placeholder")
    return lab


def banner(parent: QWidget | None = None) -> QLabel:
    """A warning strip (hidden until it has something to say), in the theme's warning colour
    (object name "warning": it follows a change of theme and reads at 4.5:1 in both)."""
    lab = QLabel(parent)
    lab.setWordWrap(True)
    lab.setObjectName("warning")
    lab.setStyleSheet("QLabel { background: palette(base); border: 1px solid palette(mid); "
                      "border-radius: 4px; padding: 6px; }")
    lab.hide()
    return lab


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def dropped_data(mime: Any) -> tuple[Path, int] | None:
    """What a drag onto the Train tab would train on: a dropped folder ``(folder, 0)``, or
    the folder holding dropped images ``(folder, number of images)``; None for anything else
    (other files, images from different folders, text)."""
    if not mime.hasUrls():
        return None
    paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0], 0
    images = [p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not images or len(images) != len(paths) or len({p.parent for p in images}) != 1:
        return None
    return images[0].parent, len(images)


def dropped_png(mime: Any) -> Path | None:
    """The one PNG dropped (onto Explore: draw it again from its recipe), else None."""
    if not mime.hasUrls():
        return None
    paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if len(paths) == 1 and paths[0].suffix.lower() == ".png" and paths[0].is_file():
        return paths[0]
    return None


def ask_save(parent: QWidget, title: str, start: Path, file_filter: str) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, str(start), file_filter)
    return Path(path) if path else None
