"""The Evaluate tab: perplexity and bits per character of the chosen model on held-out text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from plugins.writer.ui.documents import breakable
from studio.qtjobs import JobHandle

EXPLAIN = ("Perplexity: how many tokens the model hesitates between, on average (lower is "
           "better; it depends on the tokenizer). Bits per character: how many yes/no questions "
           "per character the model needs to guess the text (lower is better; comparable "
           "between any two models on the same text). Use text the model was not trained on.")


class EvalTab(QWidget):
    def __init__(self, host: Any, model_path: Callable[[], str | None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.model_path = model_path
        self.handle: JobHandle | None = None
        self.result: dict[str, Any] | None = None

        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("held-out .txt/.md file or folder")
        browse = QPushButton("File…")
        browse.clicked.connect(self._ask_file)
        folder = QPushButton("Folder…")
        folder.clicked.connect(self._ask_folder)
        row = QHBoxLayout()
        row.addWidget(self.data_edit, 1)
        row.addWidget(browse)
        row.addWidget(folder)
        self.window_spin = QSpinBox()
        self.window_spin.setRange(0, 32768)
        self.window_spin.setSpecialValueText("model's context")
        self.stride_spin = QSpinBox()
        self.stride_spin.setRange(0, 32768)
        self.stride_spin.setSpecialValueText("no overlap")
        self.eval_button = QPushButton("Evaluate")
        self.eval_button.clicked.connect(self.evaluate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.eval_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)

        self.ppl = QLabel("—")
        self.bpc = QLabel("—")
        self.npc = QLabel("—")
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        for label in (self.ppl, self.bpc):
            f = label.font()
            f.setPointSize(f.pointSize() + 6)
            f.setBold(True)
            label.setFont(f)
        results = QFormLayout()
        results.addRow("Perplexity:", self.ppl)
        results.addRow("Bits per character:", self.bpc)
        results.addRow("Nats per character:", self.npc)

        form = QFormLayout()
        form.addRow("Text:", row)
        form.addRow("Window (tokens):", self.window_spin)
        form.addRow("Stride (tokens):", self.stride_spin)
        explain = QLabel(EXPLAIN)
        explain.setWordWrap(True)
        explain.setTextFormat(Qt.TextFormat.PlainText)
        layout = QVBoxLayout(self)
        layout.addWidget(explain)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(results)
        layout.addWidget(self.detail)
        layout.addStretch(1)

    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Held-out text", "",
                                              "Text (*.txt *.md *.markdown);;All files (*)")
        if path:
            self.data_edit.setText(path)

    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of held-out texts")
        if path:
            self.data_edit.setText(path)

    def evaluate(self) -> JobHandle | None:
        model = self.model_path()
        data = self.data_edit.text().strip()
        if not model:
            self.detail.setText("Choose a model at the top first.")
            return None
        if not data:
            self.detail.setText("Choose the held-out text first.")
            return None
        params = {"model": model, "data": data, "window": self.window_spin.value(),
                  "stride": self.stride_spin.value()}
        self.handle = self.host.submit("eval", params, show_plots=False)
        h = self.handle
        h.progress.connect(lambda d: self.detail.setText(
            f"Scoring… {100 * d.get('done', 0) / max(1e-9, d.get('total') or 1):.0f}%"))
        h.finished.connect(lambda rec, h=h: self._on_finished(h, rec))
        self.eval_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.detail.setText("Loading the model…")
        return h

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def _on_finished(self, handle: JobHandle, rec: Any) -> None:
        if handle is not self.handle:
            return
        self.handle = None
        self.eval_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if rec.state != "done":
            self.detail.setText(f"⚠ {rec.error}" if rec.error else "Stopped.")
            return
        r = rec.result
        self.result = dict(r)
        self.ppl.setText(f"{r['perplexity']:.2f}")
        self.bpc.setText(f"{r['bits_per_char']:.4f}")
        self.npc.setText(f"{r['nats_per_char']:.4f}")
        self.detail.setText(f"{r['tokens']:,} tokens, {r['chars']:,} characters in "
                            f"{r['files']} file(s); window {r['window']}, stride {r['stride']}; "
                            f"model {breakable(r['model'])}")

    def state(self) -> dict[str, Any]:
        return {"data": self.data_edit.text()}

    def restore_state(self, s: dict[str, Any]) -> None:
        self.data_edit.setText(str(s.get("data", "")))
