"""The left column: every chat (newest first), search across all of them, and what can be
done to a chat (new, rename, delete, export, import).

The list only shows; the panel owns the store and answers :attr:`ChatList.action`. Search runs
as the user pauses typing (SQLite full-text search: milliseconds), listing matching messages
with their chat's title; choosing one opens that chat on that message's branch.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.engine.records import Chat, SearchHit
from plugins.chat.ui.words import when

SEARCH_MS = 250
CHAT_ROLE = Qt.ItemDataRole.UserRole
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 1


class ChatList(QWidget):
    #: a chat was chosen (chat id)
    chosen = Signal(int)
    #: a search hit was chosen (chat id, message id)
    hit_chosen = Signal(int, int)
    #: (what, chat id): new, import, rename, delete, export_md, export_json (id 0: none)
    action = Signal(str, int)
    #: the search text changed (after a pause)
    search_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.current: int | None = None
        self.new_button = QPushButton("New chat")
        self.new_button.setToolTip("Start a new chat with the chosen persona (Ctrl+N)")
        self.new_button.setShortcut("Ctrl+N")
        self.new_button.clicked.connect(lambda: self.action.emit("new", 0))
        self.more = QToolButton()
        self.more.setText("More")
        self.more.setToolTip("Rename, export or delete the chosen chat; import a chat")
        self.more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.more.setMenu(self._menu())
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search all chats")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_MS)
        self._search_timer.timeout.connect(lambda: self.search_changed.emit(self.search.text()))
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemActivated.connect(self._clicked)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.hint = QLabel("")
        self.hint.setWordWrap(True)
        self.hint.setObjectName("chatListHint")
        top = QHBoxLayout()
        top.addWidget(self.new_button, 1)
        top.addWidget(self.more)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.search)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.hint)

    def _menu(self, chat_id: int | None = None) -> QMenu:
        menu = QMenu(self)

        def add(label: str, what: str) -> None:
            menu.addAction(label, lambda: self.action.emit(
                what, chat_id if chat_id is not None else (self.current or 0)))

        add("Rename…", "rename")
        add("Export as Markdown (to read)…", "export_md")
        add("Export as JSON (to keep)…", "export_json")
        add("Delete…", "delete")
        menu.addSeparator()
        menu.addAction("Import a chat…", lambda: self.action.emit("import", 0))
        return menu

    # -- filling --------------------------------------------------------------------------------
    @property
    def searching(self) -> bool:
        return bool(self.search.text().strip())

    def fill(self, chats: Sequence[Chat], current: int | None) -> None:
        """Show the chats (unless a search is shown) and select ``current``."""
        self.current = current
        if self.searching:
            return
        self.list.clear()
        for c in chats:
            item = QListWidgetItem(f"{c.title or 'New chat'}\n{when(c.updated)}")
            item.setData(CHAT_ROLE, c.id)
            item.setToolTip(c.title or "New chat")
            self.list.addItem(item)
            if c.id == current:
                self.list.setCurrentItem(item)
        self.hint.setText("" if chats else "No chats yet: write a message to start one.")

    def show_hits(self, hits: Sequence[SearchHit], text: str) -> None:
        self.list.clear()
        for h in hits:
            who = "You" if h.role == "user" else "Reply"
            snippet = " ".join(h.snippet.replace("**", "").split())
            item = QListWidgetItem(f"{h.chat_title or 'New chat'}\n{who}: {snippet}")
            item.setData(CHAT_ROLE, h.chat_id)
            item.setData(MESSAGE_ROLE, h.message_id)
            item.setToolTip(html.escape(snippet))
            self.list.addItem(item)
        self.hint.setText(f"No message contains “{text}”." if not hits else
                          f"{len(hits)} message{'s' if len(hits) != 1 else ''} found.")

    def chat_ids(self) -> list[int]:
        return [int(self.list.item(i).data(CHAT_ROLE)) for i in range(self.list.count())]

    # -- events ---------------------------------------------------------------------------------
    def _clicked(self, item: QListWidgetItem) -> None:
        chat_id = item.data(CHAT_ROLE)
        if chat_id is None:
            return
        message_id = item.data(MESSAGE_ROLE)
        if message_id is not None:
            self.hit_chosen.emit(int(chat_id), int(message_id))
        else:
            self.chosen.emit(int(chat_id))

    def _context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None or item.data(CHAT_ROLE) is None:
            return
        self._menu(int(item.data(CHAT_ROLE))).exec(self.list.mapToGlobal(pos))
