"""The diffusion plugin's panel: an Edit page (layered canvas) and a Train page."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from .edit_tab import EditTab
from .train_tab import TrainTab


class DiffusionPanel(QWidget):
    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.tabs = QTabWidget()
        self.edit = EditTab(host)
        self.train = TrainTab(host)
        self.tabs.addTab(self.edit, "Edit")
        self.tabs.addTab(self.train, "Train")
        self.train.use_model.connect(self._use_model)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs)

    def _use_model(self, path: str) -> None:
        self.edit.set_model(path)
        self.tabs.setCurrentWidget(self.edit)

    def shutdown(self) -> None:
        self.edit.shutdown()
        self.train.shutdown()
