"""Where the user writes: the message box, Send and Stop, and the bars that appear above it
(editing a message; choosing a chat format for a model that has none).

Enter sends, Shift+Enter starts a new line (as in LM Studio and Jan).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.ui.words import TEMPLATE_NAMES
from studio.widgets.panelparts import primary


class Banner(QFrame):
    """A one-line notice with buttons, shown above the message box."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(8, 4, 8, 4)
        self.row.addWidget(self.label, 1)
        self.hide()


class Composer(QWidget):
    """The message box with Send and Stop."""

    send = Signal()
    stop = Signal()
    #: the edit was cancelled
    edit_cancelled = Signal()
    #: a chat format was chosen for a model without one (built-in name)
    template_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit_bar = Banner()
        self.cancel_edit = QPushButton("Cancel")
        self.cancel_edit.clicked.connect(self.edit_cancelled.emit)
        self.edit_bar.row.addWidget(self.cancel_edit)

        self.template_bar = Banner()
        self.template_combo = QComboBox()
        for key, label in TEMPLATE_NAMES.items():
            if key:
                self.template_combo.addItem(label, key)
        self.use_template = QPushButton("Use this format")
        self.use_template.clicked.connect(
            lambda: self.template_chosen.emit(str(self.template_combo.currentData())))
        self.template_bar.row.addWidget(self.template_combo)
        self.template_bar.row.addWidget(self.use_template)

        self.box = QPlainTextEdit()
        self.box.setPlaceholderText("Write a message… (Enter sends, Shift+Enter for a new line)")
        self.box.setAccessibleName("Message")
        self.box.setFixedHeight(72)
        self.box.installEventFilter(self)
        self.send_button = primary(QPushButton("Send"))
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send.emit)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the reply now; what it wrote is kept, and can be "
                                    "continued (Esc)")
        self.stop_button.setShortcut("Escape")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop.emit)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        row = QHBoxLayout()
        row.addWidget(self.box, 1)
        row.addLayout(buttons)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.template_bar)
        lay.addWidget(self.edit_bar)
        lay.addLayout(row)

    def text(self) -> str:
        return self.box.toPlainText()

    def set_text(self, text: str) -> None:
        self.box.setPlainText(text)
        self.box.moveCursor(self.box.textCursor().MoveOperation.End)

    def set_busy(self, busy: bool) -> None:
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)

    def show_edit(self, text: str | None) -> None:
        """Show the editing bar with ``text`` (None hides it)."""
        if text is None:
            self.edit_bar.hide()
            self.send_button.setText("Send")
        else:
            self.edit_bar.label.setText(text)
            self.edit_bar.show()
            self.send_button.setText("Save")

    def ask_template(self, model_name: str | None) -> None:
        """Ask for a chat format (None hides the bar)."""
        if model_name is None:
            self.template_bar.hide()
            return
        self.template_bar.label.setText(
            f"{model_name} does not say how it expects a conversation to be written (it may "
            "be a base model rather than a chat model). Choose a format to chat with it:")
        self.template_bar.show()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.box and isinstance(event, QKeyEvent) and \
                event.type() == QEvent.Type.KeyPress:
            key = event
            if key.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                    not key.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                if self.send_button.isEnabled():
                    self.send.emit()
                return True
        return super().eventFilter(obj, event)
