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
    QMenu,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.levels.engine import generate as gen
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

from .document import LevelDocument

#: the first method a new user sees: it needs no example, so a map appears at once
FIRST_METHOD: Method = "dungeon"


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

        lay = QVBoxLayout(self)
        rows = QFormLayout()
        f = self.form
        rows.addRow(f.label("method"), f.widget("method"))
        self.example_label = QLabel()
        self.example_label.setWordWrap(True)
        self.example_button = QToolButton()
        self.example_button.setText("Choose…")
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
        lay.addLayout(rows)

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
        lay.addWidget(self.settings_box)

        self.live = QCheckBox("Live preview")
        self.live.setToolTip("Make a new level whenever a setting changes")
        self.live.setChecked(bool(host.recall_value("live_preview", True)))
        self.live.toggled.connect(lambda on: host.remember_value("live_preview", on))
        self.keep_pins = QCheckBox("Keep painted tiles (pins)")
        self.keep_pins.setToolTip("Tiles you paint are pinned: WFC and regeneration keep them")
        self.keep_pins.setChecked(True)
        lay.addWidget(self.live)
        lay.addWidget(self.keep_pins)
        buttons = QHBoxLayout()
        self.gen_button = QPushButton("Generate")
        self.gen_button.setDefault(True)
        self.gen_button.clicked.connect(lambda: self.generate(preview=False))
        self.region_button = QPushButton("Regenerate region")
        self.region_button.setEnabled(False)
        self.region_button.setToolTip("Select a region with the Select tool first")
        self.region_button.clicked.connect(self.regenerate_selection)
        buttons.addWidget(self.gen_button)
        buttons.addWidget(self.region_button)
        lay.addLayout(buttons)
        self.clear_pins_button = QPushButton("Clear pins")
        self.clear_pins_button.setToolTip("Forget which tiles were painted")
        self.clear_pins_button.clicked.connect(document.clear_pins)
        lay.addWidget(self.clear_pins_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        lay.addStretch(1)

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
        self.status.setText("generating…")
        handle.finished.connect(lambda rec, h=handle, pv=preview: self._generated(h, rec, pv))
        return handle

    def _generated(self, handle: JobHandle, rec: Any, preview: bool) -> None:
        if rec.state == "cancelled":
            return
        if rec.state != "done":
            self.status.setText(f"⚠ {rec.error}")
            return
        if handle is not self._preview and preview:
            return  # a newer preview is on its way
        batch = rec.result
        lv = batch.levels[0]
        if self.document.level is None:  # the very first map is where editing starts
            self.document.start(lv)
        else:
            self.document.set_level(lv, f"Generate {lv.meta.get('method', '')} "
                                        f"(seed {lv.meta.get('seed')})", merge=preview)
        self.document.set_report(batch.report(0))
        self.status.setText(f"{lv.name}: {lv.width}×{lv.height}")

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
        self.status.setText("regenerating the selection…")
        handle.finished.connect(self._regenerated)
        return handle

    def _regenerated(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.status.setText(f"⚠ {rec.error}")
            return
        lv = rec.result.levels[0]
        self.document.set_level(lv, "Regenerate region")
        self.document.set_report(rec.result.report(0))
        self.form.set_value("seed", int(self.form.p.seed) + 1)  # the next press: a new variant
        x0, y0, x1, y1 = lv.meta.get("regenerated", (0, 0, 0, 0))
        self.status.setText(f"tiles {x0}–{x1 - 1} across, {y0}–{y1 - 1} down regenerated")
