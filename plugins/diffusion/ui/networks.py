"""The editor's "LoRAs, embeddings, VAE" box: what an artist adds to a checkpoint, chosen from
the model library (the same picker every panel uses, listing only LoRAs, embeddings or VAEs).

LoRAs are a list, each with its weight; embeddings a list (their file name is the word to write
in the prompt); the VAE one choice or the model's own. The values are the job's ``lora``,
``embedding`` and ``vae`` fields (``FILE:WEIGHT`` strings, paths), passed to the form when the
editor builds its params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.diffusion.engine.adapters import format_lora, parse_lora
from studio.widgets.modelpicker import ModelPicker


class _Row(QWidget):
    removed = Signal(object)

    def __init__(self, path: Path, weight: float | None) -> None:
        super().__init__()
        self.path = path
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        name = QLabel(path.stem)
        name.setToolTip(path.name)
        lay.addWidget(name, 1)
        self.weight: QDoubleSpinBox | None = None
        if weight is not None:
            self.weight = QDoubleSpinBox()
            self.weight.setRange(-4.0, 4.0)
            self.weight.setSingleStep(0.05)
            self.weight.setDecimals(2)
            self.weight.setValue(weight)
            self.weight.setToolTip("How strongly the LoRA applies (A1111's <lora:name:weight>)")
            lay.addWidget(self.weight)
        rm = QToolButton()
        rm.setText("✕")
        rm.setToolTip(f"Remove {path.stem}")
        rm.clicked.connect(lambda: self.removed.emit(self))
        lay.addWidget(rm)


class _List(QWidget):
    """A picker, an Add button and the chosen files (with weights for LoRAs)."""

    changed = Signal()

    def __init__(self, kind: str, weights: bool, what: str) -> None:
        super().__init__()
        self.weights = weights
        self.rows: list[_Row] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.picker = ModelPicker(kinds=(kind,))
        self.picker.combo.setAccessibleName(what)
        top.addWidget(self.picker, 1)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip(f"Add the chosen {what.lower()}")
        self.add_button.clicked.connect(self._add_picked)
        top.addWidget(self.add_button)
        lay.addLayout(top)
        self.rows_box = QVBoxLayout()
        lay.addLayout(self.rows_box)

    def _add_picked(self) -> None:
        path = self.picker.path()
        if path is not None:
            self.add(path, 1.0)
            self.changed.emit()

    def add(self, path: Path, weight: float = 1.0) -> None:
        for row in self.rows:
            if row.path == path:
                if row.weight is not None:
                    row.weight.setValue(weight)
                return
        row = _Row(path, weight if self.weights else None)
        row.removed.connect(self._remove)
        if row.weight is not None:
            row.weight.valueChanged.connect(lambda _v: self.changed.emit())
        self.rows.append(row)
        self.rows_box.addWidget(row)

    def _remove(self, row: _Row) -> None:
        self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        self.changed.emit()

    def clear(self) -> None:
        for row in list(self.rows):
            self.rows.remove(row)
            row.setParent(None)
            row.deleteLater()


class NetworksBox(QGroupBox):
    """LoRAs with weights, embeddings and the VAE, for the job's ``lora``/``embedding``/``vae``
    fields."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("LoRAs, embeddings, VAE", parent)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("LoRAs:"))
        self.loras = _List("lora", True, "LoRA")
        lay.addWidget(self.loras)
        lay.addWidget(QLabel("Embeddings (write the name in the prompt):"))
        self.embeddings = _List("embedding", False, "Embedding")
        lay.addWidget(self.embeddings)
        vae_row = QHBoxLayout()
        vae_row.addWidget(QLabel("VAE:"))
        self.vae = ModelPicker(kinds=("vae",))
        self.vae.combo.setAccessibleName("VAE")
        vae_row.addWidget(self.vae, 1)
        self.own_vae = QToolButton()
        self.own_vae.setText("Model's own")
        self.own_vae.setToolTip("Decode with the model's own VAE")
        self.own_vae.clicked.connect(lambda: (self.vae.set_path(None), self.changed.emit()))
        vae_row.addWidget(self.own_vae)
        lay.addLayout(vae_row)
        self.loras.changed.connect(self.changed)
        self.embeddings.changed.connect(self.changed)
        self.vae.path_changed.connect(lambda _p: self.changed.emit())

    def values(self) -> dict[str, Any]:
        """The job fields: ``lora`` (``FILE:WEIGHT``), ``embedding`` (files), ``vae``."""
        from plugins.diffusion.engine.adapters import LoraSpec

        lora = [format_lora(LoraSpec(r.path, r.weight.value() if r.weight else 1.0))
                for r in self.loras.rows]
        return {"lora": lora, "embedding": [str(r.path) for r in self.embeddings.rows],
                "vae": self.vae.path()}

    def set_values(self, lora: list[str], embedding: list[str], vae: Path | None) -> None:
        self.loras.clear()
        for text in lora or []:
            spec = parse_lora(text)
            self.loras.add(spec.path, spec.weight)
        self.embeddings.clear()
        for e in embedding or []:
            self.embeddings.add(Path(e))
        self.vae.set_path(vae)
