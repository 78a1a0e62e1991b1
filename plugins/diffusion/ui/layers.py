"""The layers list: visibility, opacity, order and deletion, each an undoable document command."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .document import CanvasDocument


class LayersWidget(QWidget):
    def __init__(self, doc: CanvasDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.list = QListWidget()
        self.list.setIconSize(QPixmap(36, 36).size())
        self.list.setMinimumHeight(52)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of the selected layer")
        self.opacity_label = QLabel("100%")
        self.up = QToolButton(text="▲", toolTip="Move the layer up")
        self.down = QToolButton(text="▼", toolTip="Move the layer down")
        self.delete = QToolButton(text="✕", toolTip="Delete the layer")
        for b in (self.up, self.down, self.delete):
            b.setAccessibleName(b.toolTip())
            b.setAutoRaise(True)
        # the order buttons in a column beside the list and opacity in one row under it: the
        # layers take little height (and width) from the canvas
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        top = QHBoxLayout()
        top.setSpacing(2)
        top.addWidget(self.list, 1)
        order = QVBoxLayout()
        order.setSpacing(0)
        for b in (self.up, self.down, self.delete):
            order.addWidget(b)
        order.addStretch(1)
        top.addLayout(order)
        lay.addLayout(top)
        self.opacity.setMinimumWidth(48)
        self.opacity.setAccessibleName("Opacity")
        self.opacity_label.setMinimumWidth(self.opacity_label.fontMetrics()
                                           .horizontalAdvance("100%") + 4)
        row = QHBoxLayout()
        row.setSpacing(4)
        opacity = QLabel("Opacity")
        opacity.setBuddy(self.opacity)
        row.addWidget(opacity)
        row.addWidget(self.opacity, 1)
        row.addWidget(self.opacity_label)
        lay.addLayout(row)
        self._updating = False
        doc.layers_changed.connect(self.refresh)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentRowChanged.connect(self._on_current)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.up.clicked.connect(lambda: self._move(+1))
        self.down.clicked.connect(lambda: self._move(-1))
        self.delete.clicked.connect(self._delete)
        self.refresh()

    def current_layer_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def refresh(self) -> None:
        """Top layer first, as in every paint program."""
        current = self.current_layer_id()
        self._updating = True
        self.list.clear()
        for layer in reversed(self.doc.layers):
            item = QListWidgetItem(layer.name)
            item.setData(Qt.ItemDataRole.UserRole, layer.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.visible else
                               Qt.CheckState.Unchecked)
            thumb = QPixmap.fromImage(layer.image).scaled(
                36, 36, Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation)
            item.setIcon(QIcon(thumb))
            item.setToolTip(f"{layer.name} — opacity {round(layer.opacity * 100)}%")
            self.list.addItem(item)
            if layer.id == current:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self._updating = False
        self._on_current()

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        layer_id = int(item.data(Qt.ItemDataRole.UserRole))
        self.doc.set_visible(layer_id, item.checkState() == Qt.CheckState.Checked)

    def _on_current(self, *_: object) -> None:
        layer_id = self.current_layer_id()
        enabled = layer_id is not None
        for w in (self.opacity, self.up, self.down, self.delete):
            w.setEnabled(enabled)
        if layer_id is None:
            return
        layer = self.doc.layers[self.doc.layer_index(layer_id)]
        was = self._updating
        self._updating = True
        self.opacity.setValue(round(layer.opacity * 100))
        self.opacity_label.setText(f"{round(layer.opacity * 100)}%")
        self._updating = was

    def _on_opacity(self, value: int) -> None:
        self.opacity_label.setText(f"{value}%")
        layer_id = self.current_layer_id()
        if self._updating or layer_id is None:
            return
        self.doc.set_opacity(layer_id, value / 100.0)

    def _move(self, delta: int) -> None:
        layer_id = self.current_layer_id()
        if layer_id is not None:
            self.doc.move_layer(layer_id, delta)

    def _delete(self) -> None:
        layer_id = self.current_layer_id()
        if layer_id is not None:
            self.doc.remove_layer(layer_id)
