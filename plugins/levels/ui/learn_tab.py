"""The Learn tab: train a GAN or VAE on level segments (``TrainParams``) and sample levels from a
trained model (``SampleParams``); the samples open in the editor.

Both forms are ``studio.widgets.form.Form``s; the model field is the studio's model picker
(level models from every run). Reopening a training run puts its settings back in the form
and makes its folder the one Resume continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.levels.engine.batch import LevelBatch
from plugins.levels.engine.level import Level
from plugins.levels.params import SampleParams, TrainParams
from studio.host import PanelHost
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.modelpicker import ModelPicker

from .document import LevelDocument
from .view import qimage_rgb

CHECKPOINT = Path("checkpoints") / "last.safetensors"  # where a train run keeps its state


class LearnTab(QWidget):
    def __init__(self, host: PanelHost, document: LevelDocument,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host, self.document = host, document
        self.train_form = Form(TrainParams, self, host.recall("train", TrainParams))
        self.sample_form = Form(SampleParams, self, host.recall("sample", SampleParams))
        self.run_folder: Path | None = None  # the run Train writes to (None: a new folder)
        self._train_handle: JobHandle | None = None
        self.samples: list[Level] = []
        self._batch: LevelBatch | None = None

        lay = QVBoxLayout(self)
        tbox = QGroupBox("Train a model on level segments")
        tf = QFormLayout(tbox)
        tf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow column wraps
        self.train_form.add_rows(tf, "data", "model", "steps", "width", "holdout")
        self.run_label = QLabel()
        # a long folder name is cut, not allowed to widen the column (the tooltip has it all)
        self.run_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.run_label.setMinimumWidth(60)
        choose = QToolButton()
        choose.setText("Choose…")
        choose.setToolTip("Train into (or resume) a run folder of your choice")
        choose.clicked.connect(self._ask_run_folder)
        fresh = QToolButton()
        fresh.setText("New")
        fresh.setToolTip("Train into a new folder in the workspace")
        fresh.clicked.connect(lambda: self.set_run_folder(None))
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_label, 1)
        run_row.addWidget(choose)
        run_row.addWidget(fresh)
        tf.addRow("Run folder:", run_row)
        self.train_form.add_rows(tf, "resume")
        trow = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.train)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after this step; the checkpoint is kept (Resume)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        trow.addWidget(self.train_button)
        trow.addWidget(self.stop_button)
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
        sf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.sample_form.add_rows(sf, "model", "n", "segments", "seed", "search", "enemies",
                                  "gaps")
        picker = self.sample_form.editor("model")
        if isinstance(picker, ModelPicker):
            picker.combo.setMinimumContentsLength(10)  # the column stays narrow; names elide
        self.sample_button = QPushButton("Sample")
        self.sample_button.clicked.connect(self.sample)
        sf.addRow(self.sample_button)
        self.sample_list = QListWidget()
        self.sample_list.setMinimumHeight(120)
        self.sample_list.setAccessibleName("Sampled levels")
        self.sample_list.currentRowChanged.connect(self._pick_sample)
        sf.addRow(self.sample_list)
        self.sample_status = QLabel("")
        self.sample_status.setWordWrap(True)
        sf.addRow(self.sample_status)
        lay.addWidget(sbox)
        lay.addStretch(1)
        self.set_run_folder(None)
        host.run_reopened.connect(self._reopened)

    # -- training -------------------------------------------------------------------------------
    def set_run_folder(self, folder: Path | None) -> None:
        self.run_folder = Path(folder) if folder is not None else None
        if self.run_folder is None:
            self.run_label.setText("a new folder")
            self.run_label.setToolTip("a new folder in the workspace's runs")
        else:
            self.run_label.setText(self.run_folder.name)
            self.run_label.setToolTip(str(self.run_folder))

    def _ask_run_folder(self) -> None:
        start = str(self.run_folder or self.host.runs_dir())
        path = QFileDialog.getExistingDirectory(self, "Run folder", start)
        if path:
            self.set_run_folder(Path(path))

    def _reopened(self, job: str, params: Any, run_dir: Any) -> None:
        """The user reopened one of our runs: its settings, and its folder to resume."""
        if job == "train":
            self.train_form.set(params)
            self.set_run_folder(Path(run_dir))

    def train(self) -> JobHandle | None:
        p = self.train_form.checked(self.train_status)
        if p is None:
            return None
        folder = self.run_folder
        if p.resume and folder is None:
            self.train_status.setText("⚠ choose the run folder to resume")
            return None
        if not p.resume and folder is not None and (folder / CHECKPOINT).exists():
            folder = None  # that folder holds a finished run: train a new one beside it
        handle = self.host.submit("train", p, title=f"Train {p.model.upper()}", out=folder)
        self._train_handle = handle
        self.train_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.train_status.setText("training…")
        handle.progress.connect(lambda d: self.train_status.setText(d.get("message") or ""))
        handle.preview.connect(self._train_preview)
        handle.finished.connect(self._trained)
        return handle

    def stop(self) -> None:
        if self._train_handle is not None:
            self._train_handle.cancel()

    def _train_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind != "image":
            return
        pix = QPixmap.fromImage(qimage_rgb(payload))
        width = max(200, self.width() - 40)
        self.train_preview.setPixmap(pix.scaledToWidth(width,
                                                       Qt.TransformationMode.FastTransformation))
        self.train_preview.setToolTip(f"samples at step {data.get('step')}")

    def _trained(self, rec: Any) -> None:
        self.train_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if rec.run_dir is not None:
            self.set_run_folder(Path(rec.run_dir))
        if rec.state == "done":
            self.sample_form.set_value("model", Path(rec.result))
            self.train_status.setText(f"done: the model is in {Path(rec.result).name}")
        elif rec.state == "cancelled":
            self.train_status.setText("stopped; the checkpoint is kept (tick Resume to continue)")
        else:
            self.train_status.setText(f"⚠ {rec.error}")

    # -- sampling -------------------------------------------------------------------------------
    def sample(self) -> JobHandle | None:
        p = self.sample_form.checked(self.sample_status, save=False)
        if p is None:
            return None
        handle = self.host.submit("sample", p, title="Sample levels", show_plots=False)
        self.sample_status.setText("sampling…")
        self.sample_list.clear()
        self.samples, self._batch = [], None
        handle.preview.connect(self._sample_preview)
        handle.finished.connect(self._sampled)
        return handle

    def _sample_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind != "level":
            return
        res = data.get("check")
        self.samples.append(payload)
        mark = "✓" if res is not None and res.playable else "✗"
        self.sample_list.addItem(f"{mark} {payload.name} ({payload.width}×{payload.height})")

    def _sampled(self, rec: Any) -> None:
        if rec.state != "done":
            if rec.state == "failed":
                self.sample_status.setText(f"⚠ {rec.error}")
            return
        batch: LevelBatch = rec.result
        self._batch = batch
        # the preview stream may have skipped items: rebuild the list from the result
        self.samples = list(batch.levels)
        self.sample_list.blockSignals(True)
        self.sample_list.clear()
        for i, lv in enumerate(batch.levels):
            rep = batch.report(i)
            mark = "✓" if rep is not None and rep.playable else "✗"
            self.sample_list.addItem(f"{mark} {lv.name} ({lv.width}×{lv.height})")
        self.sample_list.blockSignals(False)
        s = batch.summary
        self.sample_status.setText(f"{s.get('playable_fraction', 0):.0%} playable, variety "
                                   f"{s.get('diversity', 0):.3f}")
        if self.samples:
            self.sample_list.setCurrentRow(0)

    def _pick_sample(self, row: int) -> None:
        if 0 <= row < len(self.samples):
            lv = self.samples[row]
            self.document.set_level(lv, f"Sample {lv.name}", clear_pins=True)
            if self._batch is not None:
                self.document.set_report(self._batch.report(row))
