"""The training page: what to learn from and how, Train / Stop / Resume training, and the
sample grids the model draws while it learns.

Training is the ``train`` job (compute lane); this page binds its params to a form, submits it
and shows its preview grids and progress. The loss curves are the studio's Live plots dock's
(the host follows the job): this page drew its own copy in another style, which issue 16 asked
to remove. A training started elsewhere (the welcome page's quick start) shows here as if Train
had started it; reopening a run puts its settings and last grid back and aims Resume training
at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Signal
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
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.diffusion.params import TrainParams
from studio import fmt
from studio.widgets.form import Form
from studio.widgets.panelparts import ResultLine, primary
from studio.widgets.settingsarea import FitPicture, advanced_toggle, settings_scroll

from . import qimages

CHECKPOINT = Path("checkpoints") / "last.safetensors"
#: how the train job's messages before its first step begin (reading the images)
PREPARING = ("reading", "hashing", "checking", "loading")
#: on view: what to learn from and for how long; the rest is folded
COMMON = ("preset", "size", "steps", "minutes")
ADVANCED = ("batch_size", "lr", "holdout", "flip", "channels", "prediction", "ema_decay",
            "sample_every", "checkpoint_every", "seed")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def dropped_data(mime: Any) -> tuple[Path, int] | None:
    """What a drop on the Train tab would train on: a dropped folder ``(folder, 0)``, or the
    folder holding the dropped images ``(folder, number of images)``; None for anything else
    (other files, images from several folders)."""
    if not mime.hasUrls():
        return None
    paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0], 0
    images = [p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not images or len(images) != len(paths) or len({p.parent for p in images}) != 1:
        return None
    return images[0].parent, len(images)


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of a run's checkpoint (from its header); None when there is none."""
    from plugins.common.training import checkpoint_step as step_of

    return step_of(Path(run_dir) / CHECKPOINT)


