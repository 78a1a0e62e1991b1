"""The train box: what to learn from and how, Train / Resume training / Stop, and progress.

Bound to :class:`~plugins.music.params.TrainParams` through a ``Form``; the data row is drawn
here (a folder, or the built-in Bach chorales, in words rather than a path). Reopening a training
run puts its settings back and selects its model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.music.engine.bach import is_builtin
from plugins.music.engine.config import MODEL_FILE
from plugins.music.engine.phrase import Phrase
from plugins.music.params import TrainParams
from studio import fmt
from studio.widgets.form import Form
from studio.widgets.panelparts import ResultLine, primary
from studio.widgets.settingsarea import settings_scroll

if TYPE_CHECKING:  # pragma: no cover
    from plugins.music.ui.panel import MusicPanel

#: how the train job's messages before the first step begin (reading and writing the data)
PREPARING = ("reading", "writing", "checking", "preparing", "loading", "converting")
BUILTIN_LABEL = "Bach chorales (built in, 371 pieces)"
ADVANCED = ("melody", "holdout", "seed", "batch_size", "lr", "latent", "beta", "free_bits",
            "kl_warmup", "transpose")


class TrainBox(QWidget):
    """Training a model: the form (what to learn from and for how long on view, the rest
    under "Show advanced settings", scrolling on its own), Train / Resume training / Stop
    always in view below it, and the running job's progress."""

    #: the result line's "Generate with it": show the Generate tab
    generate_wanted = Signal()

    def __init__(self, panel: MusicPanel) -> None:
        super().__init__()
        self.panel = panel
        host = panel.host
        self.form = Form(TrainParams, self, host.recall("train", TrainParams))
        self.handle: Any = None
        settings = QWidget()
        lay = QFormLayout(settings)
        lay.setContentsMargins(0, 0, 4, 0)

        self.data_label = QLabel("")
        self.data_label.setWordWrap(True)
        lay.addRow(self.form.label("data"), self.data_label)
        row = QHBoxLayout()
        self.data_btn = QPushButton("Folder…")
        self.data_btn.setToolTip(self.form.param("data").help + " (or drop a folder here)")
        self.data_btn.clicked.connect(self._choose_data)
        row.addWidget(self.data_btn)
        self.builtin_btn = QPushButton("Bach chorales")
        self.builtin_btn.setToolTip("Learn from the built-in Bach chorales (their soprano lines "
                                    "as melodies)")
        self.builtin_btn.clicked.connect(lambda: self.set_data("bach"))
        row.addWidget(self.builtin_btn)
        lay.addRow("", row)
        self.form.add_rows(lay, "mode", "bars", "metre", "preset", "steps", "minutes")

        self.more_btn = QCheckBox("Show advanced settings")
        self.more_btn.toggled.connect(self._show_more)
        lay.addRow(self.more_btn)
        self.more = QWidget()
        more = QFormLayout(self.more)
        more.setContentsMargins(0, 0, 0, 0)
        self.form.add_rows(more, *ADVANCED)
        self.more.hide()
        lay.addRow(self.more)

        btns = QHBoxLayout()
        self.train_btn = primary(QPushButton("Train"))
        self.train_btn.setToolTip("Train a new model on this music (Ctrl+Enter)")
        self.train_btn.clicked.connect(lambda: self.train())
        btns.addWidget(self.train_btn)
        self.cancel_btn = QPushButton("Stop")
        self.cancel_btn.setToolTip("Stop training (a checkpoint is saved: Resume training goes "
                                   "on from it)")
        self.cancel_btn.clicked.connect(self.cancel)
        btns.addWidget(self.cancel_btn)
        self.resume_btn = QPushButton("Resume training")
        self.resume_btn.setToolTip("Train the selected model further, from its last checkpoint, "
                                   "up to the training steps")
        self.resume_btn.clicked.connect(lambda: self.train(resume=True))
        btns.addWidget(self.resume_btn)
        btns.addStretch(1)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.hide()
        self.progress_text = QLabel("")
        self.progress_text.setObjectName("caption")
        self.progress_text.setWordWrap(True)
        self.progress_text.hide()
        self.result = ResultLine()
        outer = QVBoxLayout(self)
        outer.addWidget(settings_scroll(settings), 1)
        outer.addLayout(btns)
        outer.addWidget(self.bar)
        outer.addWidget(self.progress_text)
        outer.addWidget(self.result)
        outer.addStretch()
        self._show_data()
        host.run_reopened.connect(self._reopened)

    # -- data -----------------------------------------------------------------------------------
    def _choose_data(self) -> None:
        start = "" if is_builtin(self.form.p.data) else (self.form.p.data or "")
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of MIDI or audio files",
                                                start)
        if path:
            self.set_data(path)

    def set_data(self, data: str) -> None:
        self.form.set_value("data", data)
        self._show_data()

    def _show_data(self) -> None:
        data = self.form.p.data or "bach"
        if is_builtin(data):
            self.data_label.setText(BUILTIN_LABEL)
            self.data_label.setToolTip("What the next training run learns from")
        else:
            self.data_label.setText(Path(data).name or data)
            self.data_label.setToolTip(f"What the next training run learns from: {data}")

    def _show_more(self, on: bool) -> None:
        self.more.setVisible(on)

    # -- running --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.handle is not None and not self.handle.is_finished

    def train(self, resume: bool = False) -> Any:
        """Start a new run, or (``resume``) train the selected model's run further."""
        panel = self.panel
        if self.running:
            panel.say("A training run is already going; stop it first.", error=True)
            return None
        out = None
        if resume:
            out = panel.model_path()
            if out is None:
                panel.say("Select a model to resume training.", error=True)
                return None
        # resuming from the window trains on the run's own music (the form may show other
        # data, chosen for the next new run); the command line's --data can point elsewhere
        own = {}
        if resume:
            source = (panel.model_box.config().get("data") or {}).get("source")
            own = {"data": str(source) if source else None}
        p = self.form.checked(panel.status, resume=resume, **own)
        if p is None:
            return None
        h = panel.host.submit("train", p, title="Train music VAE", out=out)
        self.adopt(h)
        panel.say("Training started: curves in the Live plots dock.")
        return h

    def adopt(self, h: Any) -> Any:
        """Follow a training job (started here, or by the studio for the user: the welcome
        page's quick start): its progress, samples and model show here."""
        self.handle = h
        self.result.clear()
        self.bar.setRange(0, 0)  # busy until the job says how far it is
        self.bar.setFormat("Starting…")
        self.bar.show()
        self.progress_text.setText("Starting…")
        self.progress_text.show()
        h.progress.connect(self._on_progress)
        h.preview.connect(self._on_preview)
        h.finished.connect(self._on_finished)
        self.panel.update_buttons()
        return h

    def job_started(self, params: Any, handle: Any) -> None:
        """A training run the studio started for the user: its settings in the form, its
        progress and live samples here and in the strip."""
        if isinstance(params, TrainParams):
            self.form.set(params)
            self._show_data()
        if not self.running:
            self.adopt(handle)
            self.panel.say("Training started: curves in the Live plots dock.")

    def cancel(self) -> None:
        if self.running:
            self.handle.cancel()
            self.panel.say("Stopping: the last checkpoint is kept, Resume training goes on "
                           "from it.")

    def _on_progress(self, data: dict[str, Any]) -> None:
        """Preparing the data shows as its own phase with its own count ("Reading data: 7 of
        371"); only training reads as steps, with its rate and time left, so preparing the
        data never looks like slow training (the job's message during training is its
        numbers, which the plots show in words)."""
        total, done = data.get("total"), data.get("done") or 0
        msg = str(data.get("message") or "")
        preparing = msg.startswith(PREPARING)
        if preparing:
            phase = msg[:1].upper() + msg[1:]
            self.progress_text.setText(phase)
            if total:
                self.bar.setRange(0, 1000)
                self.bar.setValue(int(1000 * min(1.0, done / total)))
                self.bar.setFormat(f"{phase}: {int(done):,} of {int(total):,}")
            else:
                self.bar.setRange(0, 0)  # no count: busy, not a false percentage
            return
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(1.0, done / total)))
            self.bar.setFormat(f"Step {int(done):,} of {int(total):,}")
        self.progress_text.setText(f"Training · {fmt.rate(data.get('rate'), 'step')} · "
                                   f"{fmt.duration(data.get('eta'))} left")

    def _on_preview(self, kind: str, payload: Any, _data: Any) -> None:
        panel = self.panel
        if kind != "phrases" or not isinstance(payload, dict):
            return
        if not panel.phrases or panel.strip_source == "training":
            panel.show_phrases([Phrase.from_payload(d) for d in payload["phrases"]],
                               f"Training preview: {payload.get('title', '')}", "training")

    def _on_finished(self, rec: Any) -> None:
        panel = self.panel
        self.bar.hide()
        self.progress_text.hide()
        if rec.state == "done":
            panel.say(f"Training finished: {Path(str(rec.result)).name}")
            panel.model_box.set_path(rec.result)
            self.result.show_result("Saved", Path(str(rec.result)),
                                    open_=self.generate_wanted.emit,
                                    open_text="Generate with it")
            if panel.strip_source == "training":
                panel.strip_source = ""
        elif rec.state == "cancelled":
            panel.say("Training stopped; Resume training goes on from its last checkpoint.")
            if rec.run_dir is not None and (Path(rec.run_dir) / MODEL_FILE).exists():
                panel.model_box.set_path(rec.run_dir)
        else:
            panel.say(f"Training failed: {rec.error}", error=True)
        panel.update_buttons()

    def _reopened(self, job: str, params: Any, run_dir: Path) -> None:
        """A training run was reopened: its settings come back, its model is selected."""
        if job != "train" or not isinstance(params, TrainParams):
            return
        self.form.set(params)
        self._show_data()
        if (Path(run_dir) / MODEL_FILE).exists():
            self.panel.model_box.set_path(run_dir)
        self.panel.say(f"The settings of {Path(run_dir).name} are back in the Train box.")

    def refresh(self) -> None:
        training = self.running
        self.train_btn.setEnabled(not training)
        self.resume_btn.setEnabled(not training and self.panel.model_path() is not None)
        self.cancel_btn.setEnabled(training)
