"""The editor page: canvas, brush tools, generation settings, layers and history.

Generation always runs as a job (``sample``, ``img2img``, ``inpaint`` on the interactive lane).
The settings every generation shares (model, prompt, sampler, steps, seed...) live in one form
bound to :class:`~plugins.diffusion.params.Generation`; each job's own settings (the strength,
the soft edge) in a form bound to that job's params class. Generate builds the job's params
from both, with the flattened visible layers and the mask passed as arrays (no files), shows
the job's per-step previews over the canvas, and adds each result as a layer (undoable) and a
history entry that restores the settings it was made with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.diffusion.params import (
    EDIT_JOBS,
    Generation,
    InfoParams,
    OutpaintParams,
    job_of_mode,
    with_png_parameters,
)
from studio import fmt
from studio.errors import UserError
from studio.params import ParamError
from studio.widgets.form import Form
from studio.widgets.panelparts import ResultLine, primary
from studio.widgets.settingsarea import advanced_toggle, settings_scroll

from .canvas import CanvasView
from .control import ControlBox
from .document import CanvasDocument
from .flow import flow_widget
from .history import HistoryStrip
from .layers import LayersWidget
from .networks import NetworksBox

#: the editor's modes: the job each submits and what the mode list calls it
MODES = (("sample", "Generate"), ("img2img", "Image to image"), ("inpaint", "Inpaint"))
MAX_VARIATIONS = 64  # each variation becomes a layer


def _group(*widgets: QWidget) -> QWidget:
    """Tools that belong together, side by side (the flow wraps whole groups)."""
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    for w in widgets:
        lay.addWidget(w)
    return box


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
        self._count_before = 0
        self._submitted: Generation | None = None
        last = str(host.recall_value("mode", "sample"))
        last = last if last in EDIT_JOBS else "sample"
        # the shared settings start as the last-used mode left them; each job's own settings
        # as that job last ran
        self.gen = Form(Generation, self, host.recall(last, Generation))
        self.forms = {job: Form(cls, self, host.recall(job, cls))
                      for job, cls in EDIT_JOBS.items()}
        self.outpaint = Form(OutpaintParams, self, host.recall("outpaint", OutpaintParams))
        self._build()
        self.set_mode(last)
        self.networks.set_values(self.gen.p.lora, self.gen.p.embedding, self.gen.p.vae)
        self.gen.changed.connect(self._gen_changed)
        self.setAcceptDrops(True)
        self.canvas.image_dropped.connect(self.load_png)
        self.doc.undo_stack.canUndoChanged.connect(self.act_undo.setEnabled)
        self.doc.undo_stack.canRedoChanged.connect(self.act_redo.setEnabled)
        self.doc.layers_changed.connect(self._update_enabled)
        self._update_enabled()
        if self.gen.p.model is not None:  # the remembered model: adapt the controls to it
            self._inspect()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        """The canvas column (every tool in view, wrapping rather than hiding behind a »
        menu; the canvas, then history and layers) and the settings column (scrolling on its
        own, advanced settings folded) with Generate and Stop always in view below it."""
        stack = self.doc.undo_stack
        self.act_open = self._action("Open…", self.ask_open_image,
                                     QKeySequence.StandardKey.Open,
                                     "Open an image to edit (or drop one on the canvas)")
        self.act_export = self._action("Export PNG…", self.ask_export,
                                       QKeySequence.StandardKey.Save,
                                       "Save the visible picture as PNG with its generation "
                                       "parameters")
        self.act_read = self._action("Read parameters…", self.ask_read_parameters, None,
                                     "Load prompt, seed and settings from a PNG's parameters "
                                     "(A1111, ComfyUI, InvokeAI); or drop the PNG on the "
                                     "editor")
        self.act_undo = self._action("Undo", stack.undo, QKeySequence.StandardKey.Undo, "Undo")
        self.act_redo = self._action("Redo", stack.redo, QKeySequence.StandardKey.Redo, "Redo")
        self.act_undo.setEnabled(False)
        self.act_redo.setEnabled(False)
        stack.undoTextChanged.connect(lambda t: self.act_undo.setToolTip(f"Undo {t}"))
        stack.redoTextChanged.connect(lambda t: self.act_redo.setToolTip(f"Redo {t}"))
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, label, tip in (("brush", "Brush", "Paint the area to repaint (B)"),
                                 ("eraser", "Eraser", "Erase the mask (E)"),
                                 ("pan", "Pan", "Drag the view (or hold Space, or drag with "
                                  "the middle or right button)")):
            act = QAction(label, self, checkable=True, toolTip=tip)
            act.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
            group.addAction(act)
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
        self.act_clear = self._action("Clear mask", self.doc.clear_mask, None,
                                      "Remove the whole mask (undoable)")
        zoom_out = self._action("−", lambda: self.canvas.zoom_by(0.8),
                                QKeySequence.StandardKey.ZoomOut, "Zoom out (wheel, -)")
        zoom_in = self._action("+", lambda: self.canvas.zoom_by(1.25),
                               QKeySequence.StandardKey.ZoomIn, "Zoom in (wheel, +)")
        zoom_fit = self._action("Fit", self.canvas.fit, None, "Fit the picture in the view")
        self.zoom_label = QLabel("100%")
        self.zoom_label.setToolTip("Zoom")
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        size_label = QLabel("Size")
        size_label.setBuddy(self.size_slider)
        hard_label = QLabel("Hardness")
        hard_label.setBuddy(self.hard_slider)
        # groups that wrap as wholes (a tool never lands on a row away from its fellows)
        self.tools = flow_widget(
            _group(self._button(self.act_open), self._button(self.act_export),
                   self._button(self.act_read)),
            _group(self._button(self.act_undo), self._button(self.act_redo)),
            _group(self._button(zoom_out), self.zoom_label, self._button(zoom_in),
                   self._button(zoom_fit)),
            _group(*(self._button(a) for a in self.tool_actions.values())),
            _group(size_label, self.size_slider, hard_label, self.hard_slider,
                   self._button(self.act_clear)),
            spacing=10)

        self.history = HistoryStrip()
        self.history.restore.connect(self.restore)
        self.history.reuse.connect(self._reuse_history)
        hist_box = QGroupBox("History")
        hist_box.setToolTip("Every generated image. Click: restore its settings. Double-click: "
                            "add it to the canvas again.")
        QVBoxLayout(hist_box).addWidget(self.history)
        layers_box = QGroupBox("Layers")
        self.layers = LayersWidget(self.doc)
        QVBoxLayout(layers_box).addWidget(self.layers)
        layers_box.setMinimumWidth(200)
        layers_box.setMaximumWidth(260)
        bottom_widget = QWidget()
        bottom = QHBoxLayout(bottom_widget)
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addWidget(hist_box, 3)
        bottom.addWidget(layers_box, 2)
        vsplit = QSplitter(Qt.Orientation.Vertical)
        vsplit.addWidget(self.canvas)
        vsplit.addWidget(bottom_widget)
        vsplit.setStretchFactor(0, 1)
        vsplit.setStretchFactor(1, 0)
        vsplit.setCollapsible(0, False)
        vsplit.setSizes([2000, 1])  # the canvas takes all but the strip's own minimum
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.setSpacing(2)
        lv.addWidget(self.tools)
        lv.addWidget(vsplit, 1)

        settings = QWidget()
        sv = QVBoxLayout(settings)
        sv.setContentsMargins(0, 0, 4, 0)
        sv.addWidget(self._model_box())
        sv.addWidget(self._settings_box())
        self.show_advanced = advanced_toggle(self.advanced)
        self.show_advanced.setToolTip("The sampler, guidance and CLIP skip")
        sv.addWidget(self.show_advanced)
        sv.addWidget(self.advanced)
        self.networks = NetworksBox()
        sv.addWidget(self.networks)
        self.control = ControlBox()
        self.doc.layers_changed.connect(lambda: self.control.set_layers(self.doc.layers))
        sv.addWidget(self.control)
        sv.addWidget(self._outpaint_box())
        sv.addStretch(1)

        run_row = QHBoxLayout()
        self.generate_button = primary(QPushButton("Generate"))
        self.generate_button.setToolTip("Make images with the model and these settings; each "
                                        "becomes a layer (Ctrl+Enter)")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop generating (the canvas stays as it is)")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        run_row.addWidget(self.generate_button, 2)
        run_row.addWidget(self.cancel_button, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress.hide()  # shown while a generation runs
        self.status = QLabel("Open an image, or choose a model and Generate.")
        self.status.setWordWrap(True)
        self.result = ResultLine()
        side = QWidget()
        side.setMinimumWidth(280)
        side.setMaximumWidth(380)
        rv = QVBoxLayout(side)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(settings_scroll(settings), 1)
        rv.addLayout(run_row)
        rv.addWidget(self.progress)
        rv.addWidget(self.status)
        rv.addWidget(self.result)
        rv.addStretch(0)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(side)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setCollapsible(0, False)
        split.setCollapsible(1, False)
        split.setSizes([2000, 300])  # the canvas takes what the settings do not need
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(split)

    def _action(self, text: str, slot: Any, shortcut: Any, tip: str) -> QAction:
        """An action of the tab (its shortcut works wherever the focus is in the tab)."""
        act = QAction(text, self)
        act.setToolTip(tip)
        if shortcut is not None:
            act.setShortcut(shortcut)
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.triggered.connect(lambda _=False: slot())
        self.addAction(act)
        return act

    @staticmethod
    def _button(action: QAction) -> QToolButton:
        b = QToolButton()
        b.setDefaultAction(action)
        b.setAutoRaise(True)
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        b.setAccessibleName(action.text().rstrip("…") if action.text() not in "−+"
                            else action.toolTip())
        return b

    def _slider(self, lo: int, hi: int, value: int, tip: str) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(lo, hi)
        s.setValue(value)
        s.setFixedWidth(64)
        s.setToolTip(tip)
        s.setAccessibleName(tip.split(":")[0].split(" (")[0])
        return s

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        lay = QVBoxLayout(box)
        lay.addWidget(self.gen.widget("model"))
        self.model_label = QLabel("No model chosen.")
        self.model_label.setObjectName("caption")
        self.model_label.setWordWrap(True)
        lay.addWidget(self.model_label)
        return box

    def _settings_box(self) -> QGroupBox:
        box = QGroupBox("Generation")
        form = QFormLayout(box)
        self.mode_combo = QComboBox()
        for key, label in MODES:
            self.mode_combo.addItem(label, key)
        self.mode_combo.setToolTip("Generate a new picture, redraw the canvas (image to image) "
                                   "or repaint the masked area (inpaint)")
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        form.addRow("Mode:", self.mode_combo)
        self.gen.add_rows(form, "prompt", "negative_prompt", "steps", "seed", "n")
        prompt = self.gen.editor("prompt")
        prompt.setPlaceholderText("What to draw (text models)")  # type: ignore[attr-defined]
        prompt.setFixedHeight(54)
        self.gen.editor("negative_prompt").setPlaceholderText(  # type: ignore[attr-defined]
            "What to avoid")
        self.gen.editor("n").setMaximum(MAX_VARIATIONS)  # type: ignore[attr-defined]
        # each job's own settings, shown in its mode only
        self.job_rows: dict[str, list[QWidget]] = {}
        for job, names in (("img2img", ("strength",)), ("inpaint", ("strength", "mask_blur"))):
            self.forms[job].add_rows(form, *names)
            self.job_rows[job] = [self.forms[job].widget(n) for n in names]
        self._settings_form = form
        # what most pictures do not need to change: folded under "Show advanced settings"
        self.advanced = QGroupBox("Advanced")
        self.gen.add_rows(QFormLayout(self.advanced), "scheduler", "guidance", "clip_skip")
        return box

    def _outpaint_box(self) -> QGroupBox:
        box = QGroupBox("Outpaint: grow the canvas")
        lay = QGridLayout(box)
        for i, side in enumerate(("left", "right", "top", "bottom")):
            lay.addWidget(QLabel(self.outpaint.param(side).label), i // 2, (i % 2) * 2)
            lay.addWidget(self.outpaint.widget(side), i // 2, (i % 2) * 2 + 1)
        self.grow_button = QPushButton("Grow canvas")
        self.grow_button.setToolTip("Enlarge the canvas and mask the new area; then Inpaint")
        self.grow_button.clicked.connect(self.grow)
        lay.addWidget(self.grow_button, 2, 0, 1, 4)
        return box

    # -- state ----------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The job the current mode submits: ``sample``, ``img2img`` or ``inpaint``."""
        return str(self.mode_combo.currentData())

    def set_mode(self, mode: str) -> None:
        i = self.mode_combo.findData(mode)
        if i >= 0:
            self.mode_combo.setCurrentIndex(i)

    def _mode_changed(self, *_: object) -> None:
        self.host.remember_value("mode", self.mode)
        self._update_enabled()

    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.tool_actions[tool].setChecked(True)

    def _update_enabled(self, *_: object) -> None:
        has_doc = not self.doc.is_empty
        busy = self.handle is not None
        self.act_export.setEnabled(has_doc)
        self.act_clear.setEnabled(has_doc)
        self.grow_button.setEnabled(has_doc and not busy)
        shown = {w for w in self.job_rows.get(self.mode, [])}
        for rows in self.job_rows.values():
            for w in rows:
                self._settings_form.setRowVisible(w, w in shown)
        text = not self.model_info or self.model_info.get("kind") == "text"
        for name in ("prompt", "negative_prompt", "guidance"):
            self.gen.editor(name).setEnabled(text)
        self.generate_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def set_status(self, text: str, error: bool = False) -> None:
        """The status line under Generate (a problem in the theme's error colour)."""
        self.status.setText(("⚠ " if error else "") + text)
        self.status.setObjectName("error" if error else "")
        style = self.status.style()
        style.unpolish(self.status)
        style.polish(self.status)
        if error:
            self.result.clear()
        self.status_changed.emit(text, error)

    # -- files ----------------------------------------------------------------------------------
    def ask_open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(self.host.workspace),
                                              "Images (*.png *.jpg *.jpeg *.webp *.bmp)")
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        from plugins.diffusion.engine.imageio import read_image
        from plugins.diffusion.engine.pnginfo import read_generation
        from studio.errors import UserError

        try:
            rgb = read_image(path)
        except UserError as exc:
            self.set_status(str(exc), error=True)
            return False
        params = None
        if str(path).lower().endswith(".png"):
            try:
                params = read_generation(path).to_json()
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
        from plugins.common import provenance

        text = {}
        made = None
        for layer in reversed(self.doc.layers):
            if layer.visible and layer.params:
                made = GenerationParams.from_json(layer.params)
                text[PNG_KEY] = format_parameters(made)
                break
        # the picture mixes the user's layers with generated ones: named as such, with the
        # topmost generated layer's model (by name) and seed
        prov = provenance.make(
            "diffusion", "edit", model=made.model if made else None,
            model_id=made.model_hash if made else "", seed=made.seed if made else None,
            params={"mode": made.mode, "steps": made.steps, "scheduler": made.scheduler,
                    "guidance": made.guidance} if made else {},
            source_type="compositeWithTrainedAlgorithmicMedia" if made else "")
        try:
            out = provenance.stamp(save_png(self.doc.flatten(), path, text), prov)
        except (OSError, ValueError) as exc:
            self.set_status(f"Could not write {path}: {exc}", error=True)
            return None
        self.set_status(f"Exported {out.name}" + (" with its parameters." if text else "."))
        self.result.show_result("Saved", out)
        return out

    def ask_read_parameters(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Read parameters from PNG",
                                              str(self.host.workspace), "PNG (*.png)")
        if path:
            self.read_parameters(path)

    def read_parameters(self, path: str | Path) -> bool:
        """Put the settings a PNG carries (A1111's ``parameters`` text, ComfyUI's graph or
        InvokeAI's metadata) into the forms; the model and VAE they name are chosen from the
        model library when it has them."""
        from plugins.diffusion.engine.pnginfo import read_generation

        try:
            found = read_generation(path)
        except UserError as exc:
            self.set_status(str(exc), error=True)
            return False
        job = job_of_mode(found.mode)
        current = dataclasses.replace(self.forms[job].p, **self.gen.p.shared())
        settings = with_png_parameters(current, found)
        notes = []
        model = self._library_match(("diffusers-pipeline", "sd-checkpoint"), found.model)
        if model is not None:
            settings = dataclasses.replace(settings, model=model)
        elif found.model:
            notes.append(f"its model '{found.model}' is not in your model library")
        vae_name = found.extra.get("VAE", "")
        vae = self._library_match(("vae",), vae_name) if vae_name else None
        settings = dataclasses.replace(settings, vae=vae, lora=[], embedding=[])
        if vae_name and vae is None:
            notes.append(f"its VAE '{vae_name}' is not in your model library")
        missing = self._missing_loras(found.prompt)
        if missing:
            notes.append(f"LoRA not in your model library: {', '.join(missing)}")
        self.restore(settings)
        text = f"Settings read from {Path(path).name}"
        self.set_status(text + (f" ({'; '.join(notes)})." if notes else "."), error=False)
        return True

    def _library(self) -> Any:
        from studio import models

        return models.library(self.host.settings)

    def _library_match(self, kinds: tuple[str, ...], name: str) -> Path | None:
        """The library's model of these kinds named ``name`` (file name with or without its
        extension, or folder name)."""
        want = Path(name.strip()).name.lower() if name else ""
        if not want:
            return None
        for refresh in (False, True):  # a file added a moment ago: look again once
            try:
                entries = self._library().scan(kinds, refresh=refresh)
            except OSError:
                return None
            for e in entries:
                if want in (e.name.lower(), e.path.name.lower(), e.path.stem.lower()):
                    return Path(e.path)
        return None

    def _missing_loras(self, prompt: str) -> list[str]:
        from plugins.diffusion.engine.prompts import extract_networks

        try:
            _text, tags = extract_networks(prompt)
        except ValueError:
            return []
        return [t.name for t in tags
                if t.kind == "lora" and self._library_match(("lora",), t.name) is None]

    # -- drag and drop --------------------------------------------------------------------------
    def dragEnterEvent(self, event: Any) -> None:
        if self._dropped_file(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        path = self._dropped_file(event)
        if path is not None:
            event.acceptProposedAction()
            self.load_png(path)

    @staticmethod
    def _dropped_file(event: Any) -> Path | None:
        return CanvasView.dropped_image(event)

    def load_png(self, path: str | Path) -> bool:
        """A dropped picture: opened on the canvas, and when it carries generation settings
        (A1111, ComfyUI, InvokeAI), those are loaded too, ready to make it again."""
        if not self.open_image(path):
            return False
        from plugins.diffusion.engine.pnginfo import has_generation

        if str(path).lower().endswith(".png") and has_generation(path):
            return self.read_parameters(path)
        return True

    def restore(self, settings: Generation) -> None:
        """Put a generation's settings (its job's params object) back into the forms and
        switch to its mode (the history strip's click, Read parameters)."""
        job = next((j for j, cls in EDIT_JOBS.items() if type(settings) is cls), None)
        model = self.gen.p.model
        self.gen.set(settings)
        self.networks.set_values(settings.lora, settings.embedding, settings.vae)
        if job is not None:
            self.forms[job].set(settings)
            self.set_mode(job)
        if self.gen.p.model != model:
            self._inspect()

    # -- model ----------------------------------------------------------------------------------
    def set_model(self, path: str | Path) -> None:
        """Choose ``path`` as the model (the Train page's "Use in editor")."""
        self.gen.set_value("model", Path(path) if str(path).strip() else None)
        self._inspect()

    def _gen_changed(self, name: str) -> None:
        if name == "model":
            self._inspect()

    def _inspect(self) -> None:
        """Describe the model (a quick ``info`` job) so the page can adapt its controls."""
        path = self.gen.p.model
        self.model_info = None
        self._info_handle = None
        if path is None:
            self.model_label.setText("No model chosen.")
            self._update_enabled()
            return
        self.model_label.setText("Inspecting…")
        handle = self.host.submit("info", InfoParams(model=path), show_plots=False)
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
    def _checked(self, form: Form, **panel_fields: Any) -> Any | None:
        """``form``'s checked params with the fields the panel supplies, or None after saying
        what is wrong."""
        try:
            return form.value(**panel_fields)
        except ParamError as exc:
            self.set_status(exc.gui, error=True)
        except UserError as exc:
            self.set_status(str(exc), error=True)
        return None

    def params(self) -> Generation | None:
        """The current mode's job params: the shared settings, the mode's own, and the canvas
        (the flattened visible layers and the mask, as arrays). None after saying what is
        missing."""
        if self.gen.p.model is None:
            self.set_status("Choose a model first (a diffusers folder, a training run or a "
                            ".safetensors file).", error=True)
            return None
        gen = self._checked(self.gen, **self.networks.values(), **self.control.values(self.doc))
        if gen is None:
            return None
        mode, shared = self.mode, gen.shared()
        if mode == "sample":
            text = (self.model_info or {}).get("kind") == "text"
            w, h = (self.doc.width, self.doc.height) if text and not self.doc.is_empty \
                else (0, 0)
            return self._checked(self.forms["sample"], **shared, width=w, height=h,
                                 **self.control.hires_values())
        if self.doc.is_empty:
            self.set_status("Open an image first (or Generate one).", error=True)
            return None
        if mode == "img2img":
            return self._checked(self.forms["img2img"], **shared, image=self.doc.flatten())
        if not self.doc.has_mask():
            self.set_status("Paint the area to repaint with the brush first.", error=True)
            return None
        return self._checked(self.forms["inpaint"], **shared, image=self.doc.flatten(),
                             mask=self.doc.mask_array())

    def generate(self) -> Any:
        """Submit the job for the current mode; returns its handle (or None with a message)."""
        if self.handle is not None:
            return None
        p = self.params()
        if p is None:
            return None
        job = self.mode
        self._submitted = p
        self.handle = self.host.submit(job, p, title=f"Diffusion: {job}", show_plots=False)
        self.handle.preview.connect(self._on_preview)
        self.handle.progress.connect(self._on_progress)
        self.handle.finished.connect(self._on_finished)
        self.progress.setValue(0)
        self.progress.show()
        self._count_before = self._result_count
        self.result.clear()
        self.set_status(f"{dict(MODES).get(job, job)}: queued…")
        self._update_enabled()
        return self.handle

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.set_status("Stopping…")

    def grow(self) -> None:
        """Grow the canvas by the outpaint margins and mask the new area (then Inpaint paints
        it: what the ``outpaint`` job does in one go)."""
        p = self.outpaint.p
        if not (p.left or p.top or p.right or p.bottom):
            self.set_status("Set how many pixels to add on at least one side.", error=True)
            return
        try:
            self.doc.grow(p.left, p.top, p.right, p.bottom, p.overlap)
        except (UserError, ValueError) as exc:  # too large, or no image yet: say so
            self.set_status(str(exc), error=True)
            return
        self.host.remember("outpaint", p)
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
        submitted = self._submitted
        first_of_batch = submitted is not None and params.get("seed") == submitted.seed
        self.doc.add_result(img, name, params, visible=first_of_batch or self.doc.is_empty)
        settings = None if submitted is None else dataclasses.replace(
            submitted, seed=int(params.get("seed", submitted.seed)))
        self.history.add(img, params, settings)

    def _reuse_history(self, index: int) -> None:
        img, params, _settings = self.history.entries[index]
        self._result_count += 1
        self.doc.add_result(img, f"{params.get('mode')} (seed {params.get('seed')})", params)

    def _on_progress(self, data: dict[str, Any]) -> None:
        """Loading the model, then the denoising steps over every image asked for, in words
        (the job's own message is "batch 1/2, step 3/25")."""
        total, done = data.get("total"), data.get("done") or 0
        msg = str(data.get("message") or "")
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(1.0, done / total)))
            self.status.setText(f"Generating: step {int(done):,} of {int(total):,} · "
                                f"{fmt.rate(data.get('rate'), 'step')}")
        elif msg.startswith("loading"):
            self.progress.setRange(0, 0)  # busy: no count to show yet
            self.status.setText("Loading the model…")

    def _on_finished(self, rec: Any) -> None:
        self.handle = None
        self.canvas.hide_preview()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        if rec.state == "done":
            n = self._result_count - self._count_before
            self.set_status(f"Done: {n} image{'s' if n != 1 else ''} added as "
                            f"layer{'s' if n != 1 else ''}." if n else "Done.")
            if rec.result:
                self.result.show_result("Saved", Path(str(rec.result)))
        elif rec.state == "cancelled":
            self.set_status("Stopped; the canvas is as it was.")
        else:
            self.set_status(rec.error or "failed", error=True)
        self._update_enabled()

    def shutdown(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
