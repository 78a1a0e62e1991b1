"""The "Improve this model" section: learn from the replies the user liked or corrected.

Runs the ``finetune`` job (a LoRA adapter through the shared engine; its loss curves go to the
Live plots dock as it trains). The new adapter is a model in the library: the section offers to
chat with it, or to compare it with the original on the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.engine.store import Store
from plugins.chat.params import FinetuneParams
from plugins.chat.ui.words import error_words
from studio.widgets.background import Background, Failed
from studio.widgets.form import Form

#: the training curves, in words
CURVES = {"loss/train": "learning", "loss/sft": "learning", "loss/val": "held-out",
          "reward/accuracy": "prefers your corrections"}


class ImproveSection(QWidget):
    #: an improved model is ready: (adapter folder, the model it improves)
    improved = Signal(object, object)

    def __init__(self, host: Any, store: Callable[[], Store | None],
                 model: Callable[[], Path | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.store = store
        self.model = model
        self.handle: Any = None
        self.result: Path | None = None
        self.base: Path | None = None
        self.bg = Background(self)
        self.form = Form(FinetuneParams, self, host.recall("finetune", FinetuneParams))
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        rows = QFormLayout()
        self.form.add_rows(rows, "method", "steps", "lora_r")
        self.start = QPushButton("Improve this model")
        self.start.setToolTip("Train a small add-on (LoRA adapter) to the chosen model on the "
                              "replies you liked and the better answers you wrote")
        self.start.clicked.connect(self.improve)
        self.stop = QPushButton("Stop")
        self.stop.setEnabled(False)
        self.stop.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.progress.hide()
        self.curves = QLabel("")
        self.curves.setWordWrap(True)
        self.use_button = QPushButton("Chat with it")
        self.use_button.clicked.connect(lambda: self.improved.emit(self.result, None))
        self.compare_button = QPushButton("Compare with original")
        self.compare_button.clicked.connect(lambda: self.improved.emit(self.result, self.base))
        for b in (self.use_button, self.compare_button):
            b.setEnabled(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start, 1)
        buttons.addWidget(self.stop)
        after = QHBoxLayout()
        after.addWidget(self.use_button)
        after.addWidget(self.compare_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addLayout(rows)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.curves)
        lay.addLayout(after)
        lay.addWidget(self.message)
        lay.addStretch(1)

    def refresh(self) -> None:
        """Count the usable feedback (off the GUI thread: it reads every rated reply)."""
        store = self.store()
        if store is None:
            return

        def count() -> Any:
            from plugins.chat.engine.feedback import collect

            return collect(store)

        self.bg.run("count", count, self._counted)

    def _counted(self, found: Any) -> None:
        if isinstance(found, Failed):
            self.summary.setText("⚠ " + error_words(str(found.error)))
            return
        if not found.items:
            self.summary.setText("Like the replies you want more of, and write a better answer "
                                 "under the ones you don't (Better answer…): this model then "
                                 "learns from them.")
        else:
            self.summary.setText(f"Learns from {found.liked} liked and {found.corrected} "
                                 "corrected replies." + (
                                     f" {found.thumbs_down_only} disliked replies without a "
                                     "better answer are left out." if found.thumbs_down_only
                                     else ""))

    def improve(self) -> Any:
        model = self.model()
        if model is None:
            self.message.setText("Choose the model to improve first.")
            return None
        if model.suffix.lower() == ".gguf":
            self.message.setText("A GGUF file cannot be trained: choose the Hugging Face "
                                 "folder it was made from.")
            return None
        p = self.form.checked(self.message, model=model)
        if p is None:
            return None
        self.base = model
        handle = self.host.submit("finetune", p, show_plots=True)
        self.handle = handle
        handle.progress.connect(self._on_progress)
        handle.metrics.connect(self._on_metrics)
        handle.finished.connect(lambda rec, h=handle: self._finished(h, rec))
        self.start.setEnabled(False)
        self.stop.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.message.setText("Learning from your feedback… (the curves are in Live plots)")
        return handle

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def _on_progress(self, info: Any) -> None:
        if not isinstance(info, dict):
            return
        done, total = info.get("done") or 0, info.get("total")
        if total:
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(done))
            self.progress.setFormat(f"step {int(done):,} of {int(total):,}")

    def _on_metrics(self, points: list[tuple[str, float, float, float]]) -> None:
        losses = [value for name, _s, value, _t in points if name in ("loss/train", "loss/sft")]
        if losses:  # the newest only: one label update per batch
            self.curves.setText(f"Error on your examples: {losses[-1]:.3f} (lower is better)")

    def _finished(self, handle: Any, rec: Any) -> None:
        if handle is not self.handle:
            return
        self.handle = None
        self.start.setEnabled(True)
        self.stop.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if rec.state == "done" else 0)
        if rec.state == "done":
            self.result = Path(rec.result.model)
            details = rec.result.details or {}
            self.message.setText(
                f"Done: learnt from {details.get('sft_examples', rec.result.examples)} examples"
                + (f" and {details.get('pairs')} preferences" if details.get("pairs") else "")
                + ". The improved model is in the model list.")
            self.use_button.setEnabled(True)
            self.compare_button.setEnabled(True)
        elif rec.state == "cancelled":
            self.message.setText("Stopped.")
        else:
            self.message.setText("⚠ " + error_words(rec.error))
