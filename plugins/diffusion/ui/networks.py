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

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
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
            self.weight.setMaximumWidth(72)
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
        _empty_text(self.picker, "None in the model library yet: Choose… a file")
        top.addWidget(self.picker, 1)
        self.add_button = QPushButton("Add")
        self.add_button.setMaximumWidth(48)
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


def _empty_text(picker: ModelPicker, text: str) -> None:
    """The picker's line when the library has none of its kind (its own says "train one")."""

    def listed(entries: list[Any]) -> None:
        if not entries and picker.combo.count():
            picker.combo.setItemText(0, text)

    picker.listed.connect(listed)
    listed(picker.entries)


class NetworksBox(QGroupBox):
    """LoRAs with weights, embeddings and the VAE, for the job's ``lora``/``embedding``/``vae``
    fields. Folded to its title until opened or given values, so the side column keeps its
    Generate button in view."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.toggle = QToolButton()
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        # its summary must not widen the side column
        self.toggle.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.toggle.toggled.connect(self.set_open)
        outer.addWidget(self.toggle)
        self.body = QWidget()
        outer.addWidget(self.body)
        lay = QVBoxLayout(self.body)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("LoRAs:"))
        self.loras = _List("lora", True, "LoRA")
        lay.addWidget(self.loras)
        lay.addWidget(QLabel("Embeddings (write the name in the prompt):"))
        self.embeddings = _List("embedding", False, "Embedding")
        lay.addWidget(self.embeddings)
        lay.addWidget(QLabel("VAE:"))
        vae_row = QHBoxLayout()
        self.vae = ModelPicker(kinds=("vae",))
        self.vae.combo.setAccessibleName("VAE")
        _empty_text(self.vae, "The model's own (no VAEs in the library)")
        vae_row.addWidget(self.vae, 1)
        self.own_vae = QToolButton()
        self.own_vae.setText("Own")
        self.own_vae.setToolTip("Decode with the model's own VAE")
        self.own_vae.clicked.connect(lambda: (self.vae.set_path(None), self.changed.emit()))
        vae_row.addWidget(self.own_vae)
        lay.addLayout(vae_row)
        self.loras.changed.connect(self.changed)
        self.embeddings.changed.connect(self.changed)
        self.vae.path_changed.connect(lambda _p: self.changed.emit())
        self.changed.connect(self._update_title)
        self.set_open(False)

    def set_open(self, open_: bool) -> None:
        self.toggle.blockSignals(True)
        self.toggle.setChecked(open_)
        self.toggle.blockSignals(False)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)
        self.body.setVisible(open_)
        self._update_title()

    def _update_title(self) -> None:
        n, e = len(self.loras.rows), len(self.embeddings.rows)
        parts = [f"{n} LoRA{'s' if n != 1 else ''}" if n else "", f"{e} TI" if e else "",
                 "VAE" if self.vae.path() is not None else ""]
        summary = ", ".join(x for x in parts if x)
        self.toggle.setText("LoRAs, embeddings, VAE" + (f" ({summary})" if summary else ""))

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
        if lora or embedding or vae is not None:
            self.set_open(True)
        self._update_title()
