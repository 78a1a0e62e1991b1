"""Evaluate tab: Fréchet distance and KID between a model's samples and real images.

The settings are a :class:`~studio.widgets.form.Form` over :class:`EvalParams` (the model field
is the shared model picker, listing the GANs the studio knows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from plugins.gan.params import EvalParams
from plugins.gan.ui.widgets import caption
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import primary


class EvalTab(QWidget):
    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.handle: JobHandle | None = None
        self.result: dict[str, Any] | None = None
        self.form = Form(EvalParams, self, host.recall("eval", EvalParams))
        self.form.changed.connect(lambda name: name == "model" and self.load_history())

        digits = QPushButton("Built-in digits")
        digits.clicked.connect(lambda: self.form.set_value("data", "digits"))
        data_row = QHBoxLayout()
        data_row.setContentsMargins(0, 0, 0, 0)
        data_row.addWidget(self.form.widget("data"), 1)
        self.form.editor("data").setPlaceholderText(  # type: ignore[attr-defined]
            "the training folder, or a held-out one")
        self.form.editor("inception").setPlaceholderText(  # type: ignore[attr-defined]
            "optional: pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
        data_row.addWidget(digits)
        data_box = QWidget()
        data_box.setLayout(data_row)
        form_box = QGroupBox("Evaluate")
        form = QFormLayout(form_box)
        self.form.add_rows(form, "model")
        form.addRow(self.form.label("data"), data_box)
        self.form.add_rows(form, "n")
        self.show_advanced = QCheckBox("Show advanced settings")
        self.advanced = QWidget()
        af = QFormLayout(self.advanced)
        af.setContentsMargins(0, 0, 0, 0)
        self.form.add_rows(af, "inception", "classifier_steps", "max_real", "seed")
        af.addRow(caption(
            "With InceptionV3 weights (pytorch-fid's file) the Fréchet distance is the FID you "
            "can compare with papers. Without them, a small classifier is trained on your real "
            "images and its features are used: a domain FD that tracks progress on this data set "
            "only."))
        self.advanced.setVisible(False)
        self.show_advanced.toggled.connect(self.advanced.setVisible)
        form.addRow(self.show_advanced)
        form.addRow(self.advanced)
        self.run_btn = primary(QPushButton("Evaluate"))
        self.run_btn.setToolTip("Fréchet distance and KID between the model's samples and "
                                "your images: lower is closer")
        self.cancel_btn = QPushButton("Stop")
        self.run_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(lambda: self.handle and self.handle.cancel())
        row = QHBoxLayout()
        row.addWidget(self.run_btn)
        row.addWidget(self.cancel_btn)
        row.addStretch(1)
        form.addRow(row)

        self.summary = QLabel("No evaluation yet.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.history = QTableWidget(0, 6)
        self.history.setHorizontalHeaderLabels(["Step", "FD", "KID", "± KID", "Feature space",
                                                "Images (real/gen)"])
        self.history.horizontalHeader().setStretchLastSection(True)
        self.history.verticalHeader().setVisible(False)
        self.history.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        res_box = QGroupBox("Results")
        rl = QVBoxLayout(res_box)
        rl.addWidget(self.summary)
        rl.addWidget(self.history, 1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(form_box)
        lay.addWidget(res_box, 1)
        self.load_history()
        self._refresh()

    def set_model(self, run_dir: Path, data: str | None = None) -> None:
        """Evaluate ``run_dir`` (and, when no real images are chosen yet, its training data)."""
        self.form.set_value("model", Path(run_dir))
        if data and not self.form.p.data:
            self.form.set_value("data", data)
        self.load_history()

    def start(self) -> JobHandle | None:
        if self.handle is not None and not self.handle.is_finished:
            return None
        if not self.form.p.model or not self.form.p.data:
            self.summary.setText("⚠ Choose a model (a GAN run folder) and the real images.")
            return None
        p = self.form.checked(self.summary)
        if p is None:
            return None
        self.handle = self.host.submit("eval", p, show_plots=False)
        self.handle.progress.connect(
            lambda d: self.summary.setText((d.get("message") or "working") + "…"))
        self.handle.finished.connect(self._finished)
        self.summary.setText("Evaluating…")
        self._refresh()
        return self.handle

    def _finished(self, rec: Any) -> None:
        if rec.state == "done" and isinstance(rec.result, dict):
            self.result = rec.result
            self.summary.setText(format_result(rec.result))
            self.load_history()
        elif rec.state == "cancelled":
            self.summary.setText("Stopped.")
        else:
            self.summary.setText(f"⚠ {rec.error}")
        self._refresh()

    def load_history(self) -> None:
        """Earlier evaluations of this model (evals.json in the run folder; a small file)."""
        self.history.setRowCount(0)
        model = self.form.p.model
        if not model:
            return
        run = Path(model).expanduser()
        run = run.parent if run.suffix == ".safetensors" else run
        try:
            rows = json.loads((run / "evals.json").read_text("utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(rows, list):
            return
        for r in reversed(rows[-50:]):
            if not isinstance(r, dict):
                continue
            i = self.history.rowCount()
            self.history.insertRow(i)
            space = ("FID · " if r.get("comparable") else "") + str(r.get("extractor"))
            cells = [str(r.get("step", "")), f"{r.get('fd', float('nan')):.3f}",
                     f"{r.get('kid', float('nan')):.5f}", f"{r.get('kid_std', float('nan')):.5f}",
                     space, f"{r.get('n_real')}/{r.get('n_fake')}"]
            for j, c in enumerate(cells):
                self.history.setItem(i, j, QTableWidgetItem(c))
        self.history.resizeColumnsToContents()

    def _refresh(self) -> None:
        busy = self.handle is not None and not self.handle.is_finished
        self.run_btn.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)


def format_result(r: dict[str, Any]) -> str:
    comparable = bool(r.get("comparable"))
    name = "FID" if comparable else "Domain FD"
    lines = [f"<b>{name} {r['fd']:.3f}</b> &nbsp; · &nbsp; <b>KID {r['kid']:.5f}</b> "
             f"± {r['kid_std']:.5f}",
             f"{r['n_fake']} generated vs {r['n_real']} real images, step {r.get('step')}, "
             f"features: {r['extractor']}"]
    if not comparable:
        acc = r.get("classifier_val_accuracy")
        lines.append("<i>Measured with a classifier trained on your images"
                     + (f" ({acc:.1%} held-out accuracy)" if isinstance(acc, float) else "")
                     + ": compare it with other runs evaluated the same way, never with "
                       "published FID.</i>")
    if isinstance(r.get("class_agreement"), float):
        lines.append(f"Samples recognised as their class: {r['class_agreement']:.1%} · "
                     f"confidently (&gt; 0.9): {r.get('confident', 0):.1%}")
    return "<br>".join(lines)
