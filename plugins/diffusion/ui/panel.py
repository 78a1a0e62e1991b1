"""The diffusion plugin's panel: an Edit page (layered canvas) and a Train page, under the
header every panel has."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from studio.widgets.panelparts import header

from .edit_tab import EditTab
from .train_tab import TrainTab


class DiffusionPanel(QWidget):
    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        head = header("Diffusion editor", "Generate and repaint pictures on a layered canvas, "
                      "or train a diffusion model on your own images.")
        self.tabs = QTabWidget()
        self.edit = EditTab(host)
        self.train = TrainTab(host)
        self.tabs.addTab(self.edit, "Edit")
        self.tabs.addTab(self.train, "Train")
        self.train.use_model.connect(self._use_model)
        host.job_started.connect(self._job_started)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(head)
        lay.addWidget(self.tabs, 1)

    def _use_model(self, path: str) -> None:
        self.edit.set_model(path)
        self.tabs.setCurrentWidget(self.edit)

    def _job_started(self, job: str, params: Any, handle: Any) -> None:
        """A training run the studio started (the welcome page's quick start) shows on the
        Train page: its settings in the form, its progress and sample grids."""
        if job == "train":
            self.tabs.setCurrentWidget(self.train)
            self.train.job_started(params, handle)

    def shutdown(self) -> None:
        self.edit.shutdown()
        self.train.shutdown()
