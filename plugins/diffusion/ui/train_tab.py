"""The training page: choose images and a preset, watch the loss and the sample grid, resume.

Training is the ``train`` job (compute lane); this page only submits it, plots its ``loss``
metrics (curves created once, redrawn by a timer) and shows its preview grids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import qimages


class TrainTab(QWidget):
    """``use_model(path)`` asks the editor to load a trained model."""

    use_model = Signal(str)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.handle: Any = None
        self.model_dir: str | None = None
        self._steps: list[float] = []
        self._loss: list[float] = []
        self._smooth: list[float] = []
        self._dirty = False
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()

    def _build(self) -> None:
        form_box = QGroupBox("Train a diffusion model (DDPM)")
        form = QFormLayout(form_box)
        data_row = QHBoxLayout()
        self.data_edit = QLineEdit("digits")
        self.data_edit.setToolTip("A folder of images (sub-folders are classes) or 'digits' "
                                  "for the built-in handwritten digits")
        browse = QToolButton(text="…")
        browse.clicked.connect(self._browse_data)
        data_row.addWidget(self.data_edit, 1)
        data_row.addWidget(browse)
        form.addRow("Images:", data_row)
        self.size_combo = QComboBox()
        for s in (32, 64):
            self.size_combo.addItem(f"{s} px", s)
        form.addRow("Size:", self.size_combo)
        self.preset_combo = QComboBox()
        for key, label in (("small", "small (CPU)"), ("base", "base (GPU)"),
                           ("tiny", "tiny (smoke test)")):
            self.preset_combo.addItem(label, key)
        form.addRow("Model:", self.preset_combo)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setValue(3000)
        form.addRow("Steps:", self.steps_spin)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0, 100_000)
        self.minutes_spin.setDecimals(1)
        self.minutes_spin.setSpecialValueText("no limit")
        self.minutes_spin.setToolTip("Stop after this many minutes (the schedule adapts)")
        form.addRow("Time budget (min):", self.minutes_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(32)
        form.addRow("Batch size:", self.batch_spin)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-5, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(2e-3)
        form.addRow("Learning rate:", self.lr_spin)
        self.flip_check = QCheckBox("Mirror images (not for digits or text)")
        form.addRow("", self.flip_check)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("new run folder under the workspace")
        out_browse = QToolButton(text="…")
        out_browse.clicked.connect(self._browse_out)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(out_browse)
        form.addRow("Run folder:", out_row)
        self.resume_check = QCheckBox("Resume the run in this folder")
        form.addRow("", self.resume_check)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stops after the current step; a checkpoint is saved")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use in editor")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(lambda: self.model_dir and self.use_model.emit(
            self.model_dir))
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.use_button)
        form.addRow(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        form.addRow(self.progress)
        self.status = QLabel("The built-in digits train to readable samples in about 15 "
                             "minutes on a laptop CPU.")
        self.status.setWordWrap(True)
        form.addRow(self.status)

        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss (log scale)")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setLogMode(y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setClipToView(True)
        self.plot.setDownsampling(mode="peak")
        self.curve_loss = self.plot.plot([], [], pen=pg.mkPen((120, 160, 220, 110)), name="loss")
        self.curve_smooth = self.plot.plot([], [], pen=pg.mkPen((40, 90, 200), width=2),
                                           name="smoothed")
        self.plot.setMinimumSize(200, 200)
        self.grid_label = QLabel("Samples appear here while training.")
        self.grid_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid_label.setMinimumSize(160, 160)
        self.grid_label.setObjectName("placeholder")

        right = QVBoxLayout()
        right.addWidget(self.plot, 1)
        right.addWidget(self.grid_label, 1)
        outer = QHBoxLayout(self)
        left = QVBoxLayout()
        left.addWidget(form_box)
        left.addStretch(1)
        outer.addLayout(left, 1)
        outer.addLayout(right, 2)

    # -- actions --------------------------------------------------------------------------------
    def _browse_data(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image folder", str(self.host.workspace))
        if path:
            self.data_edit.setText(path)

    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder", str(self.host.runs_dir()))
        if path:
            self.out_edit.setText(path)
            self.resume_check.setChecked((Path(path) / "checkpoints").is_dir())

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "data": self.data_edit.text().strip() or "digits",
            "size": self.size_combo.currentData(),
            "preset": self.preset_combo.currentData(),
            "steps": self.steps_spin.value(),
            "batch_size": self.batch_spin.value(),
            "lr": self.lr_spin.value(),
            "minutes": self.minutes_spin.value(),
            "flip": self.flip_check.isChecked(),
            "resume": self.resume_check.isChecked(),
        }
        if self.out_edit.text().strip():
            p["out"] = self.out_edit.text().strip()
        return p

    def start(self) -> Any:
        if self.handle is not None:
            return None
        self._steps, self._loss, self._smooth = [], [], []
        self._dirty = True
        self.handle = self.host.submit("train", self.params(), title="Train diffusion model")
        self.handle.metric.connect(self._on_metric)
        self.handle.preview.connect(self._on_preview)
        self.handle.progress.connect(self._on_progress)
        self.handle.finished.connect(self._on_finished)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting (reading images)…")
        return self.handle

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.status.setText("Stopping after this step; saving a checkpoint…")

    # -- events ---------------------------------------------------------------------------------
    def _on_metric(self, name: str, step: float, value: float) -> None:
        if name == "loss/train":
            self._steps.append(step)
            self._loss.append(value)
        elif name == "loss/smoothed":
            self._smooth.append(value)
        self._dirty = True

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        n = min(len(self._steps), len(self._smooth))
        steps = np.asarray(self._steps, dtype=float)
        self.curve_loss.setData(steps, np.asarray(self._loss, dtype=float))
        self.curve_smooth.setData(steps[:n], np.asarray(self._smooth[:n], dtype=float))

    def _on_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind != "image" or not isinstance(payload, np.ndarray):
            return
        pix = QPixmap.fromImage(qimages.from_array(payload))
        side = max(128, min(self.grid_label.width(), self.grid_label.height()))
        self.grid_label.setPixmap(pix.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.FastTransformation))
        self.grid_label.setToolTip(f"EMA samples at step {data.get('step')}")

    def _on_progress(self, data: dict[str, Any]) -> None:
        total = data.get("total")
        if total:
            self.progress.setValue(int(1000 * data["done"] / total))
        if data.get("message"):
            self.status.setText(str(data["message"]))

    def _on_finished(self, rec: Any) -> None:
        self.handle = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._redraw()
        run = rec.run_dir
        if run is not None:
            self.out_edit.setText(str(run))
            self.resume_check.setChecked(True)
        model = Path(run) / "model" if run is not None else None
        if model is not None and (model / "model_index.json").exists():
            self.model_dir = str(model)
            self.use_button.setEnabled(True)
        if rec.state == "done":
            self.status.setText(f"Done. Model saved in {rec.result}.")
        elif rec.state == "cancelled":
            self.status.setText("Stopped. Progress is kept: Start again with Resume to "
                                "continue.")
        else:
            self.status.setText(f"⚠ {rec.error}")

    def shutdown(self) -> None:
        self._timer.stop()
