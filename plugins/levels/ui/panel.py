"""The levels editor panel: generate, paint, check, learn and export -- all work runs as jobs.

Left: three tabs (Generate, Learn, Check). Centre: a toolbar (open, export, undo/redo, tools,
tile brush, zoom, tileset) over the tile view. Every generator, check, repair, export, training
run and sampling goes through ``host.submit``; the panel only writes the level it is editing to
a small scratch file the job reads (the same files the command line takes), then shows the
result. Undo/redo covers painting, generating, regenerating a region, repairing and opening.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap, QUndoStack
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.levels.engine import vglc
from plugins.levels.engine.level import Level
from studio.errors import UserError
from studio.host import PanelHost
from studio.qtjobs import JobHandle
from studio.storage import atomic_write_json
from studio.widgets.seed import seed_row
from studio.widgets.vscroll import vertical_scroll

from .commands import LevelCommand, PaintCommand
from .view import TileView

METHODS = [("WFC (learn from example)", "wfc"), ("BSP dungeon", "dungeon"),
           ("Cellular-automata caves", "caves"), ("Noise terrain + biomes", "terrain"),
           ("L-system trails / plants", "lsystem")]
_scratch_ids = itertools.count(1)


def _spin(lo: int, hi: int, value: int, special: str | None = None) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    if special:
        s.setSpecialValueText(special)
    return s


def _dspin(lo: float, hi: float, value: float, step: float, decimals: int = 2,
           special: str | None = None) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(decimals)
    s.setValue(value)
    if special:
        s.setSpecialValueText(special)
    return s


def _path_row(line: QLineEdit, parent: QWidget, folder: bool, caption: str,
              filt: str = "") -> QWidget:
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(line, 1)
    btn = QPushButton("…")
    btn.setMaximumWidth(30)

    def browse() -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(parent, caption, line.text())
        else:
            path, _ = QFileDialog.getOpenFileName(parent, caption, line.text(), filt)
        if path:
            line.setText(path)

    btn.clicked.connect(browse)
    lay.addWidget(btn)
    return box


LEVEL_FILTER = "Levels (*.txt *.tmj *.json);;All files (*)"


class LevelsPanel(QWidget):
    def __init__(self, host: PanelHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.undo = QUndoStack(self)
        self.view = TileView()
        self.handles: list[JobHandle] = []  # keep every live handle referenced
        self._preview: JobHandle | None = None
        self._check_handle: JobHandle | None = None
        self._train_handle: JobHandle | None = None
        self.tileset_image: Any = None
        self.last_check: dict[str, Any] | None = None
        self.samples: list[Level] = []
        self._sample_batch: Any = None
        self._started = False
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(150)
        self._preview_timer.timeout.connect(lambda: self.generate(preview=True))
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(300)
        self._check_timer.timeout.connect(self.run_check)

        root = QHBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        split = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(split)
        self.tabs = QTabWidget()
        self.tabs.setMinimumWidth(300)
        self.tabs.addTab(self._generate_tab(), "Generate")
        self.tabs.addTab(self._learn_tab(), "Learn")
        self.tabs.addTab(self._check_tab(), "Check")
        left = vertical_scroll(self.tabs, 300)
        split.addWidget(left)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        for bar in self._toolbars():
            cl.addWidget(bar)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.view)
        self.scroll.setAlignment(Qt.AlignmentFlag.AlignCenter)
        cl.addWidget(self.scroll, 1)
        self.status = QLabel("No level yet: press Generate, or open a VGLC / Tiled file.")
        self.status.setWordWrap(True)
        cl.addWidget(self.status)
        split.addWidget(centre)
        split.setStretchFactor(1, 1)
        split.setSizes([left.minimumWidth(), 900])

        self.view.stroke.connect(self._on_stroke)
        self.view.selection_changed.connect(self._on_selection)
        self.view.hovered.connect(self._on_hover)
        self._on_method()

    # ------------------------------------------------------------------------------------------
    # UI construction
    # ------------------------------------------------------------------------------------------
    def _generate_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        form = QFormLayout()
        self.method = QComboBox()
        for label, key in METHODS:
            self.method.addItem(label, key)
        self.method.setCurrentIndex(1)  # works without an example: a first map at once
        self.method.currentIndexChanged.connect(self._on_method)
        form.addRow("Method:", self.method)
        self.example = QLineEdit()
        self.example.setPlaceholderText("empty: the current level")
        self.example.setToolTip("The example map WFC learns its patterns from")
        form.addRow("Example:", _path_row(self.example, self, False, "Example map",
                                          LEVEL_FILTER))
        self.width_spin = _spin(0, 2048, 0, "auto")
        self.height_spin = _spin(0, 2048, 0, "auto")
        size = QHBoxLayout()
        size.addWidget(self.width_spin, 1)
        size.addWidget(QLabel("×"))
        size.addWidget(self.height_spin, 1)
        form.addRow("Size (tiles):", size)
        self.seed, row = seed_row(3)
        form.addRow("Seed:", row)
        lay.addLayout(form)

        self.params_stack = QStackedWidget()
        self.p: dict[str, QWidget] = {}

        def page(rows: list[tuple[str, str, QWidget]]) -> QWidget:
            g = QWidget()
            f = QFormLayout(g)
            f.setContentsMargins(0, 0, 0, 0)
            for label, key, widget in rows:
                self.p[key] = widget
                f.addRow(label, widget)
            return g

        sym = QComboBox()
        for label, v in (("as is", 1), ("+ mirrored", 2), ("+ rotations (top-down)", 8)):
            sym.addItem(label, v)
        anchor = QComboBox()
        for v in ("auto", "rows", "edges", "none"):
            anchor.addItem(v, v)
        preset = QComboBox()
        preset.addItem("trails (top-down)", "trails")
        preset.addItem("plants (side view)", "plants")
        self.params_stack.addWidget(page([("Pattern size N:", "pattern", _spin(2, 5, 3)),
                                          ("Symmetry:", "symmetry", sym),
                                          ("Row anchoring:", "anchor", anchor)]))
        self.params_stack.addWidget(page([("Smallest room:", "min_room", _spin(2, 30, 4)),
                                          ("Largest room:", "max_room", _spin(2, 60, 12)),
                                          ("Split depth:", "depth", _spin(1, 10, 5))]))
        self.params_stack.addWidget(page([("Rock fill:", "fill", _dspin(0.2, 0.8, 0.45, 0.01)),
                                          ("Smoothing steps:", "steps", _spin(0, 20, 5))]))
        island = QCheckBox("island (water at the edges)")
        island.setChecked(True)
        self.params_stack.addWidget(page([("Feature size:", "scale", _dspin(2, 256, 24, 2, 0)),
                                          ("Octaves:", "octaves", _spin(1, 8, 4)),
                                          ("Sea level:", "sea_level",
                                           _dspin(0.0, 0.9, 0.35, 0.02)),
                                          ("", "island", island)]))
        self.params_stack.addWidget(page([("Preset:", "preset", preset),
                                          ("Iterations:", "iterations",
                                           _spin(0, 7, 0, "preset's"))]))
        box = QGroupBox("Settings")
        bl = QVBoxLayout(box)
        bl.addWidget(self.params_stack)
        lay.addWidget(box)

        self.live = QCheckBox("Live preview")
        self.live.setChecked(True)
        self.live.setToolTip("Regenerate on every change of a setting")
        self.keep_pins = QCheckBox("Keep painted tiles (pins)")
        self.keep_pins.setChecked(True)
        self.keep_pins.setToolTip("Tiles you paint are pinned: WFC and regeneration keep them")
        lay.addWidget(self.live)
        lay.addWidget(self.keep_pins)
        self.gen_button = QPushButton("Generate")
        self.gen_button.setDefault(True)
        self.gen_button.clicked.connect(lambda: self.generate(preview=False))
        self.region_button = QPushButton("Regenerate region")
        self.region_button.setEnabled(False)
        self.region_button.setToolTip("Select a region with the select tool first")
        self.region_button.clicked.connect(self.regenerate_selection)
        row = QHBoxLayout()
        row.addWidget(self.gen_button)
        row.addWidget(self.region_button)
        lay.addLayout(row)
        clear = QPushButton("Clear pins")
        clear.clicked.connect(self.clear_pins)
        lay.addWidget(clear)
        self.gen_status = QLabel("")
        self.gen_status.setWordWrap(True)
        lay.addWidget(self.gen_status)
        lay.addStretch(1)

        for wdg in [self.width_spin, self.height_spin, self.seed, *self.p.values()]:
            sig = getattr(wdg, "valueChanged", None) or getattr(wdg, "currentIndexChanged",
                                                                None) \
                or getattr(wdg, "toggled", None)
            if sig is not None:
                sig.connect(self._param_changed)
        self.example.editingFinished.connect(self._param_changed)
        return w

    def _learn_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        tbox = QGroupBox("Train a model on level segments")
        tf = QFormLayout(tbox)
        self.data = QLineEdit()
        self.data.setPlaceholderText("folder of VGLC levels (with their legend) or .tmj maps")
        tf.addRow("Data:", _path_row(self.data, self, True, "Training levels"))
        self.model_kind = QComboBox()
        self.model_kind.addItem("GAN (MarioGAN-style DCGAN)", "gan")
        self.model_kind.addItem("VAE", "vae")
        tf.addRow("Model:", self.model_kind)
        self.steps = _spin(1, 1_000_000, 3000)
        tf.addRow("Steps:", self.steps)
        self.seg_width = _spin(8, 256, 28)
        tf.addRow("Segment width:", self.seg_width)
        self.run_dir = QLineEdit()
        self.run_dir.setPlaceholderText("new folder in the workspace")
        tf.addRow("Run folder:", _path_row(self.run_dir, self, True, "Run folder"))
        self.resume = QCheckBox("Resume from its checkpoint")
        tf.addRow(self.resume)
        trow = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.train)
        self.cancel_train = QPushButton("Cancel")
        self.cancel_train.setEnabled(False)
        self.cancel_train.clicked.connect(lambda: self._train_handle and
                                          self._train_handle.cancel())
        trow.addWidget(self.train_button)
        trow.addWidget(self.cancel_train)
        tf.addRow(trow)
        self.train_status = QLabel("Loss and quality curves appear in the Live plots dock.")
        self.train_status.setWordWrap(True)
        tf.addRow(self.train_status)
        self.train_preview = QLabel()
        self.train_preview.setMinimumHeight(40)
        tf.addRow(self.train_preview)
        lay.addWidget(tbox)

        sbox = QGroupBox("Sample levels")
        sf = QFormLayout(sbox)
        self.model_dir = QLineEdit()
        self.model_dir.setPlaceholderText("a run folder a training job wrote")
        sf.addRow("Model:", _path_row(self.model_dir, self, True, "Model run folder"))
        self.n_samples = _spin(1, 500, 8)
        self.segments = _spin(1, 64, 4)
        self.sample_seed = _spin(0, 2**31 - 1, 1)
        sf.addRow("Levels:", self.n_samples)
        sf.addRow("Segments each:", self.segments)
        sf.addRow("Seed:", self.sample_seed)
        self.search = QCheckBox("Latent search: only playable segments (CMA-ES)")
        sf.addRow(self.search)
        self.t_enemies = _dspin(-1, 50, -1, 1, 0, "any")
        self.t_gaps = _dspin(-1, 20, -1, 1, 0, "any")
        sf.addRow("Target enemies / segment:", self.t_enemies)
        sf.addRow("Target gaps / segment:", self.t_gaps)
        self.sample_button = QPushButton("Sample")
        self.sample_button.clicked.connect(self.sample)
        sf.addRow(self.sample_button)
        self.sample_list = QListWidget()
        self.sample_list.setMinimumHeight(120)
        self.sample_list.currentRowChanged.connect(self._on_sample_selected)
        sf.addRow(self.sample_list)
        self.sample_status = QLabel("")
        self.sample_status.setWordWrap(True)
        sf.addRow(self.sample_status)
        lay.addWidget(sbox)
        lay.addStretch(1)
        return w

    def _check_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        form = QFormLayout()
        self.mode = QComboBox()
        for label, key in (("auto (from the legend)", "auto"), ("platformer (A* jumps)",
                                                                "platformer"),
                           ("ladders (Lode Runner)", "ladder"), ("top-down (flood fill)",
                                                                  "topdown")):
            self.mode.addItem(label, key)
        form.addRow("Agent:", self.mode)
        self.train_data = QLineEdit()
        self.train_data.setPlaceholderText("training levels for distance and novelty")
        form.addRow("Compare with:", _path_row(self.train_data, self, True, "Training levels"))
        self.auto_check = QCheckBox("Check after every change")
        self.auto_check.setChecked(True)
        form.addRow(self.auto_check)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.check_button = QPushButton("Check")
        self.check_button.clicked.connect(self.run_check)
        self.repair_button = QPushButton("Repair (fewest changes)")
        self.repair_button.clicked.connect(self.run_repair)
        row.addWidget(self.check_button)
        row.addWidget(self.repair_button)
        lay.addLayout(row)
        self.verdict = QLabel("")
        self.verdict.setObjectName("pluginTitle")
        lay.addWidget(self.verdict)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("Playability and metrics as JSON")
        lay.addWidget(self.report, 1)
        return w

    def _toolbars(self) -> list[QToolBar]:
        """Two short rows (file and view; editing tools) so nothing hides behind an overflow
        arrow when the plots dock is open."""
        tb = QToolBar()
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tools = QToolBar()
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        file_btn = QToolButton()
        file_btn.setText("File")
        file_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(file_btn)
        act_open = menu.addAction("Open level (VGLC .txt, Tiled .tmj)…")
        act_open.setShortcut(QKeySequence.StandardKey.Open)
        act_open.triggered.connect(self._ask_open)
        menu.addSeparator()
        for label, ext, ts in (("Export Tiled map (.tmj, tileset embedded)…", "tmj", "embedded"),
                               ("Export Tiled map (.tmj + external .tsj)…", "tmj", "external"),
                               ("Export VGLC text (.txt + legend)…", "txt", "embedded"),
                               ("Export CSV (tile indices)…", "csv", "embedded"),
                               ("Export PNG picture…", "png", "embedded")):
            act = menu.addAction(label)
            act.triggered.connect(lambda _=False, e=ext, t=ts: self._ask_export(e, t))
        menu.addSeparator()
        tiles_act = menu.addAction("Tileset image…")
        tiles_act.setToolTip("Draw with tiles cut from an image, in legend order")
        tiles_act.triggered.connect(self._ask_tileset)
        colours = menu.addAction("Colour tiles")
        colours.triggered.connect(lambda: self.set_tileset(None))
        file_btn.setMenu(menu)
        self.file_menu = menu
        tb.addWidget(file_btn)
        tb.addSeparator()
        undo = QAction("Undo", self)
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        undo.triggered.connect(self.undo.undo)
        undo.setEnabled(False)
        self.undo.canUndoChanged.connect(undo.setEnabled)
        self.undo.undoTextChanged.connect(lambda t: undo.setToolTip(f"Undo {t}"))
        redo = QAction("Redo", self)
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        redo.triggered.connect(self.undo.redo)
        redo.setEnabled(False)
        self.undo.canRedoChanged.connect(redo.setEnabled)
        self.undo.redoTextChanged.connect(lambda t: redo.setToolTip(f"Redo {t}"))
        tb.addAction(undo)
        tb.addAction(redo)
        tb.addSeparator()
        self.tool_actions: dict[str, QAction] = {}
        main_bar, tb = tb, tools
        for key, label in (("paint", "Paint"), ("erase", "Erase"), ("select", "Select")):
            act = QAction(label, self)
            act.setCheckable(True)
            act.triggered.connect(lambda _=False, k=key: self.set_tool(k))
            tb.addAction(act)
            self.tool_actions[key] = act
        self.tool_actions["paint"].setChecked(True)
        self.brush = QComboBox()
        self.brush.setMinimumWidth(150)
        self.brush.setToolTip("Tile to paint (right button erases)")
        self.brush.currentIndexChanged.connect(self._on_brush)
        tb.addWidget(self.brush)
        tb = main_bar
        self.zoom = QSpinBox()
        self.zoom.setRange(2, 48)
        self.zoom.setValue(self.view.tile)
        self.zoom.setSuffix(" px")
        self.zoom.setToolTip("Tile size on screen (Ctrl+wheel)")
        self.zoom.valueChanged.connect(self.view.set_zoom)
        tb.addWidget(self.zoom)
        self.path_toggle = QAction("Path", self)
        self.path_toggle.setCheckable(True)
        self.path_toggle.setChecked(True)
        self.path_toggle.setToolTip("Show the agent's path")
        self.path_toggle.toggled.connect(self._toggle_path)
        tb.addAction(self.path_toggle)
        return [main_bar, tools]

    # ------------------------------------------------------------------------------------------
    # Level state
    # ------------------------------------------------------------------------------------------
    @property
    def level(self) -> Level | None:
        return self.view.level

    def set_level(self, level: Level, text: str, merge: bool = False) -> None:
        """Replace the edited level (undoable)."""
        self.undo.push(LevelCommand(self._apply_level, self.level, level, text, merge))

    def _apply_level(self, level: Level | None) -> None:
        old = self.level
        legend_changed = level is None or old is None or old.legend != level.legend
        same_shape = old is not None and level is not None and old.grid.shape == level.grid.shape
        self.view.set_level(level, keep_selection=same_shape)
        if level is not None and not same_shape:
            self.fit_zoom()
        self.view.set_path([])
        if legend_changed:
            self._fill_brushes()
            self._reload_tileset()
        self._update_status()
        if level is not None and self.auto_check.isChecked():
            self._check_timer.start()

    def fit_zoom(self) -> None:
        """A tile size that shows the whole map, or its full height for long side-scrollers."""
        lv = self.level
        if lv is None:
            return
        vp = self.scroll.viewport().size()
        w, h = max(100, vp.width() - 4), max(100, vp.height() - 4)
        tile = min(w // lv.width, h // lv.height)
        if lv.width > 3 * lv.height:  # a side-scroller: full height, scroll sideways
            tile = min(h // lv.height, 16)
        self.zoom.setValue(int(max(4, min(32, tile))))

    def _fill_brushes(self) -> None:
        self.brush.blockSignals(True)
        self.brush.clear()
        lv = self.level
        if lv is not None:
            for c, t in lv.legend.tiles.items():
                pix = QPixmap(14, 14)
                pix.fill(QColor(*lv.legend.color(c)))
                self.brush.addItem(QIcon(pix), f"{c}  {t.name}", ord(c))
            solid = lv.legend.ground
            self.brush.setCurrentIndex(max(0, lv.legend.chars.index(solid)))
        self.brush.blockSignals(False)
        self._on_brush()

    def _on_brush(self) -> None:
        code = self.brush.currentData()
        if code is not None:
            self.view.brush = int(code)

    def set_tool(self, tool: str) -> None:
        self.view.tool = tool
        for k, act in self.tool_actions.items():
            act.setChecked(k == tool)

    def _toggle_path(self, on: bool) -> None:
        self.view.show_path = on
        self.view.update()

    def _update_status(self, extra: str = "") -> None:
        lv = self.level
        if lv is None:
            self.status.setText("No level.")
            return
        parts = [f"{lv.width}×{lv.height}", lv.legend.name or "custom tiles"]
        if lv.meta.get("method"):
            idx = f" #{lv.meta['index']}" if "index" in lv.meta else ""
            parts.append(f"{lv.meta['method']} seed {lv.meta.get('seed', '?')}{idx}")
        pins = int(self.view.pins.sum()) if self.view.pins is not None else 0
        if pins:
            parts.append(f"{pins} pinned")
        if self.last_check is not None:
            ok = self.last_check.get("playable") == "yes"
            parts.append("playable ✓" if ok else "not playable ✗ "
                          + str(self.last_check.get("reason", "")))
        if extra:
            parts.append(extra)
        self.status.setText(" · ".join(parts))

    def _on_stroke(self, changes: list[tuple[int, int, int, int]]) -> None:
        self.undo.push(PaintCommand(self.view, changes,
                                    "Erase" if self.view.tool == "erase" else "Paint"))
        self.last_check = None
        self._update_status()
        if self.auto_check.isChecked():
            self._check_timer.start()

    def _on_selection(self, rect: tuple[int, int, int, int] | None) -> None:
        self.region_button.setEnabled(rect is not None)

    def _on_hover(self, cell: tuple[int, int] | None) -> None:
        lv = self.level
        if cell is None or lv is None:
            return
        ch = lv.char_at(*cell)
        t = lv.legend.tiles.get(ch)
        self.view.setToolTip(f"({cell[0]}, {cell[1]}) {ch!r} " +
                             (", ".join(t.props) if t else "unknown tile"))

    def clear_pins(self) -> None:
        if self.view.pins is not None:
            self.view.pins[:] = False
            self.view.update()
            self._update_status()

    # ------------------------------------------------------------------------------------------
    # Jobs
    # ------------------------------------------------------------------------------------------
    def _submit(self, job: str, params: dict[str, Any], title: str | None = None,
                show_plots: bool = False) -> JobHandle:
        handle = self.host.submit(job, params, title=title, show_plots=show_plots)
        self.handles.append(handle)
        handle.finished.connect(lambda _rec, h=handle: self._forget(h))
        return handle

    def _forget(self, handle: JobHandle) -> None:
        QTimer.singleShot(0, lambda: self.handles.remove(handle) if handle in self.handles
                          else None)

    def _scratch(self, level: Level) -> Path:
        """Write ``level`` where a job can read it: a fresh folder each time, so a queued job
        never reads a later edit. Old folders are pruned."""
        root = self.host.workspace / "levels" / "scratch"
        folder = root / f"{next(_scratch_ids):06d}"
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in level.name) or "level"
        vglc.write_level(level, folder / f"{stem}.txt", folder / "legend.json")
        olds = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
        for old in olds[:-24]:
            shutil.rmtree(old, ignore_errors=True)
        return folder / f"{stem}.txt"

    def _params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, w in self.p.items():
            if isinstance(w, QSpinBox | QDoubleSpinBox):
                out[key] = w.value()
            elif isinstance(w, QComboBox):
                out[key] = w.currentData()
            elif isinstance(w, QCheckBox):
                out[key] = w.isChecked()
        return out

    def _on_method(self) -> None:
        self.params_stack.setCurrentIndex(self.method.currentIndex())
        self.example.setEnabled(self.method.currentData() == "wfc")
        self._param_changed()

    def _param_changed(self) -> None:
        if self.live.isChecked() and self.level is not None:
            self._preview_timer.start()

    def generate(self, preview: bool = False) -> JobHandle | None:
        """Generate a whole new level with the current settings (a live preview when
        ``preview``: it replaces the previous preview in one undo step)."""
        method = self.method.currentData()
        params: dict[str, Any] = {"method": method, "seed": self.seed.value(),
                                  "width": self.width_spin.value(),
                                  "height": self.height_spin.value(), "save": False}
        method_keys = {"wfc": ("pattern", "symmetry", "anchor"),
                       "dungeon": ("min_room", "max_room", "depth"),
                       "caves": ("fill", "steps"),
                       "terrain": ("scale", "octaves", "sea_level", "island"),
                       "lsystem": ("preset", "iterations")}[method]
        all_params = self._params()
        params.update({k: all_params[k] for k in method_keys})
        if method == "wfc":
            ex = self.example.text().strip()
            if ex:
                params["example"] = ex
            elif self.level is not None:
                params["example"] = str(self._scratch(self.level))
            else:
                self.gen_status.setText("⚠ WFC needs an example map: choose one, or open a level")
                return None
        lv = self.level
        if (self.keep_pins.isChecked() and lv is not None and self.view.pins is not None
                and self.view.pins.any()):
            w = params["width"] or (lv.width if method == "wfc" and not self.example.text()
                                    else 0)
            h = params["height"] or (lv.height if method == "wfc" and not self.example.text()
                                     else 0)
            if (w, h) == (lv.width, lv.height):
                params["pins"] = str(self._pins_file(lv))
        if self._preview is not None and not self._preview.is_finished:
            self._preview.cancel()
        handle = self._submit("generate", params, title=f"Generate {method}")
        self._preview = handle
        self.gen_status.setText("generating…")
        handle.finished.connect(lambda rec, h=handle, pv=preview: self._on_generated(h, rec, pv))
        return handle

    def _pins_file(self, lv: Level) -> Path:
        import numpy as np

        folder = self._scratch(lv).parent
        pins = [[int(x), int(y), lv.char_at(int(x), int(y))]
                for y, x in np.argwhere(self.view.pins)]
        atomic_write_json(folder / "pins.json", {"pins": pins})
        return folder / "pins.json"

    def _on_generated(self, handle: JobHandle, rec: Any, preview: bool) -> None:
        if rec.state == "cancelled":
            return
        if rec.state != "done":
            self.gen_status.setText(f"⚠ {rec.error}")
            return
        if handle is not self._preview and preview:
            return  # a newer preview is on its way
        batch = rec.result
        lv = batch.levels[0]
        self._keep_pins_on(lv)
        if self.level is None:  # the very first map is where editing starts, not an edit
            self._apply_level(lv)
            self.undo.clear()
        else:
            self.set_level(lv, f"Generate {lv.meta.get('method', '')} "
                               f"(seed {lv.meta.get('seed')})", merge=preview)
        self._adopt_check(batch)
        self.gen_status.setText(f"{lv.name}: {lv.width}×{lv.height}")

    def _adopt_check(self, batch: Any, index: int = 0) -> None:
        """The job already checked this level: show its verdict and path, skip a re-check."""
        if batch.checks and len(batch.results) > index and batch.results[index] is not None:
            self._check_timer.stop()
            self._show_check(batch.checks[index], batch.results[index].path)

    def _keep_pins_on(self, lv: Level) -> None:
        if self.view.pins is not None and self.view.pins.shape != lv.grid.shape:
            self.view.pins = None

    def regenerate_selection(self) -> JobHandle | None:
        lv = self.level
        rect = self.view.selection
        if lv is None or rect is None:
            return None
        method = self.method.currentData()
        params: dict[str, Any] = {"method": method, "seed": self.seed.value(),
                                  "base": str(self._scratch(lv)),
                                  "region": ",".join(map(str, rect)), "save": False,
                                  **{k: v for k, v in self._params().items()
                                     if k in ("pattern", "symmetry", "min_room", "max_room",
                                              "depth", "fill", "steps", "scale", "octaves",
                                              "sea_level", "island", "preset", "iterations")}}
        if method == "wfc" and self.example.text().strip():
            params["example"] = self.example.text().strip()
        if self.keep_pins.isChecked() and self.view.pins is not None and self.view.pins.any():
            params["pins"] = str(self._pins_file(lv))
        handle = self._submit("generate", params, title="Regenerate region")
        self.gen_status.setText("regenerating the selection…")
        handle.finished.connect(self._on_region)
        return handle

    def _on_region(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.gen_status.setText(f"⚠ {rec.error}")
            return
        lv = rec.result.levels[0]
        self.set_level(lv, "Regenerate region")
        self._adopt_check(rec.result)
        self.seed.blockSignals(True)
        self.seed.setValue(self.seed.value() + 1)  # the next press gives another variant
        self.seed.blockSignals(False)
        self.gen_status.setText(f"region {lv.meta.get('regenerated')} regenerated")

    # -- check and repair -------------------------------------------------------------------------
    def run_check(self) -> JobHandle | None:
        lv = self.level
        if lv is None:
            return None
        params: dict[str, Any] = {"level": str(self._scratch(lv)),
                                  "mode": self.mode.currentData()}
        if self.train_data.text().strip():
            params["data"] = self.train_data.text().strip()
        if self._check_handle is not None and not self._check_handle.is_finished:
            self._check_handle.cancel()
        handle = self._submit("check", params, title="Check level")
        self._check_handle = handle
        handle.preview.connect(self._on_check_preview)
        handle.finished.connect(self._on_checked)
        return handle

    def _on_check_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        res = data.get("check")
        if kind == "level" and res is not None:
            lv = self.level
            if lv is not None and payload.grid.shape == lv.grid.shape and \
                    (payload.grid == lv.grid).all():
                self.view.set_path(res.path)

    def _on_checked(self, rec: Any) -> None:
        if rec.state == "done":
            self._show_check(json.loads(rec.result), None)
        elif rec.state == "failed":
            self.verdict.setText("Check failed")
            self.report.setPlainText(rec.error or "")

    def _show_check(self, entry: dict[str, Any], path: list[tuple[int, int]] | None) -> None:
        self.last_check = entry
        ok = entry.get("playable") == "yes"
        self.verdict.setText("Playable ✓" if ok else "Not playable ✗")
        self.verdict.setStyleSheet(f"color: {'#2e9d4a' if ok else '#d64545'};")
        self.report.setPlainText(json.dumps(entry, indent=2))
        if path is not None:
            self.view.set_path(path)
        self._update_status()

    def run_repair(self) -> JobHandle | None:
        lv = self.level
        if lv is None:
            return None
        src = self._scratch(lv)
        handle = self._submit("repair", {"level": str(src),
                                         "out": str(src.parent / "repaired.txt"),
                                         "mode": self.mode.currentData()},
                              title="Repair level")
        handle.finished.connect(self._on_repaired)
        return handle

    def _on_repaired(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.verdict.setText("Repair failed")
                self.report.setPlainText(rec.error or "")
            return
        batch = rec.result
        fixed = batch.levels[0]
        fixed.meta = dict(self.level.meta if self.level else {}, repaired=True)
        n = batch.checks[0].get("changes", 0) if batch.checks else 0
        self.set_level(fixed, f"Repair ({n} tiles)")
        self._adopt_check(batch)
        self.host.notify(f"Repaired with {n} tile change(s)")

    # -- open / export ----------------------------------------------------------------------------
    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open level", str(self.host.workspace),
                                              LEVEL_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path, legend: str | Path | None = None) -> JobHandle:
        params: dict[str, Any] = {"level": str(path)}
        if legend:
            params["legend"] = str(legend)
        handle = self._submit("info", params, title="Open level")
        handle.finished.connect(self._on_opened)
        return handle

    def _on_opened(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.status.setText(f"⚠ could not open: {rec.error}")
            return
        lv = rec.result.levels[0]
        self.view.pins = None
        self.set_level(lv, f"Open {lv.name}")
        from plugins.levels.engine.render import TilesetImage

        ts = lv.meta.get("tileset_image")
        if isinstance(ts, TilesetImage):
            self.tileset_image = ts
            self._reload_tileset()
        self._adopt_check(rec.result)

    def _ask_export(self, ext: str, tileset: str) -> None:
        if self.level is None:
            self.host.notify("Nothing to export yet")
            return
        start = str(self.host.workspace / f"{self.level.name or 'level'}.{ext}")
        path, _ = QFileDialog.getSaveFileName(self, "Export level", start, f"*.{ext}")
        if path:
            self.export_to(path, tileset)

    def export_to(self, path: str | Path, tileset: str = "embedded") -> JobHandle | None:
        lv = self.level
        if lv is None:
            return None
        params: dict[str, Any] = {"level": str(self._scratch(lv)), "to": str(path),
                                  "tileset": tileset, "path": self.path_toggle.isChecked()}
        ts = self.tileset_image
        if ts is not None:
            params.update({"tileset_image": str(ts.path), "tile_width": ts.tile_w,
                           "tile_height": ts.tile_h, "margin": ts.margin,
                           "spacing": ts.spacing})
        handle = self._submit("export", params, title="Export level")
        handle.finished.connect(
            lambda rec: self.host.notify(f"Exported {rec.result}" if rec.state == "done"
                                         else f"Export failed: {rec.error}"))
        return handle

    def _ask_tileset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Tileset image (tiles in legend order)",
                                              str(self.host.workspace),
                                              "Images (*.png *.bmp *.gif *.jpg);;All files (*)")
        if not path:
            self.set_tileset(None)
            return
        size, ok = QInputDialog.getInt(self, "Tile size", "Tile size in pixels:", 16, 1, 256)
        if ok:
            self.set_tileset(path, size, size)

    def set_tileset(self, path: str | Path | None, tile_w: int = 16, tile_h: int = 16,
                    margin: int = 0, spacing: int = 0) -> None:
        from plugins.levels.engine.render import TilesetImage

        self.tileset_image = None if path is None else TilesetImage(
            Path(path), tile_w, tile_h, margin, spacing)
        self._reload_tileset()

    def _reload_tileset(self) -> None:
        lv = self.level
        if self.tileset_image is None or lv is None:
            self.view.set_tiles(None)
            return
        try:
            self.view.set_tiles(self.tileset_image.tiles_for(lv.legend))
        except UserError as exc:
            self.tileset_image = None
            self.view.set_tiles(None)
            self.host.notify(str(exc))

    # -- learning ---------------------------------------------------------------------------------
    def train(self) -> JobHandle | None:
        data = self.data.text().strip()
        if not data:
            self.train_status.setText("⚠ choose a folder of training levels")
            return None
        params: dict[str, Any] = {"data": data, "model": self.model_kind.currentData(),
                                  "steps": self.steps.value(), "width": self.seg_width.value(),
                                  "resume": self.resume.isChecked()}
        if self.run_dir.text().strip():
            params["out"] = self.run_dir.text().strip()
        handle = self._submit("train", params, title=f"Train {params['model'].upper()}",
                              show_plots=True)
        self._train_handle = handle
        self.train_button.setEnabled(False)
        self.cancel_train.setEnabled(True)
        self.train_status.setText("training…")
        handle.progress.connect(lambda d: self.train_status.setText(d.get("message") or ""))
        handle.preview.connect(self._on_train_preview)
        handle.finished.connect(self._on_trained)
        return handle

    def _on_train_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind != "image":
            return
        from .view import qimage_rgb

        pix = QPixmap.fromImage(qimage_rgb(payload))
        width = max(200, self.tabs.width() - 40)
        self.train_preview.setPixmap(pix.scaledToWidth(width,
                                                       Qt.TransformationMode.FastTransformation))
        self.train_preview.setToolTip(f"samples at step {data.get('step')}")

    def _on_trained(self, rec: Any) -> None:
        self.train_button.setEnabled(True)
        self.cancel_train.setEnabled(False)
        if rec.state == "done":
            self.model_dir.setText(str(rec.result))
            self.run_dir.setText(str(rec.result))
            self.train_status.setText(f"done: {rec.result}")
        elif rec.state == "cancelled":
            self.train_status.setText("cancelled; the checkpoint is kept (tick Resume)")
            if rec.run_dir:
                self.run_dir.setText(str(rec.run_dir))
        else:
            self.train_status.setText(f"⚠ {rec.error}")

    def sample(self) -> JobHandle | None:
        model = self.model_dir.text().strip()
        if not model:
            self.sample_status.setText("⚠ choose a trained model's run folder")
            return None
        params: dict[str, Any] = {"model": model, "n": self.n_samples.value(),
                                  "segments": self.segments.value(),
                                  "seed": self.sample_seed.value(),
                                  "search": self.search.isChecked(), "save": False}
        if self.search.isChecked():
            if self.t_enemies.value() >= 0:
                params["enemies"] = self.t_enemies.value()
            if self.t_gaps.value() >= 0:
                params["gaps"] = self.t_gaps.value()
        handle = self._submit("sample", params, title="Sample levels")
        self.sample_status.setText("sampling…")
        self.sample_list.clear()
        self.samples = []
        self._sample_batch = None
        handle.preview.connect(self._on_sample_preview)
        handle.finished.connect(self._on_sampled)
        return handle

    def _on_sample_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind != "level":
            return
        res = data.get("check")
        self.samples.append(payload)
        mark = "✓" if res is not None and res.playable else "✗"
        self.sample_list.addItem(QListWidgetItem(f"{mark} {payload.name} "
                                                 f"({payload.width}×{payload.height})"))

    def _on_sampled(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.sample_status.setText(f"⚠ {rec.error}")
            return
        batch = rec.result
        self._sample_batch = batch
        # the preview stream may have skipped items: rebuild from the result
        self.samples = list(batch.levels)
        self.sample_list.blockSignals(True)
        self.sample_list.clear()
        for lv, c in zip(batch.levels, batch.checks, strict=False):
            mark = "✓" if c.get("playable") == "yes" else "✗"
            self.sample_list.addItem(f"{mark} {lv.name} ({lv.width}×{lv.height})")
        self.sample_list.blockSignals(False)
        s = batch.summary
        self.sample_status.setText(f"{s.get('playable_fraction', 0):.0%} playable, diversity "
                                   f"{s.get('diversity', 0):.3f}")
        if self.samples:
            self.sample_list.setCurrentRow(0)

    def _on_sample_selected(self, row: int) -> None:
        if 0 <= row < len(self.samples):
            self.view.pins = None
            self.set_level(self.samples[row], f"Sample {self.samples[row].name}")
            if self._sample_batch is not None and row < len(self._sample_batch.levels):
                self._adopt_check(self._sample_batch, row)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.level is None and not self._started:
            self._started = True
            self.generate(preview=True)  # something to look at and edit from the start

    def shutdown(self) -> None:
        self._preview_timer.stop()
        self._check_timer.stop()
