"""The "Saved answers" section: intents, the classic chatbot design. Each has example phrases
and a canned answer; a message like one of the examples gets that answer before any model is
asked (a help desk on a small model)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.engine.intents import Intent
from plugins.chat.engine.store import Store
from studio.errors import UserError


class IntentsSection(QWidget):
    def __init__(self, store: Callable[[], Store | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.list = QListWidget()
        self.list.currentTextChanged.connect(self._show)
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. opening hours")
        self.examples = QPlainTextEdit()
        self.examples.setPlaceholderText("How people ask it, one per line:\nWhen are you "
                                         "open?\nWhat are your opening hours?")
        self.examples.setFixedHeight(80)
        self.answer = QPlainTextEdit()
        self.answer.setPlaceholderText("The answer they get")
        self.answer.setFixedHeight(70)
        self.enabled = QCheckBox("In use")
        self.enabled.setChecked(True)
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Questions:", self.examples)
        form.addRow("Answer:", self.answer)
        form.addRow(self.enabled)
        new = QPushButton("New")
        new.clicked.connect(self.clear)
        save = QPushButton("Save")
        save.clicked.connect(self.save)
        delete = QPushButton("Delete")
        delete.clicked.connect(self.delete)
        row = QHBoxLayout()
        for b in (new, save, delete):
            row.addWidget(b)
        self.message = QLabel("A message close to one of the questions gets the answer at "
                              "once, without the model.")
        self.message.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.list, 1)
        lay.addLayout(form)
        lay.addLayout(row)
        lay.addWidget(self.message)

    def refresh(self) -> None:
        store = self.store()
        self.list.blockSignals(True)
        self.list.clear()
        for i in store.intents() if store is not None else []:
            self.list.addItem(i.name)
        self.list.blockSignals(False)

    def _show(self, name: str) -> None:
        store = self.store()
        found = next((i for i in store.intents() if i.name == name), None) if store else None
        if found is None:
            return
        self.name.setText(found.name)
        self.examples.setPlainText("\n".join(found.examples))
        self.answer.setPlainText(found.answer)
        self.enabled.setChecked(found.enabled)

    def clear(self) -> None:
        self.list.clearSelection()
        for w in (self.name, self.examples, self.answer):
            w.clear()
        self.enabled.setChecked(True)

    def save(self) -> Intent | None:
        store = self.store()
        if store is None:
            return None
        examples = tuple(x.strip() for x in self.examples.toPlainText().splitlines()
                         if x.strip())
        try:
            intent = Intent(self.name.text().strip(), examples,
                            self.answer.toPlainText().strip(), self.enabled.isChecked())
            store.save_intent(intent)
        except UserError as exc:
            self.message.setText(f"⚠ {exc}")
            return None
        self.refresh()
        self.message.setText(f"Saved “{intent.name}”.")
        return intent

    def delete(self) -> None:
        store = self.store()
        name = self.name.text().strip()
        if store is not None and name:
            store.delete_intent(name)
            self.clear()
            self.refresh()
