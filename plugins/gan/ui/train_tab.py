"""Train tab: data, model settings, Train / Stop / Resume training, and the live samples.

The settings are a :class:`~studio.widgets.form.Form` over :class:`TrainParams`: the widgets,
their limits and tooltips come from the dataclass, and Train submits the checked object. The
loss curves appear in the studio's Live plots dock (the host follows the job); this tab shows
what the plots cannot: the generator's samples from fixed noise, refreshed every few hundred
steps, and a warning when they stop being varied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from plugins.gan.params import TrainParams
from plugins.gan.ui.widgets import FolderPicker, ImageView, banner, caption, dropped_data
from studio import fmt
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import ResultLine, primary
from studio.widgets.vscroll import vertical_scroll

CHECKPOINT = Path("checkpoints") / "last.safetensors"
GENERATOR = "generator.safetensors"
#: the DiffAugment policies worth offering in a list (the command line takes any comma list)
DIFFAUG_CHOICES = [("the preset's (translation)", None), ("off", "off"),
                   ("translation", "translation"), ("translation, cutout", "translation,cutout"),
                   ("colour, translation, cutout", "color,translation,cutout")]
ADVANCED = ("lr", "ema_decay", "amp", "train_size", "max_images", "log_every",
            "collapse_threshold", "collapse_after")


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of a run's checkpoint, read from its header (a few kilobytes); None when the
    run has no readable checkpoint."""
    from plugins.common.training import checkpoint_step as step_of

    return step_of(Path(run_dir) / CHECKPOINT)


