"""The picture being edited: layers, a mask, and an undo stack for every change.

Kept apart from the view (``canvas.py``) so tests and the panel change it through the same
commands: every brush stroke, new result layer, visibility/opacity change, reorder, canvas grow
and image open is a ``QUndoCommand`` on :attr:`CanvasDocument.undo_stack`.

All layers have the document's size. The mask is an ARGB image painted in a fixed colour; its
alpha is the mask (1 = repaint), so the same image is shown as the red overlay and read for jobs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QPainter,
    QRadialGradient,
    QUndoCommand,
    QUndoStack,
)

from . import qimages

MASK_COLOR = QColor(255, 48, 48)
_ids = itertools.count(1)


@dataclass
class Layer:
    name: str
    image: QImage  # ARGB32_Premultiplied, document-sized
    visible: bool = True
    opacity: float = 1.0
    params: dict[str, Any] | None = None  # generation parameters of a result layer
    id: int = field(default_factory=lambda: next(_ids))


def _blank(w: int, h: int, color: QColor | None = None) -> QImage:
    img = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(color if color is not None else QColor(0, 0, 0, 0))
    return img


class CanvasDocument(QObject):
    """Layers (bottom first), a mask and the undo stack."""

    changed = Signal()  # pixels or layer properties changed: repaint
    layers_changed = Signal()  # layers added, removed, reordered, renamed
    mask_changed = Signal()
    size_changed = Signal(int, int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.layers: list[Layer] = []
        self.width = 0
        self.height = 0
        self.mask = _blank(1, 1)
        self.undo_stack = QUndoStack(self)

    # -- queries --------------------------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        return not self.layers

    def flattened(self) -> QImage:
        """The visible layers composited over white (what jobs receive)."""
        if self.is_empty:
            raise ValueError("the canvas is empty")
        out = _blank(self.width, self.height, QColor(255, 255, 255))
        p = QPainter(out)
        for layer in self.layers:
            if layer.visible and layer.opacity > 0:
                p.setOpacity(layer.opacity)
                p.drawImage(0, 0, layer.image)
        p.end()
        return out.convertToFormat(QImage.Format.Format_RGB888)

    def flatten(self) -> np.ndarray:
        """The visible picture as uint8 RGB ``(H, W, 3)``."""
        return qimages.to_rgba(self.flattened())[..., :3]

    def mask_array(self) -> np.ndarray:
        """float32 ``(H, W)``, 1 = repaint: what the inpaint job's ``mask`` field holds."""
        return qimages.alpha_of(self.mask)

    def has_mask(self) -> bool:
        return bool(self.layers) and float(self.mask_array().max()) > 0.0

    def layer_index(self, layer_id: int) -> int:
        for i, layer in enumerate(self.layers):
            if layer.id == layer_id:
                return i
        raise KeyError(layer_id)

    # -- commands (all undoable) ----------------------------------------------------------------
    def open_image(self, rgb: np.ndarray, name: str = "image",
                   params: dict[str, Any] | None = None) -> None:
        """Replace everything with one image (undoable)."""
        self.undo_stack.push(_ReplaceAll(self, [_layer_from_array(rgb, name, params)],
                                         f"Open {name}"))

    def add_result(self, rgb: np.ndarray, name: str, params: dict[str, Any] | None = None,
                   visible: bool = True) -> Layer:
        """A generated image as a new top layer (the document is created if empty)."""
        if self.is_empty:
            layer = _layer_from_array(rgb, name, params)
            self.undo_stack.push(_ReplaceAll(self, [layer], f"Add {name}"))
            return layer
        if rgb.shape[1] != self.width or rgb.shape[0] != self.height:
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize((self.width, self.height),
                                                         Image.Resampling.LANCZOS))
        layer = _layer_from_array(rgb, name, params)
        layer.visible = visible
        self.undo_stack.push(_AddLayer(self, layer, len(self.layers)))
        return layer

    def remove_layer(self, layer_id: int) -> None:
        i = self.layer_index(layer_id)
        self.undo_stack.push(_RemoveLayer(self, i))

    def move_layer(self, layer_id: int, delta: int) -> None:
        i = self.layer_index(layer_id)
        j = min(max(i + delta, 0), len(self.layers) - 1)
        if i != j:
            self.undo_stack.push(_MoveLayer(self, i, j))

    def set_visible(self, layer_id: int, visible: bool) -> None:
        layer = self.layers[self.layer_index(layer_id)]
        if layer.visible != visible:
            self.undo_stack.push(_SetProperty(self, layer_id, "visible", visible,
                                              "Show layer" if visible else "Hide layer"))

    def set_opacity(self, layer_id: int, opacity: float) -> None:
        layer = self.layers[self.layer_index(layer_id)]
        opacity = float(min(max(opacity, 0.0), 1.0))
        if abs(layer.opacity - opacity) > 1e-6:
            self.undo_stack.push(_SetProperty(self, layer_id, "opacity", opacity,
                                              "Layer opacity"))

    def clear_mask(self) -> None:
        if self.has_mask():
            after = _blank(self.width, self.height)
            self.undo_stack.push(_MaskPatch(self, QRect(0, 0, self.width, self.height),
                                            self.mask.copy(), after, "Clear mask"))

    def set_mask(self, mask: np.ndarray, text: str = "Set mask") -> None:
        """Replace the mask by a float ``(H, W)`` array (undoable)."""
        after = mask_image(mask)
        self.undo_stack.push(_MaskPatch(self, QRect(0, 0, self.width, self.height),
                                        self.mask.copy(), after, text))

    def grow(self, left: int, top: int, right: int, bottom: int, overlap: int = 8) -> None:
        """Outpainting: enlarge every layer (the bottom one by repeating its edge pixels, the
        others with transparency) and mask the new area plus ``overlap`` pixels of the seam."""
        from plugins.diffusion.engine.imageio import grow_canvas

        if self.is_empty:
            raise ValueError("open an image first")
        base_rgb, mask = grow_canvas(qimages.to_rgba(self.layers[0].image)[..., :3], left, top,
                                     right, bottom, overlap)
        new_layers = []
        for i, layer in enumerate(self.layers):
            if i == 0:
                img = qimages.from_array(base_rgb).convertToFormat(
                    QImage.Format.Format_ARGB32_Premultiplied)
            else:
                img = _blank(base_rgb.shape[1], base_rgb.shape[0])
                p = QPainter(img)
                p.drawImage(left, top, layer.image)
                p.end()
            new_layers.append(Layer(layer.name, img, layer.visible, layer.opacity, layer.params,
                                    layer.id))
        self.undo_stack.push(_ReplaceAll(self, new_layers, "Grow canvas", mask_image(mask)))

    # -- painting -------------------------------------------------------------------------------
    def begin_stroke(self) -> _Stroke:
        return _Stroke(self)

    # -- internal state changes used by the commands -------------------------------------------
    def _set_state(self, layers: list[Layer], mask: QImage) -> None:
        size_changed = (mask.width(), mask.height()) != (self.width, self.height)
        self.layers = list(layers)
        self.mask = mask
        self.width, self.height = mask.width(), mask.height()
        if size_changed:
            self.size_changed.emit(self.width, self.height)
        self.layers_changed.emit()
        self.mask_changed.emit()
        self.changed.emit()


