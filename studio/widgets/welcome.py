"""The welcome page: one card per plugin, each starting a useful job in one click.

Shown on the first start (and from Help > Welcome). A card says what the plugin does, what its
one-click job makes and what to expect (time, where results appear). The job is the plugin's
own, run through its PanelHost with its typed params (``Plugin.quick_start``); nothing here
imports a plugin: the params class is named by a light module path and loaded on click.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.errors import UserError
from studio.registry import PluginRecord


class Card(QFrame):
    """One plugin: icon, name, description, the quick start's promise and its button."""

    def __init__(self, rec: PluginRecord, icon: QIcon, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomeCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.rec = rec
        plugin = rec.plugin
        qs = plugin.quick_start if plugin is not None else None
        head = QHBoxLayout()
        pic = QLabel()
        pic.setPixmap(icon.pixmap(QSize(32, 32)))
        name = QLabel(rec.name)
        name.setObjectName("cardTitle")
        head.addWidget(pic)
        head.addWidget(name, 1)
        about = QLabel(plugin.description if plugin is not None else
                       f"Disabled: {rec.error}")
        about.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addWidget(about)
        self.expect = QLabel(qs.expect if qs is not None else "")
        self.expect.setObjectName("caption")
        self.expect.setWordWrap(True)
        self.expect.setVisible(qs is not None)
        lay.addWidget(self.expect)
        lay.addStretch(1)
        self.error = QLabel()
        self.error.setObjectName("warning")
        self.error.setWordWrap(True)
        self.error.hide()
        lay.addWidget(self.error)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open")
        self.open_button.setAccessibleName(f"Open {rec.name}")
        self.open_button.setToolTip(f"Go to {rec.name}")
        self.open_button.setEnabled(rec.ok)
        row.addWidget(self.open_button)
        row.addStretch(1)
        self.start_button: QPushButton | None = None
        if qs is not None and rec.ok:
            self.start_button = QPushButton(qs.title.replace("&", "&&"))
            self.start_button.setObjectName("primary")
            self.start_button.setToolTip(qs.expect)
            row.addWidget(self.start_button)
        lay.addLayout(row)


class WelcomePage(QWidget):
    """Cards for every plugin. ``start(plugin_id)`` runs its quick start through ``submit``
    (the window's: it opens the panel and queues the job on the panel's host)."""

    opened = Signal(str)  # plugin id: the user chose "Open"

    def __init__(self, records: list[PluginRecord], icon_for: Callable[[PluginRecord], QIcon],
                 submit: Callable[[str, str, object], object],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit = submit
        self.cards: dict[str, Card] = {}
        title = QLabel("Welcome to Generative Studio")
        title.setObjectName("pluginTitle")
        intro = QLabel("Everything runs on this computer, on your own data. Each card starts a "
                       "small job right away on data that comes with the studio, so you can see "
                       "what the plugin does before using your own. Progress shows at the "
                       "bottom of the window, curves on the right as soon as there are some.")
        intro.setWordWrap(True)
        grid = QGridLayout()
        grid.setSpacing(12)
        shown = [r for r in records if r.plugin is not None or r.error]
        for i, rec in enumerate(shown):
            card = Card(rec, icon_for(rec))
            card.open_button.clicked.connect(lambda _=False, pid=rec.id: self.opened.emit(pid))
            if card.start_button is not None:
                card.start_button.clicked.connect(lambda _=False, pid=rec.id: self.start(pid))
            grid.addWidget(card, i // 3, i % 3)
            self.cards[rec.id] = card
        for c in range(3):
            grid.setColumnStretch(c, 1)
        content = QWidget()
        inner = QVBoxLayout(content)
        inner.addWidget(title)
        inner.addWidget(intro)
        inner.addSpacing(8)
        inner.addLayout(grid)
        inner.addStretch(1)
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        area.setWidget(content)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(area)

    def start(self, plugin_id: str) -> object | None:
        """Build the quick start's params (typed, checked) and submit its job; a value that
        does not fit is shown on the card, in words."""
        card = self.cards[plugin_id]
        plugin = card.rec.plugin
        qs = plugin.quick_start if plugin is not None else None
        if qs is None:
            return None
        try:
            params = qs.build()
        except (UserError, ImportError, AttributeError, TypeError, ValueError) as exc:
            card.error.setText(f"This example cannot start: {exc}")
            card.error.show()
            return None
        card.error.hide()
        return self._submit(plugin_id, qs.job, params)
