"""The "Persona" section: who the assistant is and how it samples, saved in the chat database.

A persona is the engine's :class:`~plugins.chat.engine.personas.Persona` (validated there, so a
value out of range says which one); personas travel as JSON files (import/export), read and
written only when the user asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.engine.personas import (
    DEFAULT_PERSONA,
    Persona,
    Sampler,
    export_personas,
    import_personas,
)
from plugins.chat.engine.store import Store
from plugins.chat.ui.words import TONES
from studio.errors import UserError


class PersonaSection(QWidget):
    #: the persona to chat with changed
    chosen = Signal(object)

    def __init__(self, store: Callable[[], Store | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.pick = QComboBox()
        self.pick.setToolTip("The persona this chat uses (and new chats)")
        self.pick.activated.connect(lambda _i: self._picked())
        self.name = QLineEdit()
        self.system = QPlainTextEdit()
        self.system.setPlaceholderText("Instructions: who the assistant is and how it answers")
        self.system.setFixedHeight(80)
        self.greeting = QLineEdit()
        self.greeting.setPlaceholderText("Its first words in a new chat (optional)")
        self.tone = QComboBox()
        for key, label in TONES.items():
            self.tone.addItem(label, key)
        self.temperature = _dspin(0.0, 5.0, 0.05, "0 always picks the likeliest word; higher "
                                  "is more adventurous")
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 100_000)
        self.top_k.setSpecialValueText("no limit")
        self.top_k.setToolTip("Choose among this many likeliest tokens (0: no limit)")
        self.top_p = _dspin(0.01, 1.0, 0.05, "Choose among the likeliest tokens that together "
                            "make up this share (1: off)")
        self.min_p = _dspin(0.0, 1.0, 0.01, "Leave out tokens less likely than this share of "
                            "the likeliest one (0: off)")
        self.repetition = _dspin(0.5, 3.0, 0.05, "Repetition penalty: above 1 discourages "
                                 "repeating itself")
        self.length = QSpinBox()
        self.length.setRange(1, 32_768)
        self.length.setSuffix(" tokens")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.fresh_seed = QCheckBox("fresh each reply")
        self.fresh_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))
        self.stop = QLineEdit()
        self.stop.setPlaceholderText("texts that end a reply, separated by |")
        form = QFormLayout()
        form.addRow("Persona:", self.pick)
        form.addRow("Name:", self.name)
        form.addRow("Instructions:", self.system)
        form.addRow("Greeting:", self.greeting)
        form.addRow("Tone:", self.tone)
        form.addRow("Temperature:", self.temperature)
        form.addRow("Top-k:", self.top_k)
        form.addRow("Top-p:", self.top_p)
        form.addRow("Min-p:", self.min_p)
        form.addRow("Repetition:", self.repetition)
        form.addRow("Reply length:", self.length)
        form.addRow("Seed:", self.seed)
        form.addRow("", self.fresh_seed)
        form.addRow("Stop at:", self.stop)
        self.save_button = QPushButton("Save")
        self.save_button.setToolTip("Save this persona under its name (a new name makes a new "
                                    "persona)")
        self.save_button.clicked.connect(self.save)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete)
        self.import_button = QPushButton("Import…")
        self.import_button.clicked.connect(self._ask_import)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._ask_export)
        buttons = QGridLayout()
        for i, b in enumerate((self.save_button, self.delete_button, self.import_button,
                               self.export_button)):
            buttons.addWidget(b, i // 2, i % 2)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.message)
        lay.addStretch(1)
        self.show_persona(DEFAULT_PERSONA)

    # -- list -----------------------------------------------------------------------------------
    def refresh(self, current: str | None = None) -> None:
        store = self.store()
        names = [p.name for p in store.personas()] if store is not None else []
        current = current or self.pick.currentData() or DEFAULT_PERSONA.name
        self.pick.blockSignals(True)
        self.pick.clear()
        if DEFAULT_PERSONA.name not in names:
            self.pick.addItem(f"{DEFAULT_PERSONA.name} (built in)", DEFAULT_PERSONA.name)
        for n in names:
            self.pick.addItem(n, n)
        self.pick.setCurrentIndex(max(self.pick.findData(current), 0))
        self.pick.blockSignals(False)

    def persona_named(self, name: str) -> Persona:
        store = self.store()
        if store is not None and name in {p.name for p in store.personas()}:
            return store.persona(name)
        return DEFAULT_PERSONA

    def _picked(self) -> None:
        persona = self.persona_named(str(self.pick.currentData()))
        self.show_persona(persona)
        self.chosen.emit(persona)

    def select(self, name: str) -> None:
        """Show the persona a chat uses (without announcing it)."""
        self.refresh(name)
        self.show_persona(self.persona_named(name))

    # -- editing --------------------------------------------------------------------------------
    def show_persona(self, p: Persona) -> None:
        s = p.sampler
        self.name.setText(p.name)
        self.system.setPlainText(p.system_prompt)
        self.greeting.setText(p.greeting)
        self.tone.setCurrentIndex(max(self.tone.findData(p.tone), 0))
        self.temperature.setValue(s.temperature)
        self.top_k.setValue(s.top_k)
        self.top_p.setValue(s.top_p)
        self.min_p.setValue(s.min_p)
        self.repetition.setValue(s.repetition_penalty)
        self.length.setValue(s.max_new_tokens)
        self.fresh_seed.setChecked(s.seed is None)
        self.seed.setValue(s.seed or 0)
        self.stop.setText(" | ".join(x.replace("\n", "\\n") for x in s.stop))
        self.message.setText("")

    def edited(self) -> Persona:
        """The persona as the fields show it (validated: a UserError names the bad field)."""
        stop = tuple(x.strip().replace("\\n", "\n") for x in self.stop.text().split("|")
                     if x.strip())
        sampler = replace(Sampler(), temperature=self.temperature.value(),
                          top_k=self.top_k.value(), top_p=self.top_p.value(),
                          min_p=self.min_p.value(),
                          repetition_penalty=self.repetition.value(),
                          seed=None if self.fresh_seed.isChecked() else self.seed.value(),
                          stop=stop, max_new_tokens=self.length.value())
        return Persona(name=" ".join(self.name.text().split()),
                       system_prompt=self.system.toPlainText().strip(),
                       greeting=self.greeting.text().strip(),
                       tone=str(self.tone.currentData()),  # type: ignore[arg-type]
                       sampler=sampler).validate()

    def save(self) -> Persona | None:
        store = self.store()
        if store is None:
            return None
        try:
            p = self.edited()
            store.save_persona(p)
        except UserError as exc:
            self.message.setText(f"⚠ {exc}")
            return None
        self.refresh(p.name)
        self.message.setText(f"Saved “{p.name}”.")
        self.chosen.emit(p)
        return p

    def delete(self) -> None:
        store = self.store()
        name = str(self.pick.currentData())
        if store is None or name not in {p.name for p in store.personas()}:
            self.message.setText("The built-in persona cannot be deleted.")
            return
        store.delete_persona(name)
        self.refresh(DEFAULT_PERSONA.name)
        self.show_persona(DEFAULT_PERSONA)
        self.message.setText(f"Deleted “{name}”.")
        self.chosen.emit(DEFAULT_PERSONA)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import personas", "", "Personas (*.json)")
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> list[Persona]:
        store = self.store()
        if store is None:
            return []
        try:
            found = import_personas(path)
            for p in found:
                store.save_persona(p)
        except UserError as exc:
            self.message.setText(f"⚠ {exc}")
            return []
        self.refresh(found[0].name)
        self.show_persona(found[0])
        self.chosen.emit(found[0])
        self.message.setText("Imported " + ", ".join(f"“{p.name}”" for p in found) + ".")
        return found

    def _ask_export(self) -> None:
        try:
            p = self.edited()
        except UserError as exc:
            self.message.setText(f"⚠ {exc}")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export persona", f"{p.name}.json",
                                              "Personas (*.json)")
        if path:
            self.export_file(Path(path).with_suffix(".json"))

    def export_file(self, path: Path) -> Path | None:
        try:
            out = export_personas([self.edited()], path)
        except (UserError, OSError) as exc:
            self.message.setText(f"⚠ {exc}")
            return None
        self.message.setText(f"Exported as {out.name}.")
        return out


def _dspin(low: float, high: float, step: float, tip: str) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(low, high)
    s.setSingleStep(step)
    s.setDecimals(2)
    s.setToolTip(tip)
    return s
