"""Train tab: data, model settings, Train / Stop / Resume, and the live sample grid.

The loss curves appear in the studio's Live plots dock (the host follows the job); this tab shows
what the plots cannot: the generator's samples from fixed noise, refreshed every few hundred
steps, and a warning when they stop being varied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from plugins.gan.ui.widgets import ImageView, PathPicker, banner, caption
from studio import fmt
from studio.qtjobs import JobHandle

CHECKPOINT = Path("checkpoints") / "last.safetensors"
DIFFAUG_CHOICES = [("preset default", None), ("off", ""), ("translation", "translation"),
                   ("translation, cutout", "translation,cutout"),
                   ("colour, translation, cutout", "color,translation,cutout")]
ARCH_CHOICES = [("SNGAN: spectral norm + hinge (default)", "sngan"),
                ("DCGAN (the book's)", "dcgan"),
                ("WGAN-GP: Wasserstein + gradient penalty", "wgan-gp")]
PRESET_CHOICES = [("Fast: small, for a CPU (minutes)", "fast"),
                  ("Balanced", "balanced"), ("Quality: wide, for a GPU", "quality")]


def _combo(items: list[tuple[str, Any]]) -> QComboBox:
    box = QComboBox()
    for text, data in items:
        box.addItem(text, data)
    return box


def _spin(lo: int, hi: int, value: int, step: int = 1, special: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setValue(value)
    if special:
        s.setSpecialValueText(special)
    return s


def checkpoint_step(run_dir: Path) -> int | None:
    """The step recorded in a run's config.json (written with each checkpoint); cheap."""
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (run_dir / CHECKPOINT).exists():
        return None
    step = data.get("step") if isinstance(data, dict) else None
    return int(step) if isinstance(step, int | float) else None


