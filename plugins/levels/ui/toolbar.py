"""The editor's controls around the tile view: a top row (File, Undo, Redo) and a tool column
(Paint, Erase, Select, the zoom, the Path toggle and the tile palette).

Plain widgets in layouts, not ``QToolBar``s: a toolbar hides what does not fit behind an
overflow arrow, and with the plots dock open the palette and the Path toggle used to vanish
there. A layout keeps every control visible (the column scrolls its palette instead).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .document import LevelDocument
from .view import TileView

EXPORTS = (("Export Tiled map (.tmj, tileset inside)…", "tmj", "embedded"),
           ("Export Tiled map (.tmj and a .tsj tileset beside it)…", "tmj", "external"),
           ("Export Tiled XML map for Unity and Godot (.tmx, tileset inside)…", "tmx",
            "embedded"),
           ("Export Tiled XML map (.tmx and a .tsx tileset beside it)…", "tmx", "external"),
           ("Export LDtk project (.ldtk)…", "ldtk", "embedded"),
           ("Export VGLC text (.txt and its legend)…", "txt", "embedded"),
           ("Export CSV (tile numbers)…", "csv", "embedded"),
           ("Export PNG picture…", "png", "embedded"))


def _button(text: str, tip: str = "", checkable: bool = False) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.setCheckable(checkable)
    b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    return b


class EditorToolbar(QWidget):
    """The File menu, Undo and Redo, in one row."""

    open_requested = Signal()
    export_requested = Signal(str, str)  # extension, tileset mode
    tileset_requested = Signal()
    colours_requested = Signal()

    def __init__(self, document: LevelDocument, view: TileView,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document, self.view = document, view
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        self.file_button = _button("File", "Open, export, tileset")
        self.file_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.file_button)
        act = menu.addAction("Open level (VGLC .txt, Tiled .tmj or .tmx)…")
        act.setShortcut(QKeySequence.StandardKey.Open)
        act.triggered.connect(self.open_requested)
        menu.addSeparator()
        for label, ext, tileset in EXPORTS:
            act = menu.addAction(label)
            act.triggered.connect(lambda _=False, e=ext, t=tileset:
                                  self.export_requested.emit(e, t))
        menu.addSeparator()
        act = menu.addAction("Draw with a tileset image…")
        act.setToolTip("Tiles cut from an image, in legend order")
        act.triggered.connect(self.tileset_requested)
        menu.addAction("Draw with colour tiles").triggered.connect(self.colours_requested)
        self.file_button.setMenu(menu)
        self.file_menu = menu
        row.addWidget(self.file_button)

        stack = document.undo_stack
        self.undo_button = _button("Undo")
        self.undo_button.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_button.clicked.connect(stack.undo)
        self.undo_button.setEnabled(False)
        stack.canUndoChanged.connect(self.undo_button.setEnabled)
        stack.undoTextChanged.connect(lambda t: self.undo_button.setToolTip(f"Undo {t}"))
        self.redo_button = _button("Redo")
        self.redo_button.setShortcut(QKeySequence.StandardKey.Redo)
        self.redo_button.clicked.connect(stack.redo)
        self.redo_button.setEnabled(False)
        stack.canRedoChanged.connect(self.redo_button.setEnabled)
        stack.redoTextChanged.connect(lambda t: self.redo_button.setToolTip(f"Redo {t}"))
        row.addWidget(self.undo_button)
        row.addWidget(self.redo_button)
        row.addStretch(1)


class ToolColumn(QWidget):
    """Paint, Erase, Select, the zoom, the Path toggle, and the tile palette: every tile of
    the level's legend with its colour and name (the brush is the selected one; the right
    button always erases)."""

    def __init__(self, document: LevelDocument, view: TileView,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document, self.view = document, view
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        self.tool_buttons: dict[str, QToolButton] = {}
        tools = QHBoxLayout()
        tools.setSpacing(1)
        for key, label, tip in (("paint", "Paint", "Paint with the tile chosen below (pins it)"),
                                ("erase", "Erase", "Erase to the empty tile"),
                                ("select", "Select", "Drag a region to regenerate")):
            b = _button(label, tip, True)
            b.clicked.connect(lambda _=False, k=key: self.set_tool(k))
            tools.addWidget(b)
            self.tool_buttons[key] = b
        col.addLayout(tools)
        zoom_row = QHBoxLayout()
        zoom_row.addWidget(QLabel("Zoom:"))
        self.zoom = QSpinBox()
        self.zoom.setRange(2, 48)
        self.zoom.setValue(view.tile)
        self.zoom.setSuffix(" px")
        self.zoom.setToolTip("Tile size on screen (Ctrl+wheel over the map)")
        self.zoom.setAccessibleName("Zoom")
        self.zoom.valueChanged.connect(view.set_zoom)
        view.zoom_changed.connect(self._zoomed)
        zoom_row.addWidget(self.zoom, 1)
        col.addLayout(zoom_row)
        self.path_toggle = QCheckBox("Show the path")
        self.path_toggle.setToolTip("Draw the playability agent's path over the map")
        self.path_toggle.setChecked(True)
        self.path_toggle.toggled.connect(self._toggle_path)
        col.addWidget(self.path_toggle)
        caption = QLabel("Tiles")
        caption.setToolTip("The tile to paint with")
        col.addWidget(caption)
        self.tile_list = QListWidget()
        self.tile_list.setIconSize(QSize(14, 14))
        self.tile_list.setAccessibleName("Tile palette")
        self.tile_list.setToolTip("Tile to paint (the right mouse button erases)")
        self.tile_list.currentRowChanged.connect(self._on_brush)
        col.addWidget(self.tile_list, 1)
        # as narrow as the tool buttons: the map gets the rest of the width
        self.setFixedWidth(max(120, tools.sizeHint().width()))
        self.set_tool("paint")
        document.level_changed.connect(self._fill)
        self._legend: object = None

    def _zoomed(self, tile: int) -> None:
        self.zoom.blockSignals(True)
        self.zoom.setValue(tile)
        self.zoom.blockSignals(False)

    def _toggle_path(self, on: bool) -> None:
        self.view.show_path = on
        self.view.update()

    def set_tool(self, tool: str) -> None:
        self.view.tool = tool
        for k, b in self.tool_buttons.items():
            b.setChecked(k == tool)

    def _fill(self) -> None:
        """Refill the palette when the legend changes (keep the brush otherwise)."""
        lv = self.document.level
        legend = lv.legend if lv is not None else None
        if legend == self._legend:
            return
        self._legend = legend
        self.tile_list.blockSignals(True)
        self.tile_list.clear()
        if lv is not None:
            for c, t in lv.legend.tiles.items():
                pix = QPixmap(14, 14)
                pix.fill(QColor(*lv.legend.color(c)))
                item = QListWidgetItem(QIcon(pix), f"{c}  {t.name}")
                item.setData(Qt.ItemDataRole.UserRole, ord(c))
                item.setToolTip(", ".join(t.props) or t.name)
                self.tile_list.addItem(item)
            self.tile_list.setCurrentRow(max(0, lv.legend.chars.index(lv.legend.ground)))
        self.tile_list.blockSignals(False)
        self._on_brush()

    def _on_brush(self, _row: int = -1) -> None:
        item = self.tile_list.currentItem()
        if item is not None:
            self.view.brush = int(item.data(Qt.ItemDataRole.UserRole))

