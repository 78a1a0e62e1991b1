"""The editor page: canvas, brush tools, generation settings, layers and history.

Generation always runs as a job (``sample``, ``img2img``, ``inpaint`` on the interactive lane):
the page flattens the visible layers and the mask into two PNGs, submits, shows the job's
per-step previews over the canvas, and adds each result as a layer (undoable) and a history entry.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.diffusion.engine.schedulers import LABELS, SCHEDULER_NAMES
from studio.widgets.seed import seed_row
from studio.widgets.vscroll import vertical_scroll

from .canvas import CanvasView
from .document import CanvasDocument
from .history import HistoryStrip
from .layers import LayersWidget

MODES = (("txt2img", "Generate"), ("img2img", "Image to image"), ("inpaint", "Inpaint"))
_inputs = itertools.count(1)


class EditTab(QWidget):
    """``status_changed(text, is_error)`` mirrors the status line (tests read it)."""

    status_changed = Signal(str, bool)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.doc = CanvasDocument(self)
        self.canvas = CanvasView(self.doc)
        self.handle: Any = None
        self.model_info: dict[str, Any] | None = None
        self._info_handle: Any = None
        self._result_count = 0
        self._request_seed = 0
        self._inputs: list[Path] = []
        self._build()
        self.doc.undo_stack.canUndoChanged.connect(self.act_undo.setEnabled)
        self.doc.undo_stack.canRedoChanged.connect(self.act_redo.setEnabled)
        self.doc.layers_changed.connect(self._update_enabled)
        self._update_enabled()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        tb = QToolBar()
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.act_open = self._action(tb, "Open…", self.ask_open_image,
                                     QKeySequence.StandardKey.Open, "Open an image to edit")
        self.act_export = self._action(tb, "Export PNG…", self.ask_export,
                                       QKeySequence.StandardKey.Save,
                                       "Save the visible picture as PNG with its generation "
                                       "parameters")
        self.act_read = self._action(tb, "Read parameters…", self.ask_read_parameters, None,
                                     "Load prompt, seed and settings from a PNG's parameters")
        tb.addSeparator()
        stack = self.doc.undo_stack
        self.act_undo = self._action(tb, "Undo", stack.undo, QKeySequence.StandardKey.Undo, "")
        self.act_redo = self._action(tb, "Redo", stack.redo, QKeySequence.StandardKey.Redo, "")
        self.act_undo.setEnabled(False)
        self.act_redo.setEnabled(False)
        stack.undoTextChanged.connect(lambda t: self.act_undo.setToolTip(f"Undo {t}"))
        stack.redoTextChanged.connect(lambda t: self.act_redo.setToolTip(f"Redo {t}"))
        tb2 = QToolBar()
        tb2.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, label, tip in (("brush", "Brush", "Paint the area to repaint (B)"),
                                 ("eraser", "Eraser", "Erase the mask (E)"),
                                 ("pan", "Pan", "Drag the view (or hold Space / middle button)")):
            act = QAction(label, self, checkable=True, toolTip=tip)
            act.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
            group.addAction(act)
            tb2.addAction(act)
            self.tool_actions[tool] = act
        self.tool_actions["brush"].setShortcut("B")
        self.tool_actions["eraser"].setShortcut("E")
        self.tool_actions["brush"].setChecked(True)
        self.size_slider = self._slider(1, 256, 24, "Brush size in image pixels ([ and ])")
        self.size_slider.valueChanged.connect(lambda v: setattr(self.canvas, "brush_size",
                                                                float(v)))
        self.hard_slider = self._slider(0, 100, 60, "Brush hardness: soft edge to hard edge")
        self.hard_slider.valueChanged.connect(lambda v: setattr(self.canvas, "hardness",
                                                                v / 100.0))
        tb2.addWidget(QLabel(" Size "))
        tb2.addWidget(self.size_slider)
        tb2.addWidget(QLabel(" Hardness "))
        tb2.addWidget(self.hard_slider)
        self.act_clear = self._action(tb2, "Clear mask", self.doc.clear_mask, None,
                                      "Remove the whole mask (undoable)")
        zoom_bar = QToolBar()
        zoom_bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        zoom_bar.addWidget(QLabel("Zoom "))
        self._action(zoom_bar, "−", lambda: self.canvas.zoom_by(0.8),
                     QKeySequence.StandardKey.ZoomOut, "Zoom out (wheel, -)")
        self.zoom_label = QLabel("100%")
        zoom_bar.addWidget(self.zoom_label)
        self._action(zoom_bar, "+", lambda: self.canvas.zoom_by(1.25),
                     QKeySequence.StandardKey.ZoomIn, "Zoom in (wheel, +)")
        self._action(zoom_bar, "Fit", self.canvas.fit, None, "Fit the picture in the view (F)")
        hint = QLabel("  Pan: middle/right drag or Space. Brush size: [ ]")
        hint.setObjectName("placeholder")
        zoom_bar.addWidget(hint)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f" {z * 100:.0f}% "))

        self.history = HistoryStrip()
        self.history.restore.connect(self.apply_params)
        self.history.reuse.connect(self._reuse_history)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(tb)
        lv.addWidget(tb2)
        canvas_box = QWidget()
        cv = QVBoxLayout(canvas_box)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(self.canvas, 1)
        cv.addWidget(zoom_bar)
        bottom_widget = QWidget()
        bottom = QHBoxLayout(bottom_widget)
        bottom.setContentsMargins(0, 0, 0, 0)
        hist_box = QGroupBox("History")
        hist_box.setToolTip("Every generated image. Click: restore its settings. Double-click: "
                            "add it to the canvas again.")
        QVBoxLayout(hist_box).addWidget(self.history)
        layers_box = QGroupBox("Layers")
        self.layers = LayersWidget(self.doc)
        QVBoxLayout(layers_box).addWidget(self.layers)
        layers_box.setMinimumWidth(180)
        layers_box.setMaximumWidth(230)
        bottom.addWidget(hist_box, 3)
        bottom.addWidget(layers_box, 2)
        vsplit = QSplitter(Qt.Orientation.Vertical)
        vsplit.addWidget(canvas_box)
        vsplit.addWidget(bottom_widget)
        vsplit.setStretchFactor(0, 1)
        vsplit.setStretchFactor(1, 0)
        vsplit.setSizes([600, 170])
        lv.addWidget(vsplit, 1)

        side = QWidget()
        sv = QVBoxLayout(side)
        sv.addWidget(self._model_box())
        sv.addWidget(self._settings_box())
        sv.addWidget(self._outpaint_box())
        run_row = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        run_row.addWidget(self.generate_button, 2)
        run_row.addWidget(self.cancel_button, 1)
        sv.addLayout(run_row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        sv.addWidget(self.progress)
        self.status = QLabel("Open an image, or choose a model and Generate.")
        self.status.setWordWrap(True)
        sv.addWidget(self.status)
        sv.addStretch(1)
        scroll = vertical_scroll(side, 290, 420)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(scroll)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setCollapsible(1, False)
        split.setSizes([2000, 300])  # the canvas takes what the settings do not need
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(split)

    def _action(self, tb: QToolBar, text: str, slot: Any, shortcut: Any, tip: str) -> QAction:
        act = QAction(text, self)
        act.setToolTip(tip)
        if shortcut is not None:
            act.setShortcut(shortcut)
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.triggered.connect(lambda _=False: slot())
        tb.addAction(act)
        return act

    def _slider(self, lo: int, hi: int, value: int, tip: str) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(lo, hi)
        s.setValue(value)
        s.setMinimumWidth(60)
        s.setMaximumWidth(110)
        s.setToolTip(tip)
        return s

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("diffusers folder, training run or .safetensors")
        self.model_edit.editingFinished.connect(lambda: self.set_model(self.model_edit.text()))
        folder = QToolButton(text="Folder…", toolTip="A diffusers pipeline folder or a run")
        folder.clicked.connect(self._browse_model_folder)
        file = QToolButton(text="File…", toolTip="A single-file .safetensors checkpoint")
        file.clicked.connect(self._browse_model_file)
        row.addWidget(self.model_edit, 1)
        row.addWidget(folder)
        row.addWidget(file)
        lay.addLayout(row)
        self.model_label = QLabel("No model chosen.")
        self.model_label.setWordWrap(True)
        lay.addWidget(self.model_label)
        return box

    def _settings_box(self) -> QGroupBox:
        box = QGroupBox("Generation")
        form = QFormLayout(box)
        self.mode_combo = QComboBox()
        for key, label in MODES:
            self.mode_combo.addItem(label, key)
        self.mode_combo.currentIndexChanged.connect(self._update_enabled)
        form.addRow("Mode:", self.mode_combo)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("What to draw (text models)")
        self.prompt_edit.setFixedHeight(54)
        form.addRow("Prompt:", self.prompt_edit)
        self.negative_edit = QLineEdit()
        self.negative_edit.setPlaceholderText("What to avoid")
        form.addRow("Negative:", self.negative_edit)
        self.scheduler_combo = QComboBox()
        for name in SCHEDULER_NAMES:
            self.scheduler_combo.addItem(LABELS[name], name)
        self.scheduler_combo.setCurrentIndex(SCHEDULER_NAMES.index("dpm++"))
        form.addRow("Sampler:", self.scheduler_combo)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setValue(20)
        form.addRow("Steps:", self.steps_spin)
        self.guidance_spin = QDoubleSpinBox()
        self.guidance_spin.setRange(0.0, 30.0)
        self.guidance_spin.setSingleStep(0.5)
        self.guidance_spin.setValue(7.0)
        self.guidance_spin.setToolTip("Classifier-free guidance (text models); 0-1 turns it off")
        form.addRow("Guidance:", self.guidance_spin)
        self.seed_spin, row = seed_row(1)
        form.addRow("Seed:", row)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 64)
        self.n_spin.setValue(1)
        self.n_spin.setToolTip("Variations: image i uses seed + i; each becomes a layer")
        form.addRow("Images:", self.n_spin)
        strength_row = QHBoxLayout()
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(5, 100)
        self.strength_slider.setValue(60)
        self.strength_label = QLabel("0.60")
        self.strength_slider.valueChanged.connect(
            lambda v: self.strength_label.setText(f"{v / 100:.2f}"))
        self.strength_slider.setToolTip("How much to change: 0 keeps the picture, 1 ignores it")
        strength_row.addWidget(self.strength_slider, 1)
        strength_row.addWidget(self.strength_label)
        form.addRow("Strength:", strength_row)
        return box

    def _outpaint_box(self) -> QGroupBox:
        box = QGroupBox("Outpaint: grow the canvas")
        lay = QGridLayout(box)
        self.grow_spins: dict[str, QSpinBox] = {}
        for i, side in enumerate(("left", "right", "top", "bottom")):
            spin = QSpinBox()
            spin.setRange(0, 2048)
            spin.setSingleStep(8)
            spin.setSuffix(" px")
            spin.setToolTip(f"Pixels to add on the {side}")
            self.grow_spins[side] = spin
            lay.addWidget(QLabel(side.capitalize()), i // 2, (i % 2) * 2)
            lay.addWidget(spin, i // 2, (i % 2) * 2 + 1)
        self.grow_button = QPushButton("Grow canvas")
        self.grow_button.setToolTip("Enlarge the canvas and mask the new area; then Inpaint")
        self.grow_button.clicked.connect(self.grow)
        lay.addWidget(self.grow_button, 2, 0, 1, 4)
        return box

    # -- state ----------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return str(self.mode_combo.currentData())

    def set_mode(self, mode: str) -> None:
        for i in range(self.mode_combo.count()):
            if self.mode_combo.itemData(i) == mode:
                self.mode_combo.setCurrentIndex(i)

    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.tool_actions[tool].setChecked(True)

    def _update_enabled(self, *_: object) -> None:
        has_doc = not self.doc.is_empty
        busy = self.handle is not None
        self.act_export.setEnabled(has_doc)
        self.act_clear.setEnabled(has_doc)
        self.grow_button.setEnabled(has_doc and not busy)
        self.strength_slider.setEnabled(self.mode != "txt2img")
        text = not self.model_info or self.model_info.get("kind") == "text"
        for w in (self.prompt_edit, self.negative_edit, self.guidance_spin):
            w.setEnabled(text)
        self.generate_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(("⚠ " if error else "") + text)
        self.status.setStyleSheet("color: #D64545;" if error else "")
        self.status_changed.emit(text, error)

    # -- files ----------------------------------------------------------------------------------
    def ask_open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(self.host.workspace),
                                              "Images (*.png *.jpg *.jpeg *.webp *.bmp)")
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        from plugins.diffusion.engine.imageio import read_image
        from plugins.diffusion.engine.infotext import read_png_parameters
        from studio.errors import UserError

        try:
            rgb = read_image(path)
        except UserError as exc:
            self.set_status(str(exc), error=True)
            return False
        params = None
        if str(path).lower().endswith(".png"):
            try:
                params = read_png_parameters(path).to_json()
            except UserError:
                params = None
        self.doc.open_image(rgb, Path(path).name, params)
        self.canvas.fit()
        note = " It carries generation parameters: Read parameters… loads them." if params else ""
        self.set_status(f"Opened {Path(path).name} ({rgb.shape[1]}x{rgb.shape[0]}).{note}")
        return True

    def ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export PNG", str(self.host.workspace),
                                              "PNG (*.png)")
        if path:
            self.export_png(path if path.lower().endswith(".png") else path + ".png")

    def export_png(self, path: str | Path) -> Path | None:
        """The visible picture with the parameters of the topmost visible generated layer."""
        from plugins.common.pngmeta import save_png
        from plugins.diffusion.engine.infotext import PNG_KEY, GenerationParams, format_parameters

        if self.doc.is_empty:
            self.set_status("Nothing to export yet.", error=True)
            return None
        text = {}
        for layer in reversed(self.doc.layers):
            if layer.visible and layer.params:
                text[PNG_KEY] = format_parameters(GenerationParams.from_json(layer.params))
                break
        try:
            out = save_png(self.doc.flatten(), path, text)
        except OSError as exc:
            self.set_status(f"Could not write {path}: {exc}", error=True)
            return None
        self.set_status(f"Exported {out}" + (" with its parameters." if text else "."))
        return out

    def ask_read_parameters(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Read parameters from PNG",
                                              str(self.host.workspace), "PNG (*.png)")
        if path:
            self.read_parameters(path)

    def read_parameters(self, path: str | Path) -> bool:
        from plugins.diffusion.engine.infotext import read_png_parameters
        from studio.errors import UserError

        try:
            params = read_png_parameters(path)
        except UserError as exc:
            self.set_status(str(exc), error=True)
            return False
        self.apply_params(params.to_json())
        self.set_status(f"Settings read from {Path(path).name}.")
        return True

    def apply_params(self, params: dict[str, Any]) -> None:
        """Put a generation's settings back into the controls."""
        self.prompt_edit.setPlainText(str(params.get("prompt", "")))
        self.negative_edit.setText(str(params.get("negative_prompt", "")))
        sched = params.get("scheduler", "dpm++")
        if sched in SCHEDULER_NAMES:
            self.scheduler_combo.setCurrentIndex(SCHEDULER_NAMES.index(sched))
        self.steps_spin.setValue(int(params.get("steps", self.steps_spin.value())))
        self.guidance_spin.setValue(float(params.get("guidance", self.guidance_spin.value())))
        self.seed_spin.setValue(int(params.get("seed", self.seed_spin.value())))
        if params.get("strength") is not None:
            self.strength_slider.setValue(round(float(params["strength"]) * 100))
        mode = params.get("mode", "txt2img")
        self.set_mode("inpaint" if mode == "outpaint" else mode)

    # -- model ----------------------------------------------------------------------------------
    def _browse_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder", str(self.host.workspace))
        if path:
            self.set_model(path)

    def _browse_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model checkpoint", str(self.host.workspace),
                                              "safetensors (*.safetensors)")
        if path:
            self.set_model(path)

    def set_model(self, path: str) -> None:
        """Describe the model (a quick ``info`` job) so the page can adapt its controls."""
        path = path.strip()
        self.model_edit.setText(path)
        self.model_info = None
        if not path:
            self.model_label.setText("No model chosen.")
            return
        self.model_label.setText("Inspecting…")
        handle = self.host.submit("info", {"model": path}, show_plots=False)
        self._info_handle = handle
        handle.finished.connect(lambda rec, h=handle: self._on_info(h, rec))

    def _on_info(self, handle: Any, rec: Any) -> None:
        if handle is not self._info_handle:
            return
        self._info_handle = None
        if rec.state != "done":
            self.model_label.setText(f"⚠ {rec.error or rec.state}")
            self._update_enabled()
            return
        info = rec.result
        self.model_info = info
        if info["kind"] == "pixel":
            text = (f"{info['name']}: unconditional {info['size']} px, "
                    f"{'grayscale' if info['channels'] == 1 else 'colour'} (no prompt). "
                    "Inpainting uses RePaint-style sampling.")
        else:
            size = f"{info['size']} px, " if info.get("size") else ""
            inp = "inpainting model" if info.get("inpaint_model") else "text-to-image"
            text = f"{info['name']}: {info['pipeline_class']} ({size}{inp})."
        self.model_label.setText(text)
        self._update_enabled()

    # -- generation -----------------------------------------------------------------------------
    def _input_dir(self) -> Path:
        folder = self.host.workspace / "tmp" / "diffusion"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def generate(self) -> Any:
        """Submit the job for the current mode; returns its handle (or None with a message)."""
        if self.handle is not None:
            return None
        model = self.model_edit.text().strip()
        if not model:
            self.set_status("Choose a model first (a diffusers folder, a training run or a "
                            ".safetensors file).", error=True)
            return None
        mode = self.mode
        params: dict[str, Any] = {
            "model": model, "steps": self.steps_spin.value(),
            "scheduler": self.scheduler_combo.currentData(), "seed": self.seed_spin.value(),
            "prompt": self.prompt_edit.toPlainText().strip(),
            "negative_prompt": self.negative_edit.text().strip(),
            "guidance": self.guidance_spin.value(), "n": self.n_spin.value(),
        }
        if mode == "txt2img":
            if not self.doc.is_empty and (self.model_info or {}).get("kind") == "text":
                params.update(width=self.doc.width, height=self.doc.height)
            job = "sample"
        else:
            if self.doc.is_empty:
                self.set_status("Open an image first (or Generate one).", error=True)
                return None
            n = next(_inputs)
            image_path = self._input_dir() / f"input-{n}.png"
            self.doc.flatten_to_png(image_path)
            params["image"] = str(image_path)
            if mode == "img2img":
                params["strength"] = self.strength_slider.value() / 100.0
                job = "img2img"
            else:
                if not self.doc.has_mask():
                    self.set_status("Paint the area to repaint with the brush first.",
                                    error=True)
                    return None
                mask_path = self._input_dir() / f"mask-{n}.png"
                self.doc.mask_to_png(mask_path)
                params["mask"] = str(mask_path)
                job = "inpaint"
        self._request_seed = int(params["seed"])
        self._inputs = [Path(params[k]) for k in ("image", "mask") if k in params]
        self.handle = self.host.submit(job, params, title=f"Diffusion: {job}", show_plots=False)
        self.handle.preview.connect(self._on_preview)
        self.handle.progress.connect(self._on_progress)
        self.handle.finished.connect(self._on_finished)
        self.progress.setValue(0)
        self.set_status(f"{dict(MODES).get(mode, mode)}: queued…")
        self._update_enabled()
        return self.handle

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.set_status("Cancelling…")

    def grow(self) -> None:
        sides = {k: s.value() for k, s in self.grow_spins.items()}
        if not any(sides.values()):
            self.set_status("Set how many pixels to add on at least one side.", error=True)
            return
        try:
            self.doc.grow(**sides)
        except Exception as exc:  # a UserError from the engine helper: show it
            self.set_status(str(exc), error=True)
            return
        self.set_mode("inpaint")
        self.canvas.fit()
        self.set_status(f"Canvas grown to {self.doc.width}x{self.doc.height}; the new area is "
                        "masked. Generate to outpaint.")

    def _on_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind == "image" and isinstance(payload, np.ndarray):
            self.canvas.show_preview(payload)
        elif kind == "result":
            for img, params in zip(payload, data.get("params", []), strict=False):
                self._add_result(img, params)

    def _add_result(self, img: np.ndarray, params: dict[str, Any]) -> None:
        self._result_count += 1
        mode = params.get("mode", "result")
        name = f"{mode} #{self._result_count} (seed {params.get('seed')})"
        first_of_batch = params.get("seed") == self._request_seed
        self.doc.add_result(img, name, params, visible=first_of_batch or self.doc.is_empty)
        self.history.add(img, params)

    def _reuse_history(self, index: int) -> None:
        img, params = self.history.entries[index]
        self._result_count += 1
        self.doc.add_result(img, f"{params.get('mode')} (seed {params.get('seed')})", params)

    def _on_progress(self, data: dict[str, Any]) -> None:
        total = data.get("total")
        if total:
            self.progress.setValue(int(1000 * data["done"] / total))
        if data.get("message"):
            self.status.setText(str(data["message"]))

    def _on_finished(self, rec: Any) -> None:
        self.handle = None
        for path in self._inputs:  # the flattened canvas and mask were only for this job
            path.unlink(missing_ok=True)
        self._inputs = []
        self.canvas.hide_preview()
        self.progress.setValue(1000 if rec.state == "done" else 0)
        if rec.state == "done":
            self.set_status(f"Done: saved {rec.result}")
        elif rec.state == "cancelled":
            self.set_status("Cancelled.")
        else:
            self.set_status(rec.error or "failed", error=True)
        self._update_enabled()

    def shutdown(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
