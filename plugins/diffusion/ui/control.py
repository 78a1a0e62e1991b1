"""The editor's "Control and hires fix" box: a ControlNet from the model library guided by the
edges of the picture or of one layer (canny), or by a layer the artist drew (scribble), with its
strength; and A1111's Hires. fix for Generate from nothing (enlarge and redraw, its scale and
strength).

Folded to its title until opened, so the side column keeps Generate in view. Its values are
the jobs' fields (``controlnet``, ``control_image``, ``control``, ``control_scale``; for
``sample`` also ``hires_scale`` and ``denoise``), passed to the forms when the editor builds
its params. No computation here: edges are found by the job.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.widgets.modelpicker import ModelPicker

from .qimages import to_rgba

_PICTURE = -1  # the source combo's id for "the whole picture"


def _spin(lo: float, hi: float, step: float, value: float, tip: str) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(2)
    s.setValue(value)
    s.setToolTip(tip)
    return s


def layer_picture(rgba: np.ndarray, kind: str) -> np.ndarray:
    """A layer as the control picture: a scribble is where the layer is painted (its
    opacity, white lines on black) when it has transparency; otherwise, and for edges, the
    layer over white."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    if kind == "scribble" and float(alpha.min()) < 1.0:
        lines = np.clip(alpha[..., 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(lines[..., None], 3, axis=-1)
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


class ControlBox(QWidget):
    """ControlNet and hires fix settings, folded by default."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.toggle = QToolButton()
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.toggle.toggled.connect(self.set_open)
        outer.addWidget(self.toggle)
        self.body = QWidget()
        outer.addWidget(self.body)
        form = QFormLayout(self.body)
        form.setContentsMargins(0, 0, 0, 0)
        self.picker = ModelPicker(kinds=("controlnet",))
        self.picker.combo.setAccessibleName("ControlNet")
        self.picker.setToolTip("A ControlNet from the model library, made for this model's "
                               "family (SD 1.x, SD 2.x or SDXL); none: no control")
        form.addRow("ControlNet", self.picker)
        self.kind = QComboBox()
        self.kind.addItem("Edges (canny)", "canny")
        self.kind.addItem("Scribble", "scribble")
        self.kind.setToolTip("Edges: follow the outlines found in the source. Scribble: the "
                             "source is a drawing (strokes on a layer)")
        form.addRow("Follow", self.kind)
        self.source = QComboBox()
        self.source.setToolTip("The picture (all visible layers) or one layer")
        form.addRow("Source", self.source)
        self.scale = _spin(0.0, 2.0, 0.05, 1.0, "How strongly the ControlNet steers")
        form.addRow("Control strength", self.scale)
        self.hires = QCheckBox("Hires fix")
        self.hires.setToolTip("Generate: make the picture at the model's size, enlarge it and "
                              "redraw it for detail (A1111's Hires. fix)")
        row = QHBoxLayout()
        self.hires_scale = _spin(1.25, 4.0, 0.25, 2.0, "How many times larger")
        self.hires_scale.setSuffix("x")
        self.denoise = _spin(0.05, 1.0, 0.05, 0.5, "How much the redraw changes the enlarged "
                                                   "picture")
        row.addWidget(self.hires_scale)
        row.addWidget(self.denoise)
        form.addRow(self.hires, row)
        self.hires.toggled.connect(self._update_title)
        self.picker.combo.currentIndexChanged.connect(lambda *_: self._update_title())
        self.set_layers([])
        self.set_open(False)

    def set_open(self, open_: bool) -> None:
        self.toggle.setChecked(open_)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)
        self.body.setVisible(open_)
        self._update_title()

    def _update_title(self) -> None:
        parts = []
        path = self.picker.path()
        if path is not None:
            parts.append(f"ControlNet {path.stem}")
        if self.hires.isChecked():
            parts.append(f"hires {self.hires_scale.value():g}x")
        self.toggle.setText("Control, hires fix" + (f" ({', '.join(parts)})" if parts else ""))

    def set_layers(self, layers: list[Any]) -> None:
        """The source choices: the picture, then each layer by name (kept when it still
        exists)."""
        current = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem("The picture", _PICTURE)
        for layer in reversed(layers):  # top first, as the layers list shows them
            self.source.addItem(f"Layer: {layer.name}", layer.id)
        i = self.source.findData(current)
        self.source.setCurrentIndex(max(0, i))
        self.source.blockSignals(False)

    def values(self, doc: Any) -> dict[str, Any]:
        """The ``Generation`` fields for the document: no ControlNet, no control image."""
        path = self.picker.path()
        if path is None:
            return {"controlnet": None, "control_image": None}
        kind = str(self.kind.currentData())
        image = None
        if not doc.is_empty:
            layer_id = self.source.currentData()
            if layer_id is None or layer_id == _PICTURE:
                image = doc.flatten()
            else:
                layer = doc.layers[doc.layer_index(int(layer_id))]
                image = layer_picture(to_rgba(layer.image), kind)
        return {"controlnet": path, "control_image": image, "control": kind,
                "control_scale": float(self.scale.value())}

    def hires_values(self) -> dict[str, Any]:
        """The ``sample`` job's hires fields (scale 0: off)."""
        if not self.hires.isChecked():
            return {"hires_scale": 0.0}
        return {"hires_scale": float(self.hires_scale.value()),
                "denoise": float(self.denoise.value())}
