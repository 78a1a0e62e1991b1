"""The training page: choose images and a preset, watch the loss and the sample grid, resume.

Training is the ``train`` job (compute lane); this page only binds its params to a form,
submits it, plots its loss metrics (curves created once, redrawn by a timer) and shows its
preview grids. Reopening a training run puts its settings, curves and last grid back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.diffusion.params import TrainParams
from studio.widgets.form import Form

from . import qimages

#: the curves this page draws: metric name -> (legend, pen)
CURVES = {"loss/train": ("loss", pg.mkPen((120, 160, 220, 110))),
          "loss/smoothed": ("smoothed", pg.mkPen((40, 90, 200))),
          "loss/held_out": ("held out", pg.mkPen((220, 120, 40)))}


class TrainTab(QWidget):
    """``use_model(path)`` asks the editor to load a trained model."""

    use_model = Signal(str)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.handle: Any = None
        self.model_dir: str | None = None
        self.form = Form(TrainParams, self, host.recall("train", TrainParams))
        self.points: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in CURVES}
        self._dirty = False
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        host.run_reopened.connect(self._reopened)

    def _build(self) -> None:
        form_box = QGroupBox("Train a diffusion model (DDPM)")
        form = QFormLayout(form_box)
        self.form.add_rows(form, "data", "size", "preset", "steps", "minutes", "batch_size", "lr",
                           "holdout", "flip")
        self.more_button = QToolButton()
        self.more_button.setText("More settings ▸")
        self.more_button.setCheckable(True)
        self.more_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.more_button.setAutoRaise(True)
        self.more_button.toggled.connect(self._show_more)
        form.addRow(self.more_button)
        self.advanced = ("channels", "prediction", "ema_decay", "sample_every",
                         "checkpoint_every", "seed")
        self.form.add_rows(form, *self.advanced)
        self._layout = form
        self._show_more(False)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("a new run folder in the workspace")
        self.out_edit.setToolTip("Where the run is saved: its model, samples and checkpoints")
        out_browse = QToolButton()
        out_browse.setText("…")
        out_browse.setToolTip("Choose the run folder")
        out_browse.clicked.connect(self._browse_out)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(out_browse)
        form.addRow("Run folder:", out_row)
        self.form.add_rows(form, "resume")
        row = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stops after the current step; a checkpoint is saved")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use in editor")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
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
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setClipToView(True)
        self.plot.setDownsampling(mode="peak")
        self.curves = {name: self.plot.plot([], [], pen=pen, name=legend)
                       for name, (legend, pen) in CURVES.items()}
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

    def _use(self) -> None:
        if self.model_dir:
            self.use_model.emit(self.model_dir)

    def _show_more(self, shown: bool) -> None:
        for name in self.advanced:
            self._layout.setRowVisible(self.form.widget(name), shown)
        self.more_button.setText("More settings ▾" if shown else "More settings ▸")

    # -- actions --------------------------------------------------------------------------------
    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder", str(self.host.runs_dir()))
        if path:
            self.out_edit.setText(path)
            self.form.set_value("resume", (Path(path) / "checkpoints").is_dir())

    def start(self) -> Any:
        """Submit the training job with the form's settings; returns its handle (or None with
        the problem shown in the status line)."""
        if self.handle is not None:
            return None
        p = self.form.checked(self.status)
        if p is None:
            return None
        out = self.out_edit.text().strip() or None
        self._clear_curves()
        self.handle = self.host.submit("train", p, title="Train diffusion model", out=out)
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

    # -- curves ---------------------------------------------------------------------------------
    def _clear_curves(self) -> None:
        self.points = {k: ([], []) for k in CURVES}
        self._dirty = True

    def _on_metric(self, name: str, step: float, value: float) -> None:
        if name in self.points:
            steps, values = self.points[name]
            steps.append(step)
            values.append(value)
            self._dirty = True

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for name, (steps, values) in self.points.items():
            self.curves[name].setData(np.asarray(steps, dtype=float),
                                      np.asarray(values, dtype=float))

    # -- events ---------------------------------------------------------------------------------
    def _show_grid(self, image: np.ndarray, tip: str) -> None:
        pix = QPixmap.fromImage(qimages.from_array(image))
        side = max(128, min(self.grid_label.width(), self.grid_label.height()))
        self.grid_label.setPixmap(pix.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.FastTransformation))
        self.grid_label.setToolTip(tip)

    def _on_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind == "image" and isinstance(payload, np.ndarray):
            self._show_grid(payload, f"Samples at step {data.get('step')}")

    def _on_progress(self, data: dict[str, Any]) -> None:
        total = data.get("total")
        if total:
            self.progress.setValue(int(1000 * data["done"] / total))
        if data.get("message"):
            self.status.setText(str(data["message"]))

    def _show_run(self, run: Path) -> None:
        """The run folder in the form (Resume ticked) and its model ready for the editor."""
        self.out_edit.setText(str(run))
        self.form.set_value("resume", True)
        model = run / "model"
        if (model / "model_index.json").exists():
            self.model_dir = str(model)
            self.use_button.setEnabled(True)

    def _on_finished(self, rec: Any) -> None:
        self.handle = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._redraw()
        if rec.run_dir is not None:
            self._show_run(Path(rec.run_dir))
        if rec.state == "done":
            where = f" in the run {Path(rec.run_dir).name}" if rec.run_dir else ""
            self.status.setText(f"Done. The model is saved{where}: Use in editor to try it.")
        elif rec.state == "cancelled":
            self.status.setText("Stopped. Progress is kept: Start again with Resume to "
                                "continue.")
        else:
            self.status.setText(f"⚠ {rec.error}")

    def _reopened(self, job: str, params: Any, run_dir: Path) -> None:
        """A training run was reopened: its settings, curves and last sample grid."""
        if job != "train" or self.handle is not None:
            return
        from studio.runs import read_metrics

        self.form.set(params)
        run = Path(run_dir)
        self._show_run(run)
        self._clear_curves()
        for name, (steps, values) in read_metrics(run).items():
            if name in self.points:
                self.points[name] = (list(steps), list(values))
        self._redraw()
        grids = sorted((run / "samples").glob("step_*.png"))
        if grids:
            from PIL import Image

            with Image.open(grids[-1]) as im:
                step = grids[-1].stem.removeprefix("step_").lstrip("0") or "0"
                self._show_grid(np.asarray(im.convert("RGB")), f"Samples at step {step}")
        self.status.setText(f"Reopened {run.name}: Start continues it (Resume is ticked).")

    def shutdown(self) -> None:
        self._timer.stop()
