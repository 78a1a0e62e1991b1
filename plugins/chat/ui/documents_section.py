"""The "Documents" section: folders of .txt/.md/.pdf files attached to this chat. Adding one
runs the ``index`` job (the folder is only ever read); replies then cite the passages they
were given by file name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.engine.store import Store
from plugins.chat.params import IndexParams
from plugins.chat.ui.words import error_words

PATH = Qt.ItemDataRole.UserRole


class DocumentsSection(QWidget):
    def __init__(self, host: Any, store: Callable[[], Store | None],
                 chat: Callable[[], int | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.store = store
        self.chat = chat
        self.handle: Any = None
        self.folders = QListWidget()
        self.folders.setToolTip("Folders this chat reads from")
        self.add_button = QPushButton("Add a folder…")
        self.add_button.clicked.connect(self._ask_folder)
        self.reindex_button = QPushButton("Read again")
        self.reindex_button.setToolTip("Read the chosen folder again (new or changed files)")
        self.reindex_button.clicked.connect(self._reindex)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("This chat stops using the folder (its files stay as "
                                      "they are)")
        self.remove_button.clicked.connect(self.remove)
        self.message = QLabel("Add a folder of .txt, .md or .pdf files: replies use the "
                              "passages that fit the question and name the files they come "
                              "from.")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.reindex_button)
        row.addWidget(self.remove_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.folders, 1)
        lay.addLayout(row)
        lay.addWidget(self.message)

    def refresh(self) -> None:
        store, chat = self.store(), self.chat()
        self.folders.clear()
        if store is None or chat is None:
            return
        for f in store.folders(chat):
            item = QListWidgetItem(f.name + ("" if f.is_dir() else " (no longer there)"))
            item.setData(PATH, str(f))
            self.folders.addItem(item)

    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A folder of documents")
        if path:
            self.add_folder(Path(path))

    def _reindex(self) -> None:
        item = self.folders.currentItem()
        if item is not None:
            self.add_folder(Path(str(item.data(PATH))))

    def add_folder(self, folder: Path) -> Any:
        chat = self.chat()
        if chat is None:
            self.message.setText("Start a chat first: documents belong to a chat.")
            return None
        self.message.setText(f"Reading {folder.name}…")
        self.add_button.setEnabled(False)
        handle = self.host.submit("index", IndexParams(folder=folder, chat=chat),
                                  show_plots=False, remember=False)
        self.handle = handle
        handle.progress.connect(lambda info: self.message.setText(
            f"Reading {folder.name}: {info.get('done', 0)} of {info.get('total') or '?'} files"
            if isinstance(info, dict) and info.get("total") else f"Reading {folder.name}…"))
        handle.finished.connect(lambda rec: self._indexed(folder, rec))
        return handle

    def _indexed(self, folder: Path, rec: Any) -> None:
        self.handle = None
        self.add_button.setEnabled(True)
        if rec.state == "done":
            self.message.setText(f"{folder.name}: {rec.result}")
        else:
            self.message.setText("⚠ " + error_words(rec.error))
        self.refresh()

    def remove(self) -> None:
        store, chat, item = self.store(), self.chat(), self.folders.currentItem()
        if store is None or chat is None or item is None:
            return
        store.detach_folder(chat, str(item.data(PATH)))
        self.refresh()
