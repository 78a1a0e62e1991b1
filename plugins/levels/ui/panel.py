"""The levels editor panel: generate, paint, check, learn and export; all work runs as jobs.

Left: three tabs (``generate_tab``, ``learn_tab``, ``check_tab``). Centre: the editor row and
the tool column (``toolbar``: File, Undo, Redo; Paint, Erase, Select, zoom, Path, the tile
palette) beside the tile view (``view``). The level, its pins, its check and its tileset live
in one ``LevelDocument`` (``document``) that every part reads and changes; jobs get copies of
its level as objects, never files. This module only assembles the parts and handles what
belongs to the whole editor: opening and exporting files, the tileset image, the automatic
check and the status line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plugins.levels.engine.level import Level
from plugins.levels.engine.render import TilesetImage
from plugins.levels.params import LEVEL_FILES, ExportParams, InfoParams
from studio import theme
from studio.errors import UserError
from studio.host import PanelHost
from studio.qtjobs import JobHandle
from studio.widgets.panelparts import ResultLine, header

from .check_tab import CheckTab
from .document import LevelDocument
from .generate_tab import GenerateTab
from .learn_tab import LearnTab
from .toolbar import EditorToolbar, ToolColumn
from .view import TileView

#: what a dropped file must end in to be opened as a level
LEVEL_SUFFIXES = (".txt", ".tmj", ".tmx", ".json")


class LevelsPanel(QWidget):
    def __init__(self, host: PanelHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.document = LevelDocument(self)
        self.view = TileView(self.document)
        self._started = False
        self._shape: tuple[int, ...] | None = None
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(300)

        self.generate_tab = GenerateTab(host, self.document)
        self.learn_tab = LearnTab(host, self.document)
        self.check_tab = CheckTab(host, self.document)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.generate_tab, "Generate")
        self.tabs.addTab(self.learn_tab, "Learn")
        self.tabs.addTab(self.check_tab, "Check")
        self.toolbar = EditorToolbar(self.document, self.view)
        self.tools = ToolColumn(self.document, self.view)

        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.addWidget(header("Game levels", "Generate, paint and check game levels, or train "
                              "a model on yours; export them to Tiled, LDtk or text. Drop a "
                              "level file on the map to open it."))
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        root.addWidget(split, 1)
        # each tab scrolls its own settings and keeps its buttons in view: no scroll area
        # around the tabs (it would hold the tabs' scroll areas inside it)
        left = self.tabs
        split.addWidget(left)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.toolbar)
        body = QHBoxLayout()
        body.addWidget(self.tools)
        self.map_area = QScrollArea()
        self.map_area.setWidget(self.view)
        self.map_area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body.addWidget(self.map_area, 1)
        cl.addLayout(body, 1)
        self.status = QLabel("No level yet: press Generate, or open a VGLC or Tiled file.")
        self.status.setWordWrap(True)
        cl.addWidget(self.status)
        self.result = ResultLine()
        cl.addWidget(self.result)
        split.addWidget(centre)
        split.setStretchFactor(1, 1)
        split.setSizes([max(300, left.minimumSizeHint().width()), 900])
        self.setAcceptDrops(True)
        host.job_started.connect(self._job_started)

        doc = self.document
        doc.level_changed.connect(self._level_changed)
        doc.edited.connect(self._edited)
        doc.report_changed.connect(self._report_changed)
        doc.pins_changed.connect(self._update_status)
        self._check_timer.timeout.connect(self.check_tab.run_check)
        self.view.selection_changed.connect(self.generate_tab.set_selection)
        self.view.hovered.connect(self._hover)
        self.toolbar.open_requested.connect(self._ask_open)
        self.toolbar.export_requested.connect(self._ask_export)
        self.toolbar.tileset_requested.connect(self._ask_tileset)
        self.toolbar.colours_requested.connect(lambda: self.set_tileset(None))

    # -- the parts other code and tests reach ---------------------------------------------------
    @property
    def level(self) -> Level | None:
        return self.document.level

    @property
    def undo(self) -> Any:
        return self.document.undo_stack

    @property
    def tile_list(self) -> Any:
        """The tile palette (a list: the brush is its selected tile)."""
        return self.tools.tile_list

    def set_tool(self, tool: str) -> None:
        self.tools.set_tool(tool)

    # -- reacting to the document ---------------------------------------------------------------
    def _level_changed(self) -> None:
        """A level of another size gets a zoom that fits; a variant keeps the user's zoom."""
        lv = self.level
        shape = lv.grid.shape if lv is not None else None
        if shape is not None and shape != self._shape:
            self.fit_zoom()
        self._shape = shape
        self._update_status()

    def _edited(self) -> None:
        if self.level is not None and self.check_tab.auto.isChecked():
            self._check_timer.start()
        self._update_status()

    def _report_changed(self) -> None:
        if self.document.report is not None:
            self._check_timer.stop()  # the job that made the level checked it already
        self._update_status()

    def fit_zoom(self) -> None:
        """A tile size that shows the whole map, or its full height for long side-scrollers."""
        lv = self.level
        if lv is None:
            return
        vp = self.map_area.viewport().size()
        w, h = max(100, vp.width() - 4), max(100, vp.height() - 4)
        tile = min(w // lv.width, h // lv.height)
        if lv.width > 3 * lv.height:  # a side-scroller: full height, scroll sideways
            tile = min(h // lv.height, 16)
        self.tools.zoom.setValue(int(max(4, min(32, tile))))

    def _update_status(self) -> None:
        lv = self.level
        self.status.setStyleSheet("")
        if lv is None:
            self.status.setText("No level.")
            return
        parts = [f"{lv.width}×{lv.height}", lv.legend.name or "custom tiles"]
        if lv.meta.get("method"):
            idx = f" #{lv.meta['index']}" if "index" in lv.meta else ""
            parts.append(f"{lv.meta['method']} seed {lv.meta.get('seed', '?')}{idx}")
        pins = self.document.pin_count()
        if pins:
            parts.append(f"{pins} pinned")
        rep = self.document.report
        if rep is not None:
            parts.append("playable ✓" if rep.playable else
                         f"not playable ✗ {rep.check.reason}".rstrip())
        self.status.setText(" · ".join(parts))

    def _hover(self, cell: tuple[int, int] | None) -> None:
        lv = self.level
        if cell is None or lv is None:
            return
        ch = lv.char_at(*cell)
        t = lv.legend.tiles.get(ch)
        self.view.setToolTip(f"({cell[0]}, {cell[1]}) {ch!r} "
                             + (", ".join(t.props) if t else "unknown tile"))

    # -- files ----------------------------------------------------------------------------------
    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open level", str(self.host.workspace),
                                              LEVEL_FILES)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path, legend: str | Path | None = None) -> JobHandle:
        """Read a level file on a worker (the info job) and edit it."""
        p = InfoParams(level=Path(path), legend=Path(legend) if legend else None)  # type: ignore[arg-type]
        handle = self.host.submit("info", p, title="Open level", show_plots=False)
        handle.finished.connect(self._opened)
        return handle

    def _opened(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.status.setText(f"⚠ could not open: {rec.error}")
                self.status.setStyleSheet(f"color: {theme.colour('error')};")
            return
        lv = rec.result.levels[0]
        ts = lv.meta.get("tileset_image")
        self.document.set_level(lv, f"Open {lv.name}", clear_pins=True)
        if isinstance(ts, TilesetImage):
            self.set_tileset(ts)
        self.document.set_report(rec.result.report(0))

    def _ask_export(self, ext: str, tileset: str) -> None:
        if self.level is None:
            self.host.notify("Nothing to export yet")
            return
        start = str(self.host.workspace / f"{self.level.name or 'level'}.{ext}")
        path, _ = QFileDialog.getSaveFileName(self, "Export level", start, f"*.{ext}")
        if path:
            self.export_to(path, tileset)

    def export_to(self, path: str | Path, tileset: str = "embedded") -> JobHandle | None:
        level = self.document.snapshot()
        if level is None:
            return None
        ts = self.document.tileset
        p = ExportParams(level=level, to=Path(path), tileset=tileset,  # type: ignore[arg-type]
                         path=self.tools.path_toggle.isChecked())
        if ts is not None:
            p.tileset_image, p.tile_width, p.tile_height = ts.path, ts.tile_w, ts.tile_h
            p.margin, p.spacing = ts.margin, ts.spacing
        handle = self.host.submit("export", p, title="Export level", show_plots=False)
        self.result.clear()
        handle.finished.connect(self._exported)
        return handle

    def _exported(self, rec: Any) -> None:
        if rec.state == "done":
            files = list(getattr(rec.result, "files", None) or [])
            target = Path(files[0]) if files else None
            self.result.show_result(f"Exported {target.name}" if target else "Exported",
                                    target)
        elif rec.state == "failed":
            self.result.show_problem(f"⚠ Export failed: {rec.error}")

    # -- drag and drop: a level file dropped on the panel opens in the editor ----------------
    @staticmethod
    def dropped_level(mime: Any) -> Path | None:
        """The first dropped local file that looks like a level (VGLC text, Tiled JSON or
        XML); None when there is none."""
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            path = Path(url.toLocalFile()) if url.isLocalFile() else None
            if path is not None and path.is_file() and path.suffix.lower() in LEVEL_SUFFIXES:
                return path
        return None

    def dragEnterEvent(self, event: Any) -> None:
        if self.dropped_level(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dragMoveEvent(self, event: Any) -> None:
        if self.dropped_level(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        path = self.dropped_level(event.mimeData())
        if path is None:
            return
        event.acceptProposedAction()
        self.open_file(path)

    # -- jobs the studio started for the user (the welcome page's quick start) -------------
    def _job_started(self, job: str, params: Any, handle: JobHandle) -> None:
        if job == "generate":
            self._started = True  # no opening preview over the quick start's levels
            self.tabs.setCurrentWidget(self.generate_tab)
            self.generate_tab.job_started(params, handle)
        elif job == "train":
            self.tabs.setCurrentWidget(self.learn_tab)
            self.learn_tab.job_started(job, params, handle)

    def _ask_tileset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Tileset image (tiles in legend order)",
                                              str(self.host.workspace),
                                              "Images (*.png *.bmp *.gif *.jpg);;All files (*)")
        if not path:
            return
        size, ok = QInputDialog.getInt(self, "Tile size", "Tile size in pixels:", 16, 1, 256)
        if ok:
            self.set_tileset(TilesetImage(Path(path), size, size))

    def set_tileset(self, tileset: TilesetImage | None) -> None:
        try:
            self.document.set_tileset(tileset)
        except UserError as exc:
            self.host.notify(str(exc))

    # -- life -----------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.level is None and not self._started:
            self._started = True
            self.generate_tab.generate(preview=True)  # something to look at from the start

    def shutdown(self) -> None:
        self._check_timer.stop()
        self.generate_tab.shutdown()