def _layer_from_array(rgb: np.ndarray, name: str, params: dict[str, Any] | None) -> Layer:
    img = qimages.from_array(rgb).convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    return Layer(name, img, params=params)


def mask_image(mask: np.ndarray) -> QImage:
    """A float mask as the red overlay image whose alpha is the mask."""
    h, w = mask.shape
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = MASK_COLOR.red(), MASK_COLOR.green(), \
        MASK_COLOR.blue()
    rgba[..., 3] = np.clip(np.round(mask * 255.0), 0, 255).astype(np.uint8)
    return qimages.from_array(rgba).convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


class _Stroke:
    """One brush stroke: dabs along the mouse path; ends as one undoable command."""

    def __init__(self, doc: CanvasDocument) -> None:
        self.doc = doc
        self.before = doc.mask.copy()
        self.dirty = QRectF()
        self.last: QPointF | None = None

    def dab_line(self, to: QPointF, radius: float, hardness: float, erase: bool) -> None:
        start = self.last if self.last is not None else to
        dist = ((to.x() - start.x()) ** 2 + (to.y() - start.y()) ** 2) ** 0.5
        spacing = max(0.5, radius * 0.25)
        n = max(1, int(dist / spacing))
        p = QPainter(self.doc.mask)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        if erase:
            p.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        for k in range(1 if self.last is not None else 0, n + 1):
            f = k / n
            c = QPointF(start.x() + (to.x() - start.x()) * f, start.y() + (to.y() - start.y()) * f)
            grad = QRadialGradient(c, radius)
            solid = QColor(MASK_COLOR)
            clear = QColor(MASK_COLOR)
            clear.setAlpha(0)
            grad.setColorAt(0.0, solid)
            grad.setColorAt(min(max(hardness, 0.0), 0.999), solid)
            grad.setColorAt(1.0, clear)
            p.setBrush(grad)
            p.drawEllipse(c, radius, radius)
            self.dirty = self.dirty.united(QRectF(c.x() - radius, c.y() - radius, 2 * radius,
                                                  2 * radius))
        p.end()
        self.last = to
        self.doc.mask_changed.emit()

    def finish(self, erase: bool) -> None:
        rect = self.dirty.toAlignedRect().adjusted(-1, -1, 1, 1).intersected(
            QRect(0, 0, self.doc.width, self.doc.height))
        if rect.isEmpty():
            return
        before = self.before.copy(rect)
        after = self.doc.mask.copy(rect)
        self.doc.undo_stack.push(_MaskPatch(self.doc, rect, before, after,
                                            "Erase mask" if erase else "Brush stroke",
                                            applied=True))


