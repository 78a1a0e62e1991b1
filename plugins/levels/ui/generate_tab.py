"""The Generate tab: a classic method's settings, bound to ``GenerateParams``, and the buttons
that make a new level or regenerate the selected region of the edited one.

Every widget is the form's (``studio.widgets.form.Form``): its range, labels and tooltip come
from the params declaration, and the value it shows is ``form.p``'s field. The fields only the
editor knows are passed as objects when a job is submitted: the example level, the level being
edited (``base``), the selected region and the painted pins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMenu,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.levels.engine import generate as gen
from plugins.levels.engine.batch import LevelBatch
from plugins.levels.engine.level import Level
from plugins.levels.params import (
    LEVEL_FILES,
    METHOD_GROUPS,
    GenerateParams,
    InfoParams,
    Method,
)
from studio import params as params_mod
from studio.errors import UserError
from studio.host import PanelHost
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import ResultLine, primary
from studio.widgets.settingsarea import settings_scroll

from .document import LevelDocument

#: the first method a new user sees: it needs no example, so a map appears at once
FIRST_METHOD: Method = "dungeon"


def _openable(files: list[Path]) -> Path | None:
    """The saved file worth opening first: a Tiled map when there is one."""
    files = [Path(f) for f in files]
    for suffix in (".tmj", ".tmx", ".ldtk"):
        for f in files:
            if f.suffix == suffix:
                return f
    return files[0] if files else None


class GenerateTab(QWidget):
    def __init__(self, host: PanelHost, document: LevelDocument,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host, self.document = host, document
        self.selection: tuple[int, int, int, int] | None = None
        self.example: Level | None = None  # None: learn from the level being edited
        self._preview: JobHandle | None = None
        values = host.recall("generate", GenerateParams)
        if host.store.get("params", "generate") is None:
            values.method = FIRST_METHOD
        self.form = Form(GenerateParams, self, values)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(lambda: self.generate(preview=True))

        rows = QFormLayout()
        rows.setContentsMargins(0, 0, 0, 0)
        f = self.form
        rows.addRow(f.label("method"), f.widget("method"))
        self.example_label = QLabel()
        self.example_label.setWordWrap(True)
        self.example_button = QToolButton()
        self.example_button.setText("Choose…")
        self.example_button.setAccessibleName("Choose the example map")
        self.example_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.example_button)
        menu.addAction("Open an example file…", self._ask_example)
        menu.addAction("Keep a copy of the level being edited", self._freeze_example)
        menu.addAction("Learn from the level being edited", lambda: self.set_example(None))
        self.example_button.setMenu(menu)
        ex_row = QHBoxLayout()
        ex_row.addWidget(self.example_label, 1)
        ex_row.addWidget(self.example_button)
        self.example_row = QWidget()
        self.example_row.setLayout(ex_row)
        ex_row.setContentsMargins(0, 0, 0, 0)
        self.example_row.setToolTip(f.param("example").help)
        rows.addRow("Example:", self.example_row)
        size = QHBoxLayout()
        size.addWidget(f.widget("width"), 1)
        size.addWidget(QLabel("×"))
        size.addWidget(f.widget("height"), 1)
        rows.addRow("Size:", size)
        rows.addRow(f.label("seed"), f.widget("seed"))

        self.pages = QStackedWidget()
        self.methods = list(params_mod.describe(GenerateParams)[0].choices or ())
        for method in self.methods:
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 0, 0, 0)
            names = [p.name for p in params_mod.describe(GenerateParams)
                     if p.group == METHOD_GROUPS[method]]
            f.add_rows(form, *names)
            self.pages.addWidget(page)
        self.settings_box = QGroupBox("Settings")
        QVBoxLayout(self.settings_box).addWidget(self.pages)

        self.live = QCheckBox("Live preview")
        self.live.setToolTip("Make a new level whenever a setting changes")
        self.live.setChecked(bool(host.recall_value("live_preview", True)))
        self.live.toggled.connect(lambda on: host.remember_value("live_preview", on))
        self.keep_pins = QCheckBox("Keep painted tiles (pins)")
        self.keep_pins.setToolTip("Tiles you paint are pinned: WFC and regeneration keep them")
        self.keep_pins.setChecked(True)
        self.clear_pins_button = QPushButton("Clear pins")
        self.clear_pins_button.setToolTip("Forget which tiles were painted")
        self.clear_pins_button.clicked.connect(document.clear_pins)
        pins_row = QHBoxLayout()
        pins_row.addWidget(self.keep_pins, 1)
        pins_row.addWidget(self.clear_pins_button)

        settings = QWidget()
        sl = QVBoxLayout(settings)
        sl.setContentsMargins(0, 0, 4, 0)
        sl.addLayout(rows)
        sl.addWidget(self.settings_box)
        sl.addWidget(self.live)
        sl.addLayout(pins_row)
        sl.addStretch(1)

        # the buttons stay in view below the settings (which scroll on their own)
        buttons = QHBoxLayout()
        self.gen_button = primary(QPushButton("Generate"))
        self.gen_button.setToolTip("Make a new level with these settings (Ctrl+Enter)")
        self.gen_button.clicked.connect(lambda: self.generate(preview=False))
        self.region_button = QPushButton("Regenerate region")
        self.region_button.setEnabled(False)
        self.region_button.setToolTip("Select a region with the Select tool first")
        self.region_button.clicked.connect(self.regenerate_selection)
        buttons.addWidget(self.gen_button)
        buttons.addWidget(self.region_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        # the levels a batch made (a quick start makes four): pick one to edit it
        self.batch: LevelBatch | None = None
        self.batch_list = QListWidget()
        self.batch_list.setAccessibleName("Levels made")
        self.batch_list.setToolTip("The levels this batch made: pick one to edit it")
        self.batch_list.setMaximumHeight(96)
        self.batch_list.currentRowChanged.connect(self._pick_batch)
        self.batch_list.hide()
        self.result = ResultLine()

        lay = QVBoxLayout(self)
        lay.addWidget(settings_scroll(settings), 1)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.batch_list)
        lay.addWidget(self.result)
        lay.addStretch()  # the settings take what they need first (stretch 1, capped)

        f.changed.connect(self._changed)
        self._show_method()
        self.set_example(None)

    def shutdown(self) -> None:
        self._timer.stop()

    # -- settings -------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return str(self.form.p.method)

    def _show_method(self) -> None:
        self.pages.setCurrentIndex(self.methods.index(self.method))
        self.settings_box.setTitle(f"{METHOD_GROUPS[self.method]} settings")
        self.example_row.setEnabled(self.method == "wfc")

    def _changed(self, name: str) -> None:
        if name == "method":
            self._show_method()
        if self.live.isChecked() and self.document.level is not None:
            self._timer.start()

    def set_example(self, level: Level | None) -> None:
        """The level WFC learns from (None: the level being edited at the time)."""
        self.example = level
        if level is None:
            self.example_label.setText("the level being edited")
        else:
            self.example_label.setText(f"{level.name or 'a copy'} ({level.width}×{level.height})")
        self._changed("example")

    def _freeze_example(self) -> None:
        snap = self.document.snapshot()
        if snap is not None:
            snap.name = f"copy of {snap.name or 'the level'}"
        self.set_example(snap)

    def _ask_example(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Example map", str(self.host.workspace),
                                              LEVEL_FILES)
        if path:
            self.load_example(path)

    def load_example(self, path: str | Path) -> JobHandle:
        """Read an example file (on a worker) and learn from it."""
        handle = self.host.submit("info", InfoParams(level=Path(path)),  # type: ignore[arg-type]
                                  title="Open example", show_plots=False)
        self.status.setText("reading the example…")

        def done(rec: Any) -> None:
            if rec.state == "done":
                self.set_example(rec.result.levels[0])
                self.status.setText("")
            elif rec.state == "failed":
                self.status.setText(f"⚠ could not read the example: {rec.error}")

        handle.finished.connect(done)
        return handle

    def _pins_for(self, settings: gen.MethodSettings, example: Level | None,
                  p: GenerateParams) -> Any:
        """The painted tiles, when they are kept and the new map has the edited one's size."""
        lv = self.document.level
        pins = self.document.pinned()
        if not self.keep_pins.isChecked() or lv is None or pins is None:
            return None
        try:
            dw, dh = gen.default_size(settings, example)
        except UserError:
            return None
        return pins if (p.width or dw, p.height or dh) == (lv.width, lv.height) else None

    # -- jobs -----------------------------------------------------------------------------------
    def generate(self, preview: bool = False) -> JobHandle | None:
        """A whole new level with the current settings (a live preview when ``preview``: it
        replaces the previous preview in one undo step)."""
        self._timer.stop()
        example = self.example
        if self.method == "wfc" and example is None:
            example = self.document.snapshot()
            if example is None:
                self.status.setText("⚠ WFC needs an example map: choose one, or open a level")
                return None
        p = self.form.checked(self.status, save=False, base=None, region=None,
                              example=example if self.method == "wfc" else None)
        if p is None:
            return None
        p.pins = self._pins_for(p.settings(), example, p)
        if self._preview is not None and not self._preview.is_finished:
            self._preview.cancel()
        handle = self.host.submit("generate", p, title=f"Generate {self.method}",
                                  show_plots=False)
        self._preview = handle
        self.status.setText("Generating…")
        self.result.clear()
        handle.finished.connect(lambda rec, h=handle, pv=preview: self._generated(h, rec, pv))
        return handle

    def _generated(self, handle: JobHandle, rec: Any, preview: bool) -> None:
        if rec.state == "cancelled":
            return
        if rec.state != "done":
            self.status.setText("")
            self.result.show_problem(f"⚠ {rec.error}")
            return
        if handle is not self._preview and preview:
            return  # a newer preview is on its way
        self.show_batch(rec.result, preview)

    def show_batch(self, batch: LevelBatch, preview: bool = False) -> None:
        """Edit the batch's first level; a batch of several lists them to pick from, and a
        saved one says so (its folder behind "Show in folder")."""
        lv = batch.levels[0]
        if self.document.level is None:  # the very first map is where editing starts
            self.document.start(lv)
        else:
            self.document.set_level(lv, f"Generate {lv.meta.get('method', '')} "
                                        f"(seed {lv.meta.get('seed')})", merge=preview)
        self.document.set_report(batch.report(0))
        n = len(batch.levels)
        self.batch = batch if n > 1 else None
        self.batch_list.blockSignals(True)
        self.batch_list.clear()
        if n > 1:
            for i, level in enumerate(batch.levels):
                rep = batch.report(i)
                mark = "" if rep is None else ("✓ " if rep.playable else "✗ ")
                self.batch_list.addItem(f"{mark}{level.name} ({level.width}×{level.height})")
            self.batch_list.setCurrentRow(0)
        self.batch_list.blockSignals(False)
        self.batch_list.setVisible(n > 1)
        playable = sum(1 for r in batch.checked if r.playable)
        if n > 1:
            self.status.setText(f"{n} levels, {playable} playable: pick one to edit it.")
        else:
            self.status.setText(f"{lv.name}: {lv.width}×{lv.height}")
        saved = batch.folder or (batch.files[0].parent if batch.files else None)
        if saved is not None:
            self.result.show_result("Saved", _openable(batch.files) or saved)
        elif not preview:
            self.result.clear()

    def _pick_batch(self, row: int) -> None:
        batch = self.batch
        if batch is not None and 0 <= row < len(batch.levels):
            lv = batch.levels[row]
            self.document.set_level(lv, f"Pick {lv.name}", clear_pins=True)
            self.document.set_report(batch.report(row))

    def job_started(self, params: Any, handle: JobHandle) -> None:
        """A generate job the studio started (the welcome page's quick start): its settings
        in the form, its levels in the editor and the list, its files in the result line."""
        if isinstance(params, GenerateParams):
            self.form.set(params)
            self._show_method()
        self._timer.stop()
        self._preview = handle
        self.status.setText("Generating…")
        self.result.clear()
        handle.finished.connect(lambda rec, h=handle: self._generated(h, rec, False))

    def set_selection(self, rect: tuple[int, int, int, int] | None) -> None:
        self.selection = rect
        self.region_button.setEnabled(rect is not None)

    def regenerate_selection(self) -> JobHandle | None:
        base = self.document.snapshot()
        rect = self.selection
        if base is None or rect is None:
            return None
        example = self.example if self.method == "wfc" else None
        pins = self.document.pinned() if self.keep_pins.isChecked() else None
        p = self.form.checked(self.status, save=False, base=base, region=rect,
                              example=example, pins=pins)
        if p is None:
            return None
        handle = self.host.submit("generate", p, title="Regenerate region", show_plots=False)
        self.status.setText("Regenerating the selection…")
        handle.finished.connect(self._regenerated)
        return handle

    def _regenerated(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.status.setText("")
                self.result.show_problem(f"⚠ {rec.error}")
            return
        lv = rec.result.levels[0]
        self.document.set_level(lv, "Regenerate region")
        self.document.set_report(rec.result.report(0))
        self.form.set_value("seed", int(self.form.p.seed) + 1)  # the next press: a new variant
        x0, y0, x1, y1 = lv.meta.get("regenerated", (0, 0, 0, 0))
        self.status.setText(f"tiles {x0}–{x1 - 1} across, {y0}–{y1 - 1} down regenerated")