class TrainTab(QWidget):
    #: a run produced (or updated) a generator: the Explore and Evaluate tabs follow it
    model_ready = Signal(Path)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.handle: JobHandle | None = None
        self.run_dir: Path | None = None

        # -- data
        self.data = PathPicker("folder of images (sub-folders are classes)")
        self.data.add_button("Use built-in digits", lambda: self.data.setText("digits"),
                             "scikit-learn's 1,797 handwritten digits, 10 classes")
        data_box = QGroupBox("Data")
        df = QVBoxLayout(data_box)
        df.addWidget(self.data)
        df.addWidget(caption("png, jpg, webp or bmp, searched recursively; first-level "
                             "sub-folders are classes. Unreadable files are skipped and listed "
                             "in the log. Your folder is never modified."))

        # -- model
        self.preset = _combo(PRESET_CHOICES)
        self.arch = _combo(ARCH_CHOICES)
        self.size = _combo([("32 px", 32), ("64 px", 64), ("128 px", 128)])
        self.conditional = _combo([("auto (when there are class folders)", "auto"),
                                   ("yes", "yes"), ("no", "no")])
        self.color = _combo([("auto", "auto"), ("colour", "rgb"), ("grayscale", "gray")])
        self.steps = _spin(1, 10_000_000, 5000, 500)
        self.batch = _spin(0, 4096, 0, 16, "preset")
        self.diffaug = _combo(DIFFAUG_CHOICES)
        self.preview_every = _spin(1, 100_000, 200, 50)
        self.checkpoint_every = _spin(1, 1_000_000, 1000, 100)
        self.seed = _spin(0, 2**31 - 1, 0)
        model_box = QGroupBox("Model")
        mf = QFormLayout(model_box)
        mf.addRow("Preset:", self.preset)
        mf.addRow("Architecture:", self.arch)
        mf.addRow("Image size:", self.size)
        mf.addRow("Class-conditional:", self.conditional)
        mf.addRow("Colour:", self.color)
        mf.addRow("Steps:", self.steps)
        mf.addRow("Batch size:", self.batch)
        mf.addRow("DiffAugment:", self.diffaug)
        mf.addRow("Preview every:", self.preview_every)
        mf.addRow("Checkpoint every:", self.checkpoint_every)
        mf.addRow("Seed:", self.seed)

        # -- run
        self.out = PathPicker("run folder (default: a new one in the workspace)")
        self.out.start_dir = lambda: str(self.host.runs_dir())
        self.out.changed.connect(lambda _t: self._refresh_buttons())
        self.train_btn = QPushButton("Train")
        self.train_btn.setDefault(True)
        self.stop_btn = QPushButton("Stop")
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setToolTip("Continue the run folder's last checkpoint up to Steps")
        self.train_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.resume_btn.clicked.connect(self.resume)
        buttons = QHBoxLayout()
        for b in (self.train_btn, self.stop_btn, self.resume_btn):
            buttons.addWidget(b)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        run_box = QGroupBox("Run")
        rf = QVBoxLayout(run_box)
        rf.addWidget(self.out)
        rf.addLayout(buttons)
        rf.addWidget(self.status)

        form = QWidget()
        ll = QVBoxLayout(form)
        ll.setContentsMargins(0, 0, 4, 0)
        ll.addWidget(data_box)
        ll.addWidget(model_box)
        ll.addWidget(run_box)
        ll.addStretch(1)
        left = QScrollArea()
        left.setWidgetResizable(True)
        left.setFrameShape(QScrollArea.Shape.NoFrame)
        left.setWidget(form)
        left.setMinimumWidth(460)

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
        split.setSizes([480, 560])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)
        self._refresh_buttons()

    # -- parameters ---------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "data": self.data.text(),
            "size": self.size.currentData(),
            "steps": self.steps.value(),
            "arch": self.arch.currentData(),
            "preset": self.preset.currentData(),
            "conditional": self.conditional.currentData(),
            "color": self.color.currentData(),
            "preview_every": self.preview_every.value(),
            "checkpoint_every": self.checkpoint_every.value(),
            "seed": self.seed.value(),
        }
        if self.diffaug.currentData() is not None:
            p["diffaug"] = self.diffaug.currentData()
        if self.batch.value() > 0:
            p["batch_size"] = self.batch.value()
        if self.out.text():
            p["out"] = self.out.text()
        return p

    def target_run(self) -> Path | None:
        """The run Resume continues: the folder typed in, else the last one trained here."""
        if self.out.text():
            return Path(self.out.text()).expanduser()
        return self.run_dir

    # -- actions ------------------------------------------------------------------------------
    def start(self) -> JobHandle | None:
        if self.busy:
            return None
        params = self.params()
        if not params["data"]:
            self.status.setText("⚠ Choose a folder of images first (or use the built-in "
                                "digits).")
            return None
        return self._submit(params, "Training…")

    def resume(self) -> JobHandle | None:
        run = self.target_run()
        if self.busy or run is None:
            return None
        step = checkpoint_step(run)
        if step is None:
            self.status.setText(f"⚠ {run} has no checkpoint to resume.")
            return None
        if self.steps.value() <= step:
            self.steps.setValue(step + max(1000, self.checkpoint_every.value()))
        params = {"out": str(run), "resume": True, "steps": self.steps.value(),
                  "preview_every": self.preview_every.value(),
                  "checkpoint_every": self.checkpoint_every.value()}
        if self.data.text():
            params["data"] = self.data.text()
        return self._submit(params, f"Resuming from step {step}…")

    def stop(self) -> None:
        if self.handle is not None and not self.handle.is_finished:
            self.handle.cancel()
            self.status.setText("Stopping after this step (the checkpoint is kept)…")

    @property
    def busy(self) -> bool:
        return self.handle is not None and not self.handle.is_finished

    def _submit(self, params: dict[str, Any], text: str) -> JobHandle:
        self.warning.hide()
        self.handle = self.host.submit("train", params)
        self.handle.progress.connect(self._on_progress)
        self.handle.preview.connect(self._on_preview)
        self.handle.log.connect(self._on_log)
        self.handle.state.connect(lambda _s: self._refresh_buttons())
        self.handle.finished.connect(self._on_finished)
        self.status.setText(text)
        self._refresh_buttons()
        return self.handle

    # -- job events -----------------------------------------------------------------------------
    def _on_progress(self, data: dict[str, Any]) -> None:
        done, total = data.get("done") or 0, data.get("total")
        msg = data.get("message") or ""
        if msg.startswith("reading"):
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
        if rec.state == "done":
            self.status.setText(f"Done: {rec.result}")
        elif rec.state == "cancelled":
            step = checkpoint_step(self.run_dir) if self.run_dir else None
            self.status.setText("Stopped" + (f" at step {step:,}; Resume continues from there."
                                            if step is not None else "."))
        else:
            self.status.setText(f"⚠ {rec.error}")
        if self.run_dir is not None and (self.run_dir / "generator.safetensors").exists():
            self.model_ready.emit(self.run_dir)
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        busy = self.busy
        self.train_btn.setEnabled(not busy)
        self.stop_btn.setEnabled(busy)
        run = self.target_run()
        self.resume_btn.setEnabled(not busy and run is not None and (run / CHECKPOINT).exists())