# ----------------------------------------------------------------------------------------------
# Undo commands
# ----------------------------------------------------------------------------------------------
class _MaskPatch(QUndoCommand):
    """Swap a rectangle of the mask between two stored patches."""

    def __init__(self, doc: CanvasDocument, rect: QRect, before: QImage, after: QImage,
                 text: str, applied: bool = False) -> None:
        super().__init__(text)
        self.doc, self.rect, self.before, self.after = doc, QRect(rect), before, after
        self._skip_first_redo = applied  # a stroke was painted live already

    def _put(self, patch: QImage) -> None:
        p = QPainter(self.doc.mask)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        p.drawImage(self.rect.topLeft(), patch)
        p.end()
        self.doc.mask_changed.emit()
        self.doc.changed.emit()

    def redo(self) -> None:
        if self._skip_first_redo:
            self._skip_first_redo = False
            return
        self._put(self.after)

    def undo(self) -> None:
        self._put(self.before)


class _ReplaceAll(QUndoCommand):
    def __init__(self, doc: CanvasDocument, layers: list[Layer], text: str,
                 mask: QImage | None = None) -> None:
        super().__init__(text)
        self.doc = doc
        self.old = (list(doc.layers), doc.mask)
        w, h = layers[0].image.width(), layers[0].image.height()
        self.new = (layers, mask if mask is not None else _blank(w, h))

    def redo(self) -> None:
        self.doc._set_state(*self.new)

    def undo(self) -> None:
        self.doc._set_state(*self.old)


class _AddLayer(QUndoCommand):
    def __init__(self, doc: CanvasDocument, layer: Layer, index: int) -> None:
        super().__init__(f"Add {layer.name}")
        self.doc, self.layer, self.index = doc, layer, index

    def redo(self) -> None:
        self.doc.layers.insert(self.index, self.layer)
        self.doc.layers_changed.emit()
        self.doc.changed.emit()

    def undo(self) -> None:
        self.doc.layers.pop(self.index)
        self.doc.layers_changed.emit()
        self.doc.changed.emit()


class _RemoveLayer(QUndoCommand):
    def __init__(self, doc: CanvasDocument, index: int) -> None:
        super().__init__(f"Delete {doc.layers[index].name}")
        self.doc, self.index = doc, index
        self.layer = doc.layers[index]

    def redo(self) -> None:
        self.doc.layers.pop(self.index)
        self.doc.layers_changed.emit()
        self.doc.changed.emit()

    def undo(self) -> None:
        self.doc.layers.insert(self.index, self.layer)
        self.doc.layers_changed.emit()
        self.doc.changed.emit()


class _MoveLayer(QUndoCommand):
    def __init__(self, doc: CanvasDocument, i: int, j: int) -> None:
        super().__init__("Move layer " + ("up" if j > i else "down"))
        self.doc, self.i, self.j = doc, i, j

    def _move(self, a: int, b: int) -> None:
        layer = self.doc.layers.pop(a)
        self.doc.layers.insert(b, layer)
        self.doc.layers_changed.emit()
        self.doc.changed.emit()

    def redo(self) -> None:
        self._move(self.i, self.j)

    def undo(self) -> None:
        self._move(self.j, self.i)


class _SetProperty(QUndoCommand):
    _MERGE_ID = 4711

    def __init__(self, doc: CanvasDocument, layer_id: int, name: str, value: Any, text: str
                 ) -> None:
        super().__init__(text)
        self.doc, self.layer_id, self.name, self.value = doc, layer_id, name, value
        self.old = getattr(doc.layers[doc.layer_index(layer_id)], name)

    def _set(self, value: Any) -> None:
        setattr(self.doc.layers[self.doc.layer_index(self.layer_id)], self.name, value)
        self.doc.layers_changed.emit()
        self.doc.changed.emit()

    def redo(self) -> None:
        self._set(self.value)

    def undo(self) -> None:
        self._set(self.old)

    def id(self) -> int:
        return self._MERGE_ID if self.name == "opacity" else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # dragging a slider is one step
        if not isinstance(other, _SetProperty) or other.layer_id != self.layer_id or \
                other.name != self.name:
            return False
        self.value = other.value
        return True
