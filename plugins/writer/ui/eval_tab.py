"""The Evaluate tab: perplexity and bits per character of the chosen model on held-out text.

Its settings are the ``eval`` job's :class:`~plugins.writer.params.EvalParams` form; the model
is the one chosen at the top of the panel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.writer.params import EvalParams
from plugins.writer.ui.cards import dropped_corpus
from plugins.writer.ui.documents import model_label
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import primary

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
        self.form = Form(EvalParams, self, host.recall("eval", EvalParams))

        for button in self.form.widget("data").findChildren(QPushButton):
            button.setText("File…")  # the form's browse button; this row also has Folder…
            button.setMaximumWidth(16777215)
        cast(QLineEdit, self.form.editor("data")).setPlaceholderText(
            "a held-out .txt/.md file or a folder of them")
        folder = QPushButton("Folder…")
        folder.setToolTip("A folder of held-out .txt/.md files")
        folder.clicked.connect(self._ask_folder)
        row = QHBoxLayout()
        row.addWidget(self.form.widget("data"), 1)
        row.addWidget(folder)
        self.eval_button = primary(QPushButton("Evaluate"))
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
        form.addRow(self.form.label("data"), row)
        self.form.add_rows(form, "window", "stride")
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
        self.setAcceptDrops(True)

    # -- a held-out text file or folder dropped here is the text to evaluate on -------------
    def dragEnterEvent(self, event: Any) -> None:
        if dropped_corpus(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        path = dropped_corpus(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.form.set_value("data", path)

    def _ask_folder(self) -> None:
        start = str(self.form.p.data or "")
        path = QFileDialog.getExistingDirectory(self, "Folder of held-out texts", start)
        if path:
            self.form.set_value("data", Path(path))

    def evaluate(self) -> JobHandle | None:
        model = self.model_path()
        if not model:
            self.detail.setText("Choose a model at the top first.")
            return None
        if self.form.p.data is None:
            self.detail.setText("Choose the held-out text first.")
            return None
        params = self.form.checked(self.detail, model=Path(model))
        if params is None:
            return None
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
                            f"model {model_label(r['model'])}")
        self.detail.setToolTip(str(r["model"]))

    def shutdown(self) -> None:
        """Keep the settings for the next session."""
        self.host.remember("eval", self.form.p)
