"""The Train tab: choose a corpus, count it, and train a new model or fine-tune the chosen one.

Counting (the ``inspect`` job) and training (the ``train`` job) run on workers; this tab only
fills in parameters and shows what comes back. Curves go to the studio's Live plots dock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
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
    QVBoxLayout,
    QWidget,
)

from plugins.writer.engine.presets import PRESETS, param_count
from plugins.writer.ui.documents import breakable
from studio import fmt
from studio.qtjobs import JobHandle

DEFAULT_VOCAB = 2048  # shown in parameter counts until the corpus has been counted


class TrainTab(QWidget):
    """Corpus, model choice, settings, Train / Stop / Resume, live summary."""

    #: a training run finished and saved a model folder
    model_trained = Signal(str)

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

        # -- corpus -------------------------------------------------------------------------
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("a .txt/.md file or a folder of them (UTF-8)")
        self.data_edit.editingFinished.connect(self._corpus_changed)
        file_button = QPushButton("File…")
        file_button.clicked.connect(self._ask_file)
        folder_button = QPushButton("Folder…")
        folder_button.clicked.connect(self._ask_folder)
        self.count_button = QPushButton("Count")
        self.count_button.setToolTip("Count characters and tokens (and check every file is "
                                     "UTF-8) before training")
        self.count_button.clicked.connect(self.inspect_corpus)
        row = QHBoxLayout()
        row.addWidget(self.data_edit, 1)
        for b in (file_button, folder_button, self.count_button):
            row.addWidget(b)
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
        self.source.currentIndexChanged.connect(self._update_enabled)
        self.preset = QComboBox()
        self.preset.currentIndexChanged.connect(self._show_preset)
        self.preset_note = QLabel("")
        self.preset_note.setWordWrap(True)
        self.tokenizer = QComboBox()
        self.tokenizer.addItem("byte-level BPE (recommended)", "bpe")
        self.tokenizer.addItem("characters", "char")
        self.method = QComboBox()
        self.method.addItem("LoRA adapters (fast, small)", "lora")
        self.method.addItem("all weights (full)", "full")
        self.merge = QCheckBox("save LoRA merged into a full model")
        self.merge.setChecked(True)
        self.method.currentIndexChanged.connect(self._update_enabled)
        for combo in (self.source, self.preset, self.tokenizer, self.method):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
        model_form = QFormLayout()
        model_form.addRow("Model:", self.source)
        model_form.addRow("Size:", self.preset)
        model_form.addRow("", self.preset_note)
        model_form.addRow("Tokenizer:", self.tokenizer)
        model_form.addRow("Fine-tuning:", self.method)
        model_form.addRow("", self.merge)
        model_box = QGroupBox("2. Model")
        model_box.setLayout(model_form)
        self._fill_presets()

        # -- settings ---------------------------------------------------------------------------
        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000_000)
        self.steps.setValue(2000)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0, 10_000)
        self.minutes.setDecimals(1)
        self.minutes.setSpecialValueText("no limit")
        self.minutes.setToolTip("Stop after this many minutes; the learning-rate schedule then "
                                "follows the clock")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0, 1)
        self.lr.setSingleStep(0.0001)
        self.lr.setSpecialValueText("auto")
        self.batch = self._spin(0, 4096, 0, "auto")
        self.block = self._spin(0, 32768, 0, "auto")
        self.eval_every = self._spin(0, 1_000_000, 0, "auto")
        self.patience = self._spin(0, 1000, 0, "never")
        self.patience.setToolTip("Stop when the validation loss has not improved for this many "
                                 "evaluations")
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.5)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.1)
        self.seed = self._spin(0, 2**31 - 1, 0, "")
        form = QFormLayout()
        form.addRow("Steps:", self.steps)
        form.addRow("Time limit (minutes):", self.minutes)
        form.addRow("Learning rate:", self.lr)
        form.addRow("Batch size:", self.batch)
        form.addRow("Context (tokens):", self.block)
        form.addRow("Validate every (steps):", self.eval_every)
        form.addRow("Early stop patience:", self.patience)
        form.addRow("Held-out share:", self.val_fraction)
        form.addRow("Seed:", self.seed)
        settings_box = QGroupBox("3. Training")
        settings_box.setLayout(form)

        # -- run ------------------------------------------------------------------------------
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.start_training)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop now; a checkpoint and the model so far are saved")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume…")
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
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        columns = QHBoxLayout()
        columns.addWidget(model_box, 1)
        columns.addWidget(settings_box, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(corpus_box)
        layout.addLayout(columns)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self._update_enabled()

    @staticmethod
    def _spin(lo: int, hi: int, value: int, special: str) -> QSpinBox:
        w = QSpinBox()
        w.setRange(lo, hi)
        w.setValue(value)
        if special:
            w.setSpecialValueText(special)
        return w

    def _fill_presets(self) -> None:
        vocab = int(self.stats["vocab_size"]) if self.stats and self.stats.get(
            "tokenizer") in ("bpe", "char") else DEFAULT_VOCAB
        current = self.preset.currentData() or "tiny"
        self.preset.clear()
        for p in PRESETS.values():
            n = param_count(p, vocab)
            self.preset.addItem(f"{p.name}: {fmt.count(n)} parameters", p.name)
            self.preset.setItemData(self.preset.count() - 1,
                                    f"{p.layers} layers, width {p.width}, context "
                                    f"{p.block_size} tokens; {p.description}",
                                    Qt.ItemDataRole.ToolTipRole)
        self.preset.setCurrentIndex(max(0, self.preset.findData(current)))
        self._show_preset()

    def _show_preset(self, *_: Any) -> None:
        tip = self.preset.currentData(Qt.ItemDataRole.ToolTipRole)
        vocab_note = "" if self.stats else " (parameters counted for a 2,048-token vocabulary " \
            "until you Count)"
        self.preset_note.setText(f"{tip}{vocab_note}" if tip else "")

    def _update_enabled(self) -> None:
        new = self.source.currentData() == "new"
        self.preset.setEnabled(new)
        self.tokenizer.setEnabled(new)
        self.method.setEnabled(not new)
        self.merge.setEnabled(not new and self.method.currentData() == "lora")

    # -- corpus ---------------------------------------------------------------------------------
    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a text file", "",
                                              "Text (*.txt *.md *.markdown);;All files (*)")
        if path:
            self.data_edit.setText(path)
            self._corpus_changed()

    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of texts")
        if path:
            self.data_edit.setText(path)
            self._corpus_changed()

    def _corpus_changed(self) -> None:
        self.stats = None
        self.stats_label.setText("Press Count to check the text and see its size.")
        self._fill_presets()

    def inspect_corpus(self) -> JobHandle | None:
        data = self.data_edit.text().strip()
        if not data:
            self.stats_label.setText("Choose a file or folder first.")
            return None
        params: dict[str, Any] = {"data": data, "val_fraction": self.val_fraction.value()}
        if self.source.currentData() == "finetune" and self.model_path():
            params["model"] = self.model_path()
        else:
            params["tokenizer"] = self.tokenizer.currentData()
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
    def train_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "data": self.data_edit.text().strip(),
            "steps": self.steps.value(),
            "minutes": self.minutes.value(),
            "lr": self.lr.value(),
            "batch_size": self.batch.value(),
            "block_size": self.block.value(),
            "eval_every": self.eval_every.value(),
            "patience": self.patience.value(),
            "val_fraction": self.val_fraction.value(),
            "seed": self.seed.value(),
        }
        if self.source.currentData() == "new":
            p["preset"] = self.preset.currentData()
            p["tokenizer"] = self.tokenizer.currentData()
        else:
            p["model"] = self.model_path() or ""
            p["method"] = self.method.currentData()
            p["merge_lora"] = self.merge.isChecked()
        return p

    def start_training(self, resume_dir: Path | None = None) -> JobHandle | None:
        if self.handle is not None:
            return None
        params = self.train_params()
        if not params["data"]:
            self.summary.setText("Choose your text first (1.).")
            return None
        if "model" in params and not params["model"]:
            self.summary.setText("Choose a model to fine-tune at the top (Browse… or "
                                 "Download…), or train a new model.")
            return None
        if resume_dir is not None:
            params["resume"] = True
            params["out"] = str(resume_dir)
        else:
            params["out"] = str(self.host.runs_dir() / time.strftime("%Y%m%d-%H%M%S-train"))
        self.last_run = Path(params["out"])
        self._last_val = None
        handle = self.host.submit("train", params)
        self.handle = handle
        handle.progress.connect(self._on_progress)
        handle.metric.connect(self._on_metric)
        handle.preview.connect(self._on_preview)
        handle.finished.connect(lambda rec, h=handle: self._on_finished(h, rec))
        self.train_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.result_label.setText("")
        self.summary.setText("Preparing (reading the text, training the tokenizer)…")
        return handle

    def _ask_resume(self) -> None:
        start = str(self.last_run or self.host.runs_dir())
        path = QFileDialog.getExistingDirectory(self, "Choose a run folder to resume", start)
        if path:
            self.start_training(Path(path))

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

    def _on_metric(self, name: str, step: float, value: float) -> None:
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
            self.result_label.setText(f"Model saved to {breakable(rec.result)}. It is now the "
                                      "chosen model: try it in the Write tab.")
            self.model_trained.emit(str(rec.result))
        elif rec.state == "cancelled":
            self.progress.setFormat("stopped")
            model_dir = (rec.run_dir or self.last_run or Path()) / "model"
            if model_dir.exists():
                self.result_label.setText(f"Stopped. The model so far is in "
                                          f"{breakable(model_dir)}; "
                                          "Resume… continues from the checkpoint.")
                self.model_trained.emit(str(model_dir))
            else:
                self.result_label.setText("Stopped. Resume… continues from the last "
                                          "checkpoint.")
        else:
            self.progress.setFormat("failed")
            self.result_label.setText(f"⚠ {rec.error}")

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"data": self.data_edit.text(), "source": self.source.currentData(),
                "preset": self.preset.currentData(), "tokenizer": self.tokenizer.currentData(),
                "method": self.method.currentData(), "steps": self.steps.value(),
                "minutes": self.minutes.value()}

    def restore_state(self, s: dict[str, Any]) -> None:
        try:
            self.data_edit.setText(str(s.get("data", "")))
            for combo, key in ((self.source, "source"), (self.preset, "preset"),
                               (self.tokenizer, "tokenizer"), (self.method, "method")):
                idx = combo.findData(s.get(key))
                if idx >= 0:
                    combo.setCurrentIndex(idx)
            self.steps.setValue(int(s.get("steps", self.steps.value())))
            self.minutes.setValue(float(s.get("minutes", 0.0)))
        except (TypeError, ValueError):
            pass
        self._update_enabled()

    def shutdown(self) -> None:
        pass
