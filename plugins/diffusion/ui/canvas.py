"""The canvas view: shows a :class:`CanvasDocument` and turns mouse strokes into mask strokes.

It only paints: layers are pixmap items (re-made when the document says they changed), the mask
is a red overlay, and a live preview of a running generation floats on top. Zoom with the wheel
(or +/-, F to fit), pan with the middle button, the right button or Space+drag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from . import qimages
from .document import CanvasDocument

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class CanvasView(QGraphicsView):
    """Tools: ``"brush"`` and ``"eraser"`` paint the mask; ``"pan"`` drags the view."""

    zoom_changed = Signal(float)
    #: a picture file was dropped on the canvas (the editor opens it)
    image_dropped = Signal(Path)

    def __init__(self, doc: CanvasDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.tool = "brush"
        self.brush_size = 24.0  # diameter in image pixels
        self.hardness = 0.6
        self.mask_opacity = 0.5
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setMouseTracking(True)
        # no scroll bars: the view pans (Space, middle or right drag) and fits (F) like a paint
        # program's, and bars took room from the picture
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._frame = QGraphicsRectItem()
        self._frame.setBrush(QBrush(QColor(255, 255, 255)))  # the picture's own white
        self._scene.addItem(self._frame)
        self._layer_items: list[QGraphicsPixmapItem] = []
        self._mask_item = QGraphicsPixmapItem()
        self._mask_item.setZValue(1000)
        self._scene.addItem(self._mask_item)
        self._preview_item = QGraphicsPixmapItem()
        self._preview_item.setZValue(1001)
        self._preview_item.setOpacity(0.9)
        self._preview_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._preview_item.hide()
        self._scene.addItem(self._preview_item)
        self._cursor = QGraphicsEllipseItem()
        self._cursor.setPen(QPen(QColor(255, 255, 255), 0))
        self._cursor.setZValue(1002)
        self._cursor.hide()
        self._scene.addItem(self._cursor)
        self._placeholder = QGraphicsSimpleTextItem(
            "Open an image (Ctrl+O) to edit it,\nor choose a model and Generate.")
        font = self._placeholder.font()
        font.setPointSize(13)
        self._placeholder.setFont(font)
        self._scene.addItem(self._placeholder)
        self._apply_palette()
        self.setAcceptDrops(True)
        self._stroke = None
        self._panning: QPointF | None = None
        self._space = False
        self._fitted = True
        doc.layers_changed.connect(self._rebuild_layers)
        doc.changed.connect(self._refresh_layers)
        doc.mask_changed.connect(self._refresh_mask)
        doc.size_changed.connect(lambda *_: self.fit())
        self._rebuild_layers()

    # -- theme --------------------------------------------------------------------------------
    def _apply_palette(self) -> None:
        """The colours around the picture follow the theme: a neutral grey a step darker than
        the window (so a white picture's edge shows), its text for the placeholder."""
        pal = self.palette()
        window = pal.color(QPalette.ColorRole.Window)
        dark = window.lightness() < 128
        self.setBackgroundBrush(QBrush(window.darker(140 if dark else 118)))
        self._frame.setPen(QPen(pal.color(QPalette.ColorRole.Shadow if not dark
                                          else QPalette.ColorRole.Base), 0))
        self._placeholder.setBrush(QBrush(pal.color(QPalette.ColorRole.WindowText)))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()

    # -- drag and drop: a picture dropped on the canvas opens ---------------------------------
    @staticmethod
    def dropped_image(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> Path | None:
        """The first local picture file the drag carries (png, jpg, webp, bmp), else None."""
        mime = event.mimeData()
        for url in mime.urls() if mime.hasUrls() else []:
            path = Path(url.toLocalFile()) if url.isLocalFile() else None
            if path is not None and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                return path
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.dropped_image(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self.dropped_image(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self.dropped_image(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.image_dropped.emit(path)

    # -- document -> items ----------------------------------------------------------------------
    def _rebuild_layers(self) -> None:
        for item in self._layer_items:
            self._scene.removeItem(item)
        self._layer_items = []
        for z, layer in enumerate(self.doc.layers):
            item = QGraphicsPixmapItem(QPixmap.fromImage(layer.image))
            item.setZValue(z)
            item.setVisible(layer.visible)
            item.setOpacity(layer.opacity)
            item.setData(0, layer.id)
            self._scene.addItem(item)
            self._layer_items.append(item)
        rect = QRectF(0, 0, self.doc.width, self.doc.height)
        self._frame.setRect(rect)
        self._frame.setVisible(not self.doc.is_empty)
        self._placeholder.setVisible(self.doc.is_empty)
        if self.doc.is_empty:
            self.resetTransform()
            self.centerOn(self._placeholder)
        self._scene.setSceneRect(rect.adjusted(-2000, -2000, 2000, 2000))
        self._refresh_mask()

    def _refresh_layers(self) -> None:
        if len(self._layer_items) != len(self.doc.layers) or any(
                item.data(0) != layer.id for item, layer in zip(self._layer_items,
                                                                 self.doc.layers, strict=True)):
            self._rebuild_layers()
            return
        for item, layer in zip(self._layer_items, self.doc.layers, strict=True):
            item.setVisible(layer.visible)
            item.setOpacity(layer.opacity)

    def _refresh_mask(self) -> None:
        if self.doc.is_empty:
            self._mask_item.setPixmap(QPixmap())
            return
        self._mask_item.setPixmap(QPixmap.fromImage(self.doc.mask))
        self._mask_item.setOpacity(self.mask_opacity)

    # -- preview --------------------------------------------------------------------------------
    def show_preview(self, rgb: np.ndarray) -> None:
        """A generation's predicted image, stretched over the canvas until it finishes."""
        pix = QPixmap.fromImage(qimages.from_array(rgb))
        self._preview_item.setPixmap(pix)
        w = self.doc.width or rgb.shape[1]
        h = self.doc.height or rgb.shape[0]
        self._preview_item.setTransform(QTransform.fromScale(w / max(1, pix.width()),
                                                             h / max(1, pix.height())))
        if self.doc.is_empty:
            self._scene.setSceneRect(QRectF(0, 0, w, h).adjusted(-2000, -2000, 2000, 2000))
        self._placeholder.hide()
        self._preview_item.show()

    def hide_preview(self) -> None:
        self._preview_item.hide()
        self._placeholder.setVisible(self.doc.is_empty)

    @property
    def preview_visible(self) -> bool:
        return self._preview_item.isVisible()

    # -- zoom and pan ---------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    def set_zoom(self, z: float) -> None:
        z = min(max(z, 0.05), 64.0)
        self.resetTransform()
        self.scale(z, z)
        self._fitted = False
        self.zoom_changed.emit(z)

    def zoom_by(self, factor: float) -> None:
        self.set_zoom(self.zoom * factor)

    def fit(self) -> None:
        if self.doc.is_empty:
            return
        self.fitInView(QRectF(0, 0, self.doc.width, self.doc.height),
                       Qt.AspectRatioMode.KeepAspectRatio)
        self._fitted = True
        self.zoom_changed.emit(self.zoom)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(1.25 if delta > 0 else 0.8)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(0.8)
        elif key == Qt.Key.Key_F:
            self.fit()
        elif key == Qt.Key.Key_BracketLeft:
            self.brush_size = max(1.0, self.brush_size / 1.2)
        elif key == Qt.Key.Key_BracketRight:
            self.brush_size = min(1024.0, self.brush_size * 1.2)
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
        else:
            super().keyReleaseEvent(event)

    # -- painting -------------------------------------------------------------------------------
    def _wants_pan(self, event: QMouseEvent) -> bool:
        return (self.tool == "pan" or self._space
                or event.buttons() & (Qt.MouseButton.MiddleButton | Qt.MouseButton.RightButton)
                or event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._wants_pan(event):
            self._panning = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and not self.doc.is_empty:
            self._stroke = self.doc.begin_stroke()
            self._paint_at(event)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = self.mapToScene(event.position().toPoint())
        r = self.brush_size / 2
        self._cursor.setRect(QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r))
        self._cursor.setVisible(self.tool in ("brush", "eraser") and not self.doc.is_empty)
        if self._panning is not None:
            d = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() - d.x()))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() - d.y()))
            event.accept()
            return
        if self._stroke is not None:
            self._paint_at(event)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None:
            self._panning = None
            if self._space:
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            else:
                self.viewport().unsetCursor()
            event.accept()
            return
        if self._stroke is not None:
            self._paint_at(event)
            self._stroke.finish(self.tool == "eraser")
            self._stroke = None
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event) -> None:
        self._cursor.hide()
        super().leaveEvent(event)

    def _paint_at(self, event: QMouseEvent) -> None:
        pos = self.mapToScene(event.position().toPoint())
        self._stroke.dab_line(pos, self.brush_size / 2, self.hardness, self.tool == "eraser")
