"""The tile view: shows the document's level, lets the user paint, erase and select; never
computes.

The level, its pins, its path and its tiles belong to the :class:`LevelDocument`; the view draws
them and turns mouse strokes into the document's ``set_cells``/``push_stroke``. The selection,
the zoom, the tool and the brush are the view's own. The level is drawn from one cached pixmap at
base resolution -- a tile image per cell (the user's tileset image, or 16 px colour tiles with
their character drawn in), or one pixel per cell for maps too big for that -- scaled to the
zoom. Painting patches single tiles into the pixmap, so strokes stay instant on big maps.
Overlays: the agent's path, pinned (painted) tiles, the selection.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from plugins.levels.engine.level import Level

from .document import LevelDocument

TOOLS = ("paint", "erase", "select")
MAX_TILESET_PIXELS = 24_000_000  # above this the view falls back to colours


def qimage_rgb(arr: np.ndarray) -> QImage:
    """A deep-copied QImage of an ``(H, W, 3)`` uint8 array."""
    arr = np.ascontiguousarray(arr)
    h, w, _ = arr.shape
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class TileView(QWidget):
    #: the selection changed: (x0, y0, x1, y1) exclusive, or None
    selection_changed = Signal(object)
    #: the tile under the mouse: (x, y) or None
    hovered = Signal(object)
    #: the tile size on screen changed (Ctrl+wheel)
    zoom_changed = Signal(int)

    def __init__(self, document: LevelDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.tile = 12
        self.tool = "paint"
        self.brush = ord("X")
        self.show_path = True
        self.selection: tuple[int, int, int, int] | None = None
        self._shape: tuple[int, int] | None = None
        self._pixmap: QPixmap | None = None
        self._tile_images: list[QImage] | None = None
        self._cell = (1, 1)
        self._stroke: dict[tuple[int, int], tuple[int, int]] = {}
        self._painting = False
        self._erasing = False
        self._drag_from: tuple[int, int] | None = None
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        document.level_changed.connect(self._on_level)
        document.tiles_changed.connect(self.refresh)
        document.cells_changed.connect(self._patch)
        document.report_changed.connect(self.update)
        document.pins_changed.connect(self.update)

    # -- the document's state -------------------------------------------------------------------
    @property
    def level(self) -> Level | None:
        return self.document.level

    @property
    def pins(self) -> np.ndarray | None:
        return self.document.pins

    @property
    def path(self) -> list[tuple[int, int]]:
        return self.document.path

    @property
    def tiles(self) -> np.ndarray | None:
        return self.document.tiles

    def _on_level(self) -> None:
        """A new level: keep the selection when it has the same size (an undo, a preview)."""
        lv = self.level
        shape = lv.grid.shape if lv is not None else None
        if shape != self._shape:
            self.set_selection(None)
        self._shape = shape
        self.refresh()

    def set_selection(self, rect: tuple[int, int, int, int] | None) -> None:
        self.selection = rect
        self.selection_changed.emit(rect)
        self.update()

    def set_zoom(self, tile: int) -> None:
        tile = int(max(2, min(48, tile)))
        if tile == self.tile:
            return
        self.tile = tile
        self.updateGeometry()
        self.resize(self.sizeHint())
        self.update()
        self.zoom_changed.emit(tile)

    def refresh(self) -> None:
        """Rebuild the cached picture after the level changed as a whole."""
        self._pixmap = None
        self.updateGeometry()
        self.resize(self.sizeHint())
        self.update()

    def _picture(self) -> QPixmap | None:
        """The level at its base resolution: one tile image per cell (the tileset image, or
        colour tiles with their character drawn in), or one pixel per cell for huge maps."""
        lv = self.level
        if lv is None:
            return None
        if self._pixmap is not None:
            return self._pixmap
        from plugins.levels.engine.render import colour_tiles, render

        tiles = self.tiles if self.tiles is not None and len(self.tiles) == len(lv.legend) \
            else colour_tiles(lv.legend, 16)
        if lv.grid.size * tiles.shape[1] * tiles.shape[2] <= MAX_TILESET_PIXELS:
            self._tile_images = [qimage_rgb(t) for t in tiles]
            self._cell = (int(tiles.shape[2]), int(tiles.shape[1]))
            img = qimage_rgb(render(lv, tiles=tiles))
        else:
            self._tile_images = None
            self._cell = (1, 1)
            img = qimage_rgb(lv.legend.color_lut()[lv.grid])
        self._pixmap = QPixmap.fromImage(img)
        return self._pixmap

    def sizeHint(self) -> QSize:
        if self.level is None:
            return QSize(400, 200)
        return QSize(self.level.width * self.tile, self.level.height * self.tile)

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        pix = self._picture()
        lv = self.level
        if pix is None or lv is None:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "Generate a level or open one (VGLC .txt or Tiled .tmj/.tmx)")
            return
        t = self.tile
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, t < self._cell[0])
        p.drawPixmap(QRect(0, 0, lv.width * t, lv.height * t), pix)
        if t >= 8 and self._tile_images is None:  # faint grid (tile images have edges)
            p.setPen(QPen(QColor(0, 0, 0, 28), 1))
            clip = event.rect()
            x0, x1 = clip.left() // t, min(lv.width, clip.right() // t + 1)
            y0, y1 = clip.top() // t, min(lv.height, clip.bottom() // t + 1)
            for x in range(x0, x1 + 1):
                p.drawLine(x * t, y0 * t, x * t, y1 * t)
            for y in range(y0, y1 + 1):
                p.drawLine(x0 * t, y * t, x1 * t, y * t)
        if self.pins is not None and self.pins.any():
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(255, 255, 255, 200))
            r = max(2, t // 5)
            for y, x in np.argwhere(self.pins):
                p.drawRect(int(x) * t + 1, int(y) * t + 1, r, r)
        if self.show_path and self.path:
            pen = QPen(QColor(255, 255, 255, 230), max(2.0, t / 4))
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            shadow = QPen(QColor(0, 0, 0, 140), max(3.0, t / 4 + 2))
            shadow.setCapStyle(Qt.PenCapStyle.RoundCap)
            pts = [QPointF((x + 0.5) * t, (y + 0.5) * t) for x, y in self.path]
            for pn in (shadow, pen):
                p.setPen(pn)
                p.drawPolyline(pts)
        if self.selection is not None:
            x0, y0, x1, y1 = self.selection
            p.setBrush(QColor(80, 160, 255, 50))
            p.setPen(QPen(QColor(40, 120, 255), 2, Qt.PenStyle.DashLine))
            p.drawRect(x0 * t, y0 * t, (x1 - x0) * t, (y1 - y0) * t)
        p.end()

    # -- mouse ----------------------------------------------------------------------------------
    def cell_at(self, pos: QPoint | QPointF) -> tuple[int, int] | None:
        if self.level is None:
            return None
        x, y = int(pos.x()) // self.tile, int(pos.y()) // self.tile
        if 0 <= x < self.level.width and 0 <= y < self.level.height:
            return (x, y)
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        cell = self.cell_at(event.position())
        if cell is None or event.button() not in (Qt.MouseButton.LeftButton,
                                                  Qt.MouseButton.RightButton):
            return
        erase = event.button() == Qt.MouseButton.RightButton or self.tool == "erase"
        if self.tool == "select" and event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = cell
            self.set_selection((cell[0], cell[1], cell[0] + 1, cell[1] + 1))
            return
        self._stroke = {}
        self._erasing = erase
        self._painting = True
        self._apply(cell)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        cell = self.cell_at(event.position())
        self.hovered.emit(cell)
        if cell is None or not event.buttons():
            return
        if self._drag_from is not None:
            (ax, ay), (bx, by) = self._drag_from, cell
            self.set_selection((min(ax, bx), min(ay, by), max(ax, bx) + 1, max(ay, by) + 1))
        elif self._painting:
            self._apply(cell)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is not None:
            self._drag_from = None
            return
        self._painting = False
        if self._stroke:
            changes = [(x, y, old, new) for (x, y), (old, new) in self._stroke.items()
                       if old != new]
            self._stroke = {}
            if changes:
                self.document.push_stroke(changes,
                                          "Erase" if self._erasing or self.tool == "erase"
                                          else "Paint")

    def _apply(self, cell: tuple[int, int]) -> None:
        lv = self.level
        if lv is None:
            return
        x, y = cell
        code = ord(lv.legend.empty) if self._erasing else self.brush
        old = int(lv.grid[y, x])
        if (x, y) not in self._stroke:
            self._stroke[(x, y)] = (old, code)
        else:
            self._stroke[(x, y)] = (self._stroke[(x, y)][0], code)
        self.document.set_cells([(x, y, code)], pin=True)

    def _patch(self, cells: list[tuple[int, int, int]]) -> None:
        """Tiles changed in the document: patch the cached picture in place."""
        lv = self.level
        pix = self._pixmap
        if lv is None or pix is None:
            self.update()
            return
        painter = QPainter(pix)
        index = lv.legend.index_lut()
        lut = lv.legend.color_lut()
        cw, ch = self._cell
        for x, y, code in cells:
            i = int(index[code])
            if self._tile_images is not None and i >= 0:
                painter.drawImage(x * cw, y * ch, self._tile_images[i])
            else:
                c = lut[code]
                painter.fillRect(x * cw, y * ch, cw, ch, QColor(int(c[0]), int(c[1]), int(c[2])))
        painter.end()
        self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            step = 1 if event.angleDelta().y() > 0 else -1
            self.set_zoom(self.tile + step * max(1, self.tile // 6))
            event.accept()
        else:
            super().wheelEvent(event)
