"""The Learn tab: train a GAN or VAE on level segments (``TrainParams``) and sample levels from a
trained model (``SampleParams``); the samples open in the editor.

Both forms are ``studio.widgets.form.Form``s; the model field is the studio's model picker
(level models from every run). Reopening a training run puts its settings back in the form
and makes its folder the one Resume continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
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
from studio.widgets.panelparts import ResultLine, primary
from studio.widgets.settingsarea import FitPicture, advanced_toggle, settings_scroll

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

        # two pages, one job each: train a model, or generate levels from one
        self.train_page_button = QPushButton("Train a model")
        self.sample_page_button = QPushButton("Generate from a model")
        self.page_buttons = QButtonGroup(self)
        switch = QHBoxLayout()
        switch.setSpacing(0)
        for i, b in enumerate((self.train_page_button, self.sample_page_button)):
            b.setCheckable(True)
            self.page_buttons.addButton(b, i)
            switch.addWidget(b)
        self.pages = QStackedWidget()
        self.page_buttons.idClicked.connect(self.pages.setCurrentIndex)
        self.train_page_button.setChecked(True)

        # -- train: data, model and steps on view; the rest folded
        tsettings = QWidget()
        tl = QVBoxLayout(tsettings)
        tl.setContentsMargins(0, 0, 4, 0)
        tf = QFormLayout()
        tf.setContentsMargins(0, 0, 0, 0)
        tf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow column wraps
        self.train_form.add_rows(tf, "data", "model", "steps")
        tl.addLayout(tf)
        self.train_advanced = QWidget()
        af = QFormLayout(self.train_advanced)
        af.setContentsMargins(0, 0, 0, 0)
        af.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.train_form.add_rows(af, "width", "holdout")
        self.run_label = QLabel()
        # a long folder name is cut, not allowed to widen the column (the tooltip has it all)
        self.run_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.run_label.setMinimumWidth(60)
        choose = QToolButton()
        choose.setText("Choose…")
        choose.setAccessibleName("Choose the run folder")
        choose.setToolTip("Train into (or resume) a run folder of your choice")
        choose.clicked.connect(self._ask_run_folder)
        fresh = QToolButton()
        fresh.setText("New")
        fresh.setAccessibleName("Train into a new run folder")
        fresh.setToolTip("Train into a new folder in the workspace")
        fresh.clicked.connect(lambda: self.set_run_folder(None))
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_label, 1)
        run_row.addWidget(choose)
        run_row.addWidget(fresh)
        af.addRow("Run folder:", run_row)
        self.train_show_advanced = advanced_toggle(self.train_advanced)
        tl.addWidget(self.train_show_advanced)
        tl.addWidget(self.train_advanced)
        tl.addStretch(1)
        trow = QHBoxLayout()
        self.train_button = primary(QPushButton("Train"))
        self.train_button.setToolTip("Train a new model on these levels (Ctrl+Enter)")
        self.train_button.clicked.connect(lambda: self.train())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after this step; the checkpoint is kept (Resume "
                                    "training goes on from it)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume training")
        self.resume_button.setToolTip("Train the run folder's model further, from its last "
                                      "checkpoint")
        self.resume_button.clicked.connect(lambda: self.train(resume=True))
        for b in (self.train_button, self.stop_button, self.resume_button):
            trow.addWidget(b)
        self.train_status = QLabel("Loss and quality curves appear in the Live plots dock.")
        self.train_status.setWordWrap(True)
        self.train_preview = FitPicture()
        self.train_preview.setMinimumHeight(40)
        self.train_result = ResultLine()
        tpage = QWidget()
        tp = QVBoxLayout(tpage)
        tp.setContentsMargins(0, 0, 0, 0)
        tp.addWidget(settings_scroll(tsettings), 2)
        tp.addLayout(trow)
        tp.addWidget(self.train_status)
        tp.addWidget(self.train_preview, 1)
        tp.addWidget(self.train_result)
        self.pages.addWidget(tpage)

        # -- generate from a model: the model, how many, the seed; the rest folded
        ssettings = QWidget()
        ss = QVBoxLayout(ssettings)
        ss.setContentsMargins(0, 0, 4, 0)
        sf = QFormLayout()
        sf.setContentsMargins(0, 0, 0, 0)
        sf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.sample_form.add_rows(sf, "model", "n", "seed")
        ss.addLayout(sf)
        self.sample_advanced = QWidget()
        saf = QFormLayout(self.sample_advanced)
        saf.setContentsMargins(0, 0, 0, 0)
        saf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.sample_form.add_rows(saf, "segments", "search", "enemies", "gaps")
        ss.addWidget(advanced_toggle(self.sample_advanced))
        ss.addWidget(self.sample_advanced)
        ss.addStretch(1)
        picker = self.sample_form.editor("model")
        if isinstance(picker, ModelPicker):
            picker.combo.setMinimumContentsLength(10)  # the column stays narrow; names elide
        self.sample_button = primary(QPushButton("Generate"))
        self.sample_button.setToolTip("Make levels with the chosen model (Ctrl+Enter)")
        self.sample_button.clicked.connect(self.sample)
        self.sample_list = QListWidget()
        self.sample_list.setMinimumHeight(60)
        self.sample_list.setAccessibleName("Generated levels")
        self.sample_list.setToolTip("Pick a level to edit it")
        self.sample_list.currentRowChanged.connect(self._pick_sample)
        self.sample_status = QLabel("")
        self.sample_status.setWordWrap(True)
        self.sample_result = ResultLine()
        spage = QWidget()
        sp = QVBoxLayout(spage)
        sp.setContentsMargins(0, 0, 0, 0)
        sp.addWidget(settings_scroll(ssettings), 2)
        brow = QHBoxLayout()
        brow.addWidget(self.sample_button)
        brow.addStretch(1)
        sp.addLayout(brow)
        sp.addWidget(self.sample_status)
        sp.addWidget(self.sample_list, 1)
        sp.addWidget(self.sample_result)
        self.pages.addWidget(spage)

        lay = QVBoxLayout(self)
        lay.addLayout(switch)
        lay.addWidget(self.pages, 1)
        self.set_run_folder(None)
        host.run_reopened.connect(self._reopened)

    def show_page(self, index: int) -> None:
        """0: train a model; 1: generate levels from one."""
        self.page_buttons.button(index).setChecked(True)
        self.pages.setCurrentIndex(index)

    # -- training -------------------------------------------------------------------------------
    def set_run_folder(self, folder: Path | None) -> None:
        self.run_folder = Path(folder) if folder is not None else None
        if self.run_folder is None:
            self.run_label.setText("a new folder")
            self.run_label.setToolTip("a new folder in the workspace's runs")
        else:
            self.run_label.setText(self.run_folder.name)
            self.run_label.setToolTip(str(self.run_folder))
        if hasattr(self, "resume_button"):
            self._refresh_buttons()

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

    def train(self, resume: bool = False) -> JobHandle | None:
        """Train a new model (into the run folder, or a new one), or (``resume``) train the
        run folder's model further from its checkpoint."""
        if self.busy:
            return None
        p = self.train_form.checked(self.train_status, resume=resume)
        if p is None:
            return None
        folder = self.run_folder
        if resume and (folder is None or not (folder / CHECKPOINT).exists()):
            self.train_status.setText("⚠ Choose a run folder with a checkpoint to resume "
                                      "(Show advanced settings, Run folder).")
            return None
        if not resume and folder is not None and (folder / CHECKPOINT).exists():
            folder = None  # that folder holds a finished run: train a new one beside it
        handle = self.host.submit("train", p, title=f"Train level {p.model.upper()}",
                                  out=folder)
        return self.adopt(handle)

    @property
    def busy(self) -> bool:
        return self._train_handle is not None and not self._train_handle.is_finished

    def adopt(self, handle: JobHandle) -> JobHandle:
        """Follow a training job (started here, or by the studio for the user): its
        progress, samples and result show in this page."""
        self._train_handle = handle
        self.show_page(0)
        self.train_result.clear()
        self.train_status.setText("Training…")
        handle.progress.connect(self._train_progress)
        handle.preview.connect(self._train_preview)
        handle.finished.connect(self._trained)
        self._refresh_buttons()
        return handle

    def job_started(self, job: str, params: Any, handle: JobHandle) -> None:
        """A job the studio started for the user: a training run shows here with its
        settings in the form."""
        if job == "train" and isinstance(params, TrainParams) and not self.busy:
            self.train_form.set(params)
            self.adopt(handle)

    def _train_progress(self, data: dict[str, Any]) -> None:
        done, total = data.get("done"), data.get("total")
        msg = str(data.get("message") or "")
        if msg:
            self.train_status.setText(msg[:1].upper() + msg[1:])
        elif total and done is not None:
            self.train_status.setText(f"Step {int(done):,} of {int(total):,}")

    def _refresh_buttons(self) -> None:
        busy = self.busy
        self.train_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        folder = self.run_folder
        self.resume_button.setEnabled(not busy and folder is not None
                                      and (folder / CHECKPOINT).exists())

    def stop(self) -> None:
        if self._train_handle is not None:
            self._train_handle.cancel()

    def _train_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind != "image":
            return
        self.train_preview.set_picture(QPixmap.fromImage(qimage_rgb(payload)))
        self.train_preview.setToolTip(f"Levels the model made at step {data.get('step')}")

    def _trained(self, rec: Any) -> None:
        if rec.run_dir is not None:
            self.set_run_folder(Path(rec.run_dir))
        if rec.state == "done":
            self.sample_form.set_value("model", Path(rec.result))
            self.train_status.setText("Done.")
            self.train_result.show_result("Saved", Path(rec.result),
                                          open_=lambda: self.show_page(1),
                                          open_text="Generate with it")
        elif rec.state == "cancelled":
            self.train_status.setText("Stopped; the checkpoint is kept (Resume training goes "
                                      "on from it).")
        else:
            self.train_status.setText("")
            self.train_result.show_problem(f"⚠ {rec.error}")
        self._refresh_buttons()

    # -- sampling -------------------------------------------------------------------------------
    def sample(self) -> JobHandle | None:
        p = self.sample_form.checked(self.sample_status, save=False)
        if p is None:
            return None
        handle = self.host.submit("sample", p, title="Generate levels from a model",
                                  show_plots=False)
        self.sample_status.setText("Generating…")
        self.sample_result.clear()
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
                self.sample_status.setText("")
                self.sample_result.show_problem(f"⚠ {rec.error}")
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
        saved = batch.folder or (batch.files[0].parent if batch.files else None)
        if saved is not None:
            n = len(batch.levels)
            self.sample_result.show_result(f"Saved {n}", Path(batch.files[0]) if batch.files
                                           else saved)
        if self.samples:
            self.sample_list.setCurrentRow(0)

    def _pick_sample(self, row: int) -> None:
        if 0 <= row < len(self.samples):
            lv = self.samples[row]
            self.document.set_level(lv, f"Sample {lv.name}", clear_pins=True)
            if self._batch is not None:
                self.document.set_report(self._batch.report(row))