class TrainTab(QWidget):
    """``use_model(path)`` asks the editor to load a trained model."""

    use_model = Signal(str)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.handle: Any = None
        self.model_dir: str | None = None
        self.run_dir: Path | None = None
        self.form = Form(TrainParams, self, host.recall("train", TrainParams))
        self._build()
        self.setAcceptDrops(True)
        host.run_reopened.connect(self._reopened)
        self._refresh_buttons()

    def _build(self) -> None:
        # -- data: a folder (or the built-in digits); a folder or images can be dropped here
        data_box = QGroupBox("Your images")
        dv = QVBoxLayout(data_box)
        data_row = QHBoxLayout()
        data_row.addWidget(self.form.widget("data"), 1)
        digits = QPushButton("Built-in digits")
        digits.setToolTip("scikit-learn's 1,797 handwritten digits (8x8, enlarged)")
        digits.clicked.connect(lambda: self.form.set_value("data", "digits"))
        data_row.addWidget(digits)
        dv.addLayout(data_row)
        hint = QLabel("A folder of png, jpg, webp or bmp (drop one here); sub-folders are "
                      "classes. Your folder is never modified.")
        hint.setObjectName("caption")
        hint.setWordWrap(True)
        dv.addWidget(hint)

        train_box = QGroupBox("Training")
        self.form.add_rows(QFormLayout(train_box), *COMMON)
        self.advanced = QGroupBox("Advanced")
        af = QFormLayout(self.advanced)
        self.form.add_rows(af, *ADVANCED)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("a new run folder in the workspace")
        self.out_edit.setToolTip("Where the run is saved: its model, samples and checkpoints "
                                 "(Resume training continues the run in it)")
        self.out_edit.textChanged.connect(lambda _t: self._refresh_buttons())
        out_browse = QToolButton()
        out_browse.setText("…")
        out_browse.setToolTip("Choose the run folder")
        out_browse.setAccessibleName("Choose the run folder")
        out_browse.clicked.connect(self._browse_out)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(out_browse)
        af.addRow("Run folder", out_row)
        self.show_advanced = advanced_toggle(self.advanced)
        self.show_advanced.setToolTip("Batch size, learning rate, held-out images, previews, "
                                      "checkpoints, the run folder")

        settings = QWidget()
        sv = QVBoxLayout(settings)
        sv.setContentsMargins(0, 0, 4, 0)
        sv.addWidget(data_box)
        sv.addWidget(train_box)
        sv.addWidget(self.show_advanced)
        sv.addWidget(self.advanced)
        sv.addStretch(1)

        # -- run: always in view below the settings (which scroll on their own when unfolded)
        self.start_button = primary(QPushButton("Train"))
        self.start_button.setToolTip("Train a new diffusion model on these images (Ctrl+Enter)")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop after this step; a checkpoint and the model are "
                                      "saved")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume training")
        self.resume_button.setToolTip("Continue the run from its last checkpoint up to Steps")
        self.resume_button.clicked.connect(self.resume)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.hide()
        self.status = QLabel("The built-in digits train to readable samples in about 15 "
                             "minutes on a laptop CPU.")
        self.status.setObjectName("caption")
        self.status.setWordWrap(True)
        self.result = ResultLine()
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(settings_scroll(settings), 1)
        lv.addLayout(buttons)
        lv.addWidget(self.progress)
        lv.addWidget(self.status)
        lv.addWidget(self.result)
        lv.addStretch(0)

        # -- the samples the model draws while it learns (the loss is in the Live plots dock)
        self.grid_label = FitPicture()
        self.grid_label.setObjectName("placeholder")
        self.grid_label.setWordWrap(True)
        self.grid_label.setText("Samples appear here while training (every 'Preview every' "
                                "steps); the loss curve opens in Live plots.")
        self.grid_label.setMinimumSize(160, 120)
        self.grid_caption = QLabel("")
        self.grid_caption.setObjectName("caption")
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.grid_label, 1)
        rv.addWidget(self.grid_caption)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([360, 560])
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(split)

    # -- state ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.handle is not None and not self.handle.is_finished

    def target_run(self) -> Path | None:
        """The run Resume training continues: the folder typed in, else the last one trained
        or reopened here."""
        text = self.out_edit.text().strip()
        return Path(text).expanduser() if text else self.run_dir

    def _refresh_buttons(self) -> None:
        busy = self.busy
        self.start_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        run = self.target_run()
        self.resume_button.setEnabled(not busy and run is not None
                                      and (run / CHECKPOINT).is_file())

    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder", str(self.host.runs_dir()))
        if path:
            self.out_edit.setText(path)

    # -- actions --------------------------------------------------------------------------------
    def start(self) -> Any:
        """Train a new model with the form's settings; returns the job's handle (or None with
        the problem shown in the status line)."""
        if self.busy:
            return None
        p = self.form.checked(self.status, resume=False)
        if p is None:
            return None
        out = self.out_edit.text().strip() or None
        return self.adopt(self.host.submit("train", p, title="Train diffusion model", out=out),
                          "Starting…")

    def resume(self) -> Any:
        """Continue the target run from its checkpoint (more steps when the form's are
        already done)."""
        run = self.target_run()
        if self.busy or run is None:
            return None
        step = checkpoint_step(run)
        if step is None:
            self.status.setText(f"⚠ {run.name} has no checkpoint to resume.")
            return None
        if self.form.p.steps <= step:
            self.form.set_value("steps", step + max(1000, self.form.p.checkpoint_every))
        p = self.form.checked(self.status, resume=True)
        if p is None:
            return None
        return self.adopt(self.host.submit("train", p, title="Train diffusion model", out=run),
                          f"Resuming from step {step:,}…")

    def cancel(self) -> None:
        if self.busy:
            self.handle.cancel()
            self.status.setText("Stopping after this step; saving a checkpoint and the "
                                "model…")

    def adopt(self, handle: Any, text: str = "Starting…") -> Any:
        """Follow ``handle`` (a training job started here, or by the welcome page): its
        progress, sample grids and result show on this page."""
        self.handle = handle
        self.result.clear()
        handle.preview.connect(self._on_preview)
        handle.progress.connect(self._on_progress)
        handle.finished.connect(self._on_finished)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(text)
        self._refresh_buttons()
        return handle

    def job_started(self, params: Any, handle: Any) -> None:
        """The studio started a training run for the user (the welcome page): its settings go
        in the form, its progress and samples on this page."""
        if isinstance(params, TrainParams):
            self.form.set(params)
        if not self.busy:
            self.out_edit.clear()
            self.adopt(handle)

    # -- drag and drop: a folder of images, or images (their folder) onto the page -------------
    def dragEnterEvent(self, event: Any) -> None:
        if dropped_data(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dragMoveEvent(self, event: Any) -> None:
        if dropped_data(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        found = dropped_data(event.mimeData())
        if found is None:
            return
        event.acceptProposedAction()
        self.use_dropped(*found)

    def use_dropped(self, folder: Path, images: int) -> None:
        """Train on ``folder`` (dropped, or holding the dropped images)."""
        self.form.set_value("data", str(folder))
        if images:
            self.status.setText(f"Using the folder that holds the {images} dropped image"
                                f"{'s' if images > 1 else ''}: {folder.name} (every image in "
                                "it is used).")
        else:
            self.status.setText(f"Using the images in {folder.name}.")

    # -- job events -----------------------------------------------------------------------------
    def _on_progress(self, data: dict[str, Any]) -> None:
        """Reading the images is its own phase with its own count; only training reads as
        steps, with its rate and the time left (so reading 1,797 images never shows as a
        finished 100%)."""
        total, done = data.get("total"), data.get("done") or 0
        msg = str(data.get("message") or "")
        if msg.startswith(PREPARING):
            phase = msg[:1].upper() + msg[1:]
            if total:
                self.progress.setRange(0, 1000)
                self.progress.setValue(int(1000 * min(1.0, done / total)))
                self.progress.setFormat(f"{phase}: {int(done):,} of {int(total):,}")
            else:
                self.progress.setRange(0, 0)
            self.status.setText(phase + "…")
            return
        if not total:
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(1.0, done / total)))
        self.progress.setFormat(f"Step {int(done):,} of {int(total):,}")
        self.status.setText(f"Training · {fmt.rate(data.get('rate'), 'step')} · "
                            f"{fmt.duration(data.get('eta'))} left")

    def _show_grid(self, image: np.ndarray, step: Any) -> None:
        self.grid_label.set_picture(QPixmap.fromImage(qimages.from_array(image)))
        text = f"Samples at step {int(step):,}" if step is not None else "Samples"
        self.grid_caption.setText(text + " · the averaged model, fixed noise")
        self.grid_label.setToolTip(text)

    def _on_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind == "image" and isinstance(payload, np.ndarray):
            self._show_grid(payload, data.get("step"))

    def _show_run(self, run: Path) -> None:
        """The run becomes Resume training's target; its model, when saved, is offered to the
        editor on the result line."""
        self.run_dir = run
        self.out_edit.setText(str(run))
        model = run / "model"
        if (model / "model_index.json").exists():
            self.model_dir = str(model)
            self.result.show_result("Saved", model, open_=self._use,
                                    open_text="Use in editor")
        self._refresh_buttons()

    def _use(self) -> None:
        if self.model_dir:
            self.use_model.emit(self.model_dir)

    def _on_finished(self, rec: Any) -> None:
        self.handle = None
        self.progress.hide()
        step = None
        if rec.run_dir is not None:
            step = checkpoint_step(Path(rec.run_dir))
        at = f" at step {step:,}" if step is not None else ""
        if rec.state == "done":
            self.status.setText(f"Done{at}.")
        elif rec.state == "cancelled":
            self.status.setText(f"Stopped{at}; Resume training continues from there.")
        else:
            self.status.setText("")
            self.result.show_problem(f"⚠ {rec.error}")
        if rec.run_dir is not None:
            self._show_run(Path(rec.run_dir))
        self._refresh_buttons()

    def _reopened(self, job: str, params: Any, run_dir: Path) -> None:
        """A training run was reopened: its settings, its last sample grid, and Resume
        training aimed at it (its curves open in the Live plots dock)."""
        if job != "train" or self.busy:
            return
        self.form.set(params)
        run = Path(run_dir)
        self._show_run(run)
        grids = sorted((run / "samples").glob("step_*.png"))
        if grids:
            from PIL import Image

            with Image.open(grids[-1]) as im:
                step = grids[-1].stem.removeprefix("step_").lstrip("0") or "0"
                self._show_grid(np.asarray(im.convert("RGB")), int(step))
        self.status.setText(f"Reopened {run.name}: Resume training continues it.")

    def shutdown(self) -> None:
        """Nothing of its own runs: the job is the runner's (the window stops it)."""
