"""The Train tab: choose a corpus, count it, and train a new model or fine-tune the chosen one.

Its settings are the ``train`` job's :class:`~plugins.writer.params.TrainParams` form; counting
(the ``inspect`` job) and training run on workers, and this tab only shows what comes back.
Curves go to the studio's Live plots dock. Reopening a training run puts its settings back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from plugins.writer.engine.presets import PRESETS, param_count
from plugins.writer.params import TEXT_FILTER, InspectParams, TrainParams
from plugins.writer.ui.cards import dropped_corpus
from plugins.writer.ui.documents import model_label
from studio import fmt
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import ResultLine, primary
from studio.widgets.vscroll import vertical_scroll

DEFAULT_VOCAB = 2048  # shown in parameter counts until the corpus has been counted


class TrainTab(QWidget):
    """Corpus, model choice, settings, Train / Stop / Resume, live summary."""

    #: a training run finished (or stopped) and saved a model folder
    model_trained = Signal(str)
    #: the result line's "Write with it": show the Write tab
    write_wanted = Signal()
    #: a reopened run fine-tuned this model: choose it at the top
    use_model = Signal(str)

    def __init__(self, host: Any, model_path: Callable[[], str | None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.model_path = model_path
        self.handle: JobHandle | None = None
        self.inspect_handle: JobHandle | None = None
        self.stats: dict[str, Any] | None = None
        self.last_run: Path | None = None
        self._last_val: float | None = None
        self.form = Form(TrainParams, self, host.recall("train", TrainParams))
        self.form.changed.connect(self._on_changed)

        # -- corpus -------------------------------------------------------------------------
        for button in self.form.widget("data").findChildren(QPushButton):
            button.setText("Folder…")  # the form's browse button; this row also has File…
            button.setMaximumWidth(16777215)
        cast(QLineEdit, self.form.editor("data")).setPlaceholderText(
            "a .txt/.md file or a folder of them (UTF-8)")
        file_button = QPushButton("File…")
        file_button.setToolTip("One .txt/.md file")
        file_button.clicked.connect(self._ask_file)
        self.count_button = QPushButton("Count")
        self.count_button.setToolTip("Count characters and tokens (and check every file is "
                                     "UTF-8) before training")
        self.count_button.clicked.connect(self.inspect_corpus)
        row = QHBoxLayout()
        row.addWidget(self.form.widget("data"), 1)
        row.addWidget(file_button)
        row.addWidget(self.count_button)
        self.stats_label = QLabel("Choose your text, then Count.")
        self.stats_label.setWordWrap(True)
        corpus_box = QGroupBox("1. Your text")
        cv = QVBoxLayout(corpus_box)
        cv.addLayout(row)
        cv.addWidget(self.stats_label)

        # -- model ----------------------------------------------------------------------------
        self.source = QComboBox()
        self.source.addItem("New model, trained from scratch", "new")
        self.source.addItem("Fine-tune the chosen model", "finetune")
        self.source.setCurrentIndex(1 if self.form.p.model else 0)
        self.source.currentIndexChanged.connect(self._update_enabled)
        self.preset = cast(QComboBox, self.form.editor("preset"))
        self.preset.currentIndexChanged.connect(self._show_preset)
        self.preset_note = QLabel("")
        self.preset_note.setWordWrap(True)
        self.tokenizer = self.form.editor("tokenizer")
        self.method = self.form.editor("method")
        self.merge = self.form.editor("merge_lora")
        for combo in (self.source, self.preset, self.tokenizer, self.method):
            cast(QComboBox, combo).setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            cast(QComboBox, combo).setMinimumContentsLength(14)
        model_form = QFormLayout()
        model_form.addRow("Model:", self.source)
        self.form.add_rows(model_form, "preset")
        model_form.addRow("", self.preset_note)
        self.steps = cast(QSpinBox, self.form.editor("steps"))
        self.batch = cast(QSpinBox, self.form.editor("batch_size"))
        self.block = cast(QSpinBox, self.form.editor("block_size"))
        self.form.add_rows(model_form, "steps", "minutes")
        model_box = QGroupBox("2. Model and training")
        model_box.setLayout(model_form)
        self._fill_presets()

        # -- the rest, folded until asked for -------------------------------------------------
        self.show_advanced = QCheckBox("Show advanced settings")
        self.advanced = QGroupBox("Advanced")
        form = QFormLayout(self.advanced)
        self.form.add_rows(form, "method", "merge_lora", "lora_r", "tokenizer", "vocab_size",
                           "lr", "optimizer", "batch_size", "block_size", "eval_every",
                           "patience", "val_fraction", "seed")
        self.advanced.setVisible(False)
        self.show_advanced.toggled.connect(self.advanced.setVisible)

        # -- run: in view below the settings (which scroll when unfolded) ----------------------
        self.train_button = primary(QPushButton("Train"))
        self.train_button.clicked.connect(lambda: self.start_training())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop now; a checkpoint and the model so far are saved")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume training…")
        self.resume_button.setToolTip("Continue a stopped run from its last checkpoint "
                                      "(up to Steps)")
        self.resume_button.clicked.connect(self._ask_resume)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.result = ResultLine()
        self.result_label = self.result.text

        settings = QWidget()
        sv = QVBoxLayout(settings)
        sv.setContentsMargins(0, 0, 4, 0)
        sv.addWidget(corpus_box)
        sv.addWidget(model_box)
        sv.addWidget(self.show_advanced)
        sv.addWidget(self.advanced)
        sv.addStretch(1)
        scroll = vertical_scroll(settings)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # no preferred height: this tab has a height for its width (wrapped labels), and Qt
        # takes a tab's *preferred* height for that width as its minimum, which made the whole
        # panel scroll as soon as the settings grew (the Jobs strip open, a corpus counted)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.result)
        self.setAcceptDrops(True)
        self._update_enabled()

    # -- model choice ---------------------------------------------------------------------------
    def _fill_presets(self) -> None:
        """Each size with its parameter count (for the counted vocabulary, else 2,048)."""
        vocab = int(self.stats["vocab_size"]) if self.stats and self.stats.get(
            "tokenizer") in ("bpe", "char") else DEFAULT_VOCAB
        for i in range(self.preset.count()):
            p = PRESETS.get(str(self.preset.itemData(i)))
            if p is None:
                continue
            self.preset.setItemText(i, f"{p.name}: {fmt.count(param_count(p, vocab))} "
                                       "parameters")
            self.preset.setItemData(i, f"{p.layers} layers, width {p.width}, context "
                                       f"{p.block_size} tokens; {p.description}",
                                    Qt.ItemDataRole.ToolTipRole)
        self._show_preset()

    def _show_preset(self, *_: Any) -> None:
        tip = self.preset.currentData(Qt.ItemDataRole.ToolTipRole)
        vocab_note = "" if self.stats else " (parameters counted for a 2,048-token vocabulary " \
            "until you Count)"
        self.preset_note.setText(f"{tip}{vocab_note}" if tip else "")

    def fine_tuning(self) -> bool:
        return self.source.currentData() == "finetune"

    def _update_enabled(self) -> None:
        new = not self.fine_tuning()
        for name in ("preset", "tokenizer", "vocab_size"):
            self.form.widget(name).setEnabled(new)
        self.preset_note.setEnabled(new)
        self.form.widget("method").setEnabled(not new)
        lora = not new and self.form.p.method == "lora"
        self.form.widget("merge_lora").setEnabled(lora)
        self.form.widget("lora_r").setEnabled(lora)

    def _on_changed(self, name: str) -> None:
        if name == "data":
            self._corpus_changed()
        elif name == "method":
            self._update_enabled()

    # -- corpus ---------------------------------------------------------------------------------
    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a text file", "", TEXT_FILTER)
        if path:
            self.form.set_value("data", Path(path))
            self._corpus_changed()

    def _corpus_changed(self) -> None:
        self.stats = None
        self.stats_label.setText("Press Count to check the text and see its size.")
        self._fill_presets()

    def inspect_corpus(self) -> JobHandle | None:
        p = self.form.p
        if p.data is None:
            self.stats_label.setText("Choose a file or folder first.")
            return None
        model = self.model_path() if self.fine_tuning() else None
        params = InspectParams(data=p.data, model=Path(model) if model else None,
                               tokenizer=p.tokenizer, vocab_size=p.vocab_size,
                               val_fraction=p.val_fraction)
        self.stats_label.setText("Counting…")
        handle = self.host.submit("inspect", params, show_plots=False)
        self.inspect_handle = handle
        handle.finished.connect(lambda rec, h=handle: self._on_inspected(h, rec))
        return handle

    def _on_inspected(self, handle: JobHandle, rec: Any) -> None:
        if handle is not self.inspect_handle:
            return
        self.inspect_handle = None
        if rec.state != "done":
            self.stats_label.setText(f"⚠ {rec.error or rec.state}")
            return
        self.show_stats(rec.result)

    def show_stats(self, s: dict[str, Any]) -> None:
        self.stats = s
        text = (f"{s['files']} file(s), {s['chars']:,} characters → {s['train_tokens']:,} "
                f"training tokens and {s['val_tokens']:,} held-out tokens "
                f"({s['chars_per_token']:.2f} characters per token; vocabulary "
                f"{s['vocab_size']:,}, {s['tokenizer']} tokenizer).")
        if s.get("ignored"):
            text += f" {len(s['ignored'])} file(s) with other extensions were skipped."
        self.stats_label.setText(text)
        self._fill_presets()

    # -- training -------------------------------------------------------------------------------
    def train_params(self, resume: bool = False) -> TrainParams | None:
        """The checked params of a run (None after saying what is wrong in the summary)."""
        model = self.model_path() if self.fine_tuning() else None
        if self.fine_tuning() and not model:
            self.summary.setText("Choose a model to fine-tune at the top (Choose… or "
                                 "Download…), or train a new model.")
            return None
        if self.form.p.data is None and not resume:
            self.summary.setText("Choose your text first (1.).")
            return None
        p: TrainParams | None = self.form.checked(
            self.summary, model=Path(model) if model else None, resume=resume)
        return p

    def start_training(self, resume_dir: Path | None = None) -> JobHandle | None:
        if self.handle is not None:
            return None
        params = self.train_params(resume=resume_dir is not None)
        if params is None:
            return None
        out = resume_dir or self.host.runs_dir() / time.strftime("%Y%m%d-%H%M%S-train")
        self.last_run = Path(out)
        return self.adopt(self.host.submit("train", params, out=out))

    def adopt(self, handle: JobHandle) -> JobHandle:
        """Follow ``handle`` (a training run started here, or by the welcome page): its
        progress, held-out loss and result show here as if Train had started it."""
        self._last_val = None
        self.handle = handle
        handle.progress.connect(self._on_progress)
        handle.metrics.connect(self._on_metrics)
        handle.preview.connect(self._on_preview)
        handle.finished.connect(lambda rec, h=handle: self._on_finished(h, rec))
        self.train_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.result.clear()
        self.summary.setText("Preparing (reading the text, training the tokenizer)…")
        return handle

    def job_started(self, params: Any, handle: JobHandle) -> None:
        """The studio started a training run for the user: its settings go in the form."""
        if isinstance(params, TrainParams):
            self.form.set(params)
            self.form.set_value("resume", False)
            self.source.setCurrentIndex(1 if params.model else 0)
            self._corpus_changed()
            self._update_enabled()
        if handle.record.run_dir is not None:
            self.last_run = Path(handle.record.run_dir)
        if self.handle is None:
            self.adopt(handle)

    # -- drag and drop: a text file or a folder of them is the text to train on -------------
    def dragEnterEvent(self, event: Any) -> None:
        if dropped_corpus(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        path = dropped_corpus(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.form.set_value("data", path)
            self._corpus_changed()
            self.stats_label.setText(f"Training text: {path.name}. Press Count to check it "
                                     "and see its size.")

    def _ask_resume(self) -> None:
        start = str(self.last_run or self.host.runs_dir())
        path = QFileDialog.getExistingDirectory(self, "Choose a run folder to resume", start)
        if path:
            self.start_training(Path(path))

    def reopen(self, params: TrainParams, run_dir: Path) -> None:
        """A training run was reopened: its settings come back, Resume… starts from it."""
        self.form.set(params)
        self.form.set_value("resume", False)
        self.source.setCurrentIndex(1 if params.model else 0)
        if params.model:
            self.use_model.emit(str(params.model))
        self.last_run = run_dir
        self._corpus_changed()
        self._update_enabled()
        self.summary.setText(f"The settings of the run {run_dir.name} are back; Resume… "
                             "continues it.")

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.summary.setText("Stopping: saving a checkpoint and the model so far…")

    def _on_progress(self, data: dict[str, Any]) -> None:
        total = data.get("total")
        done = data.get("done", 0)
        if total:
            self.progress.setValue(int(1000 * min(1.0, done / total)))
            eta = data.get("eta")
            eta_text = f", {fmt.duration(eta)} left" if eta is not None else ""
            self.progress.setFormat(f"step {int(done):,} / {int(total):,}{eta_text}")
        msg = data.get("message") or ""
        if msg:
            val = (f"; validation loss {self._last_val:.3f} (perplexity "
                   f"{math.exp(min(self._last_val, 50)):.1f})" if self._last_val is not None
                   else "")
            self.summary.setText(f"{msg}{val}")

    def _on_metrics(self, points: list[tuple[str, float, float, float]]) -> None:
        for name, _step, value, _t in points:
            if name == "loss/val":
                self._last_val = value

    def _on_preview(self, kind: str, payload: Any, data: Any) -> None:
        if kind == "corpus" and isinstance(payload, dict):
            self.show_stats(payload)

    def _on_finished(self, handle: JobHandle, rec: Any) -> None:
        if handle is not self.handle:
            return
        self.handle = None
        self.train_button.setEnabled(True)
        self.resume_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if rec.state == "done":
            self.progress.setValue(1000)
            self.progress.setFormat("done")
            self.summary.setText(f"Trained {model_label(rec.result)}; it is now the chosen "
                                 "model.")
            self.result.show_result("Saved", Path(str(rec.result)),
                                    open_=self.write_wanted.emit, open_text="Write with it")
            self.model_trained.emit(str(rec.result))
        elif rec.state == "cancelled":
            self.progress.setFormat("stopped")
            model_dir = (rec.run_dir or self.last_run or Path()) / "model"
            if model_dir.exists():
                self.summary.setText("Stopped. The model so far is saved and chosen; "
                                     "Resume training… continues from the checkpoint.")
                self.result.show_result("Saved", model_dir, open_=self.write_wanted.emit,
                                        open_text="Write with it")
                self.model_trained.emit(str(model_dir))
            else:
                self.summary.setText("Stopped. Resume training… continues from the last "
                                     "checkpoint.")
        else:
            self.progress.setFormat("failed")
            self.result.show_problem(f"⚠ {rec.error}")

    def shutdown(self) -> None:
        """Keep the settings for the next session (the host also keeps them on Train)."""
        self.host.remember("train", self.form.p)
