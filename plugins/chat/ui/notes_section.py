"""The "Notes" section: pinned notes that always stay in this chat's context, and memory
notes shared by every chat (only those the user ticks reach a prompt)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.engine.store import Store
from studio.errors import UserError

ID = Qt.ItemDataRole.UserRole


class NotesSection(QWidget):
    def __init__(self, store: Callable[[], Store | None], chat: Callable[[], int | None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.chat = chat
        self.pinned = QListWidget()
        self.pinned.setWordWrap(True)
        self.pinned.setToolTip("Always in this chat's context, however long it gets "
                               "(double-click to edit)")
        self.pinned.itemChanged.connect(self._pinned_edited)
        self.pin_text = QLineEdit()
        self.pin_text.setPlaceholderText("A fact to keep in mind, e.g. “My cat is called Miso”")
        self.pin_text.returnPressed.connect(self.pin)
        pin = QPushButton("Pin")
        pin.clicked.connect(self.pin)
        unpin = QPushButton("Unpin")
        unpin.clicked.connect(self.unpin)
        self.memory = QListWidget()
        self.memory.setWordWrap(True)
        self.memory.setToolTip("Notes for every chat: only ticked notes are given to the model")
        self.memory.itemChanged.connect(self._memory_ticked)
        self.memory_text = QLineEdit()
        self.memory_text.setPlaceholderText("Something every chat should know")
        self.memory_text.returnPressed.connect(self.remember)
        add = QPushButton("Add")
        add.clicked.connect(self.remember)
        forget = QPushButton("Forget")
        forget.clicked.connect(self.forget)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        row1 = QHBoxLayout()
        row1.addWidget(self.pin_text, 1)
        row1.addWidget(pin)
        row1.addWidget(unpin)
        row2 = QHBoxLayout()
        row2.addWidget(self.memory_text, 1)
        row2.addWidget(add)
        row2.addWidget(forget)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<b>Pinned in this chat</b>"))
        lay.addWidget(self.pinned, 1)
        lay.addLayout(row1)
        lay.addWidget(QLabel("<b>Memory across chats</b> (ticked notes are used)"))
        lay.addWidget(self.memory, 1)
        lay.addLayout(row2)
        lay.addWidget(self.message)

    def refresh(self) -> None:
        store, chat = self.store(), self.chat()
        self.pinned.blockSignals(True)
        self.pinned.clear()
        if store is not None and chat is not None:
            for n in store.pinned_notes(chat):
                item = QListWidgetItem(n.text)
                item.setData(ID, n.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.pinned.addItem(item)
        self.pinned.blockSignals(False)
        self.memory.blockSignals(True)
        self.memory.clear()
        if store is not None:
            for m in store.memories(approved_only=False):
                item = QListWidgetItem(m.text)
                item.setData(ID, m.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if m.approved
                                   else Qt.CheckState.Unchecked)
                self.memory.addItem(item)
        self.memory.blockSignals(False)

    def pin(self) -> None:
        store, chat = self.store(), self.chat()
        text = self.pin_text.text().strip()
        if store is None or not text:
            return
        if chat is None:
            self.message.setText("Start a chat first: pinned notes belong to a chat.")
            return
        store.pin_note(chat, text)
        self.pin_text.clear()
        self.message.setText("")
        self.refresh()

    def unpin(self) -> None:
        store, item = self.store(), self.pinned.currentItem()
        if store is not None and item is not None:
            store.unpin(int(item.data(ID)))
            self.refresh()

    def _pinned_edited(self, item: QListWidgetItem) -> None:
        store = self.store()
        if store is None:
            return
        try:
            store.edit_note(int(item.data(ID)), item.text())
        except UserError as exc:
            self.message.setText(f"⚠ {exc}")
        self.refresh()

    def remember(self) -> None:
        store = self.store()
        text = self.memory_text.text().strip()
        if store is None or not text:
            return
        store.add_memory(text, source_chat_id=self.chat(), approved=True)
        self.memory_text.clear()
        self.refresh()

    def forget(self) -> None:
        store, item = self.store(), self.memory.currentItem()
        if store is not None and item is not None:
            store.delete_memory(int(item.data(ID)))
            self.refresh()

    def _memory_ticked(self, item: QListWidgetItem) -> None:
        store = self.store()
        if store is not None:
            store.approve_memory(int(item.data(ID)),
                                 item.checkState() == Qt.CheckState.Checked)