class TrainTab(QWidget):
    #: a run produced (or updated) a generator: the Explore and Evaluate tabs follow it
    model_ready = Signal(Path)
    #: the result line's "Explore it": show the Explore tab
    explore_wanted = Signal()

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.handle: JobHandle | None = None
        self.run_dir: Path | None = None
        self.form = Form(TrainParams, self, host.recall("train", TrainParams))

        # -- data: a folder (or the built-in digits); folders and images can be dropped here
        digits = QPushButton("Use built-in digits")
        digits.setToolTip("scikit-learn's 1,797 handwritten digits, 10 classes")
        digits.clicked.connect(lambda: self.form.set_value("data", "digits"))
        data_row = QHBoxLayout()
        data_row.addWidget(self.form.widget("data"), 1)
        data_row.addWidget(digits)
        data_box = QGroupBox("Your images")
        df = QVBoxLayout(data_box)
        df.addLayout(data_row)
        df.addWidget(caption("A folder of png, jpg, webp or bmp (drop one here); sub-folders "
                             "are classes. Your folder is never modified."))

        # -- the settings most runs change
        model_box = QGroupBox("Training")
        mf = QFormLayout(model_box)
        self.form.add_rows(mf, "preset", "size", "steps", "max_minutes")
        # the rest, out of sight until asked for
        self.diffaug = QComboBox()
        for text, value in DIFFAUG_CHOICES:
            self.diffaug.addItem(text, value)
        self.diffaug.setToolTip(self.form.param("diffaug").help)
        self.diffaug.currentIndexChanged.connect(
            lambda _i: self.form.set_value("diffaug", self.diffaug.currentData()))
        self._show_diffaug()
        self.show_advanced = QCheckBox("Show advanced settings")
        self.advanced = QGroupBox("Advanced")
        af = QFormLayout(self.advanced)
        self.form.add_rows(af, "arch", "conditional", "color", "batch_size")
        af.addRow(self.form.label("diffaug"), self.diffaug)
        self.form.add_rows(af, "holdout", "preview_every", "checkpoint_every", "seed",
                           *ADVANCED)
        self.out = FolderPicker("a new folder in the workspace")
        self.out.start_dir = lambda: str(self.host.runs_dir())
        self.out.changed.connect(lambda _t: self._refresh_buttons())
        self.out.line.setToolTip("The run folder: where the model, its checkpoints and samples "
                                 "go (Resume training continues the run in it)")
        af.addRow("Run folder", self.out)
        self.advanced.setVisible(False)
        self.show_advanced.toggled.connect(self.advanced.setVisible)

        settings = QWidget()
        ll = QVBoxLayout(settings)
        ll.setContentsMargins(0, 0, 4, 0)
        ll.addWidget(data_box)
        ll.addWidget(model_box)
        ll.addWidget(self.show_advanced)
        ll.addWidget(self.advanced)
        ll.addStretch(1)

        # -- run: always in view below the settings (which scroll when unfolded)
        self.train_btn = primary(QPushButton("Train"))
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setToolTip("Stop after this step; the checkpoint is kept")
        self.resume_btn = QPushButton("Resume training")
        self.resume_btn.setToolTip("Continue the run's last checkpoint up to Training steps")
        self.train_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.resume_btn.clicked.connect(self.resume)
        buttons = QHBoxLayout()
        for b in (self.train_btn, self.stop_btn, self.resume_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.result = ResultLine()
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        scroll = vertical_scroll(settings)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        lv.addWidget(scroll, 1)
        lv.addLayout(buttons)
        lv.addWidget(self.status)
        lv.addWidget(self.result)

        # -- preview
        self.warning = banner()
        self.preview = ImageView("Samples from fixed noise appear here while training (every "
                                 "'Preview every' steps).")
        self.preview_caption = caption("")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.warning)
        rl.addWidget(self.preview, 1)
        rl.addWidget(self.preview_caption)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([380, 560])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)
        self.setAcceptDrops(True)
        host.run_reopened.connect(self._reopened)
        self._refresh_buttons()

    # -- settings -------------------------------------------------------------------------------
    def _show_diffaug(self) -> None:
        """Put the form's DiffAugment value in the list (a policy typed on the command line is
        added as it is)."""
        value = self.form.p.diffaug
        i = self.diffaug.findData(value)
        if i < 0:
            self.diffaug.addItem(str(value), value)
            i = self.diffaug.count() - 1
        self.diffaug.blockSignals(True)
        self.diffaug.setCurrentIndex(i)
        self.diffaug.blockSignals(False)

    def _reopened(self, job: str, params: Any, run_dir: Path) -> None:
        """A run of this plugin was reopened: show its settings, aim Resume training at it."""
        if job != "train" or not isinstance(params, TrainParams):
            return
        self.form.set(params)
        self._show_diffaug()
        self.out.setText(str(run_dir))
        self.run_dir = Path(run_dir)
        self._refresh_buttons()

    def target_run(self) -> Path | None:
        """The run Resume continues: the folder typed in, else the last one trained here."""
        if self.out.text():
            return Path(self.out.text()).expanduser()
        return self.run_dir

    # -- actions ------------------------------------------------------------------------------
    def start(self) -> JobHandle | None:
        if self.busy:
            return None
        p = self.form.checked(self.status, resume=False)
        if p is None:
            return None
        if not p.data:
            self.status.setText("⚠ Choose a folder of images first (or use the built-in "
                                "digits).")
            return None
        return self._submit(p, self.out.text() or None, "Training…")

    def resume(self) -> JobHandle | None:
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
        return self._submit(p, run, f"Resuming from step {step}…")

    def stop(self) -> None:
        if self.handle is not None and not self.handle.is_finished:
            self.handle.cancel()
            self.status.setText("Stopping after this step (the checkpoint is kept)…")

    @property
    def busy(self) -> bool:
        return self.handle is not None and not self.handle.is_finished

    def _submit(self, p: TrainParams, out: str | Path | None, text: str) -> JobHandle:
        return self.adopt(self.host.submit("train", p, out=out), text)

    def adopt(self, handle: JobHandle, text: str = "Training…") -> JobHandle:
        """Follow ``handle`` (a training job started here, or by the welcome page): its
        previews, progress and result show in this tab as if Train had started it."""
        self.warning.hide()
        self.result.clear()
        self.handle = handle
        self.handle.progress.connect(self._on_progress)
        self.handle.preview.connect(self._on_preview)
        self.handle.log.connect(self._on_log)
        self.handle.state.connect(lambda _s: self._refresh_buttons())
        self.handle.finished.connect(self._on_finished)
        self.status.setText(text)
        self._refresh_buttons()
        return self.handle

    def job_started(self, params: Any, handle: JobHandle) -> None:
        """The studio started a training run for the user: its settings go in the form and
        its samples in the preview."""
        if isinstance(params, TrainParams):
            self.form.set(params)
            self._show_diffaug()
        if not self.busy:
            self.adopt(handle)

    # -- drag and drop: a folder of images, or images (their folder) onto the tab ------------
    def dragEnterEvent(self, event: Any) -> None:
        if dropped_data(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        found = dropped_data(event.mimeData())
        if found is None:
            return
        self.use_dropped(*found)
        event.acceptProposedAction()

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
        done, total = data.get("done") or 0, data.get("total")
        msg = data.get("message") or ""
        if msg.startswith(("reading", "checking")):  # before the first step
            self.status.setText(msg[0].upper() + msg[1:] + "…")
            return
        eta = fmt.duration(data.get("eta"))
        self.status.setText(f"Step {int(done):,} of {int(total or 0):,} · "
                            f"{fmt.rate(data.get('rate'), 'step')} · ETA {eta}")

    def _on_preview(self, kind: str, payload: Any, data: dict[str, Any]) -> None:
        if kind != "image":
            return
        self.preview.set_image(payload)
        div = data.get("diversity")
        step = data.get("step")
        text = f"Step {step:,}" if isinstance(step, int) else ""
        if isinstance(div, float):
            text += f" · diversity {div:.2f} of the real images'"
        self.preview_caption.setText(text + " · EMA generator, fixed noise (one row per class "
                                     "for conditional models)")
        if data.get("collapse"):
            self.warning.setText(f"⚠ Possible mode collapse at step {step}: the samples are "
                                 f"much less varied than your images (diversity {div:.2f}, "
                                 f"threshold {data.get('collapse_threshold', 0.3):.2f}). Try "
                                 "DiffAugment or a lower learning rate, or stop and resume from "
                                 "an earlier checkpoint.")
            self.warning.show()
        else:
            self.warning.hide()

    def _on_log(self, level: str, text: str) -> None:
        if level == "warning" and "collapse" not in text:
            self.status.setText("⚠ " + text.splitlines()[0])

    def _on_finished(self, rec: Any) -> None:
        if rec.run_dir is not None:
            self.run_dir = Path(rec.run_dir)
        model = (self.run_dir / GENERATOR) if self.run_dir is not None else None
        has_model = model is not None and model.exists()
        if rec.state == "done":
            step = checkpoint_step(self.run_dir) if self.run_dir else None
            self.status.setText(f"Done{f' at step {step:,}' if step else ''}.")
        elif rec.state == "cancelled":
            step = checkpoint_step(self.run_dir) if self.run_dir else None
            self.status.setText("Stopped" + (f" at step {step:,}; Resume training continues "
                                             "from there." if step is not None else "."))
        else:
            self.status.setText("")
            self.result.show_problem(f"⚠ {rec.error}")
        if has_model and self.run_dir is not None and model is not None:
            self.result.show_result("Saved", model, open_=lambda: self.explore_wanted.emit(),
                                    open_text="Explore it")
            self.model_ready.emit(self.run_dir)
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        busy = self.busy
        self.train_btn.setEnabled(not busy)
        self.stop_btn.setEnabled(busy)
        run = self.target_run()
        self.resume_btn.setEnabled(not busy and run is not None and (run / CHECKPOINT).exists())
