"""Settings: compute device, CPU threads, workspace folder, model folders and theme."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio import device, storage
from studio.settings import DEVICES, THEMES, Settings


class SettingsDialog(QDialog):
    def __init__(self, current: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self._current = current
        self.device = QComboBox()
        labels = {"auto": "Automatic (CUDA, then Apple MPS, then CPU)", "cuda": "CUDA GPU",
                  "mps": "Apple MPS", "cpu": "CPU"}
        for d in DEVICES:
            self.device.addItem(labels[d], d)
        self.device.setCurrentIndex(DEVICES.index(current.device))
        self.threads = QSpinBox()
        self.threads.setRange(0, max(64, device.cpu_count()))
        self.threads.setSpecialValueText("Automatic")
        self.threads.setValue(current.cpu_threads)
        self.threads.setToolTip(f"This machine has {device.cpu_count()} logical CPUs")
        self.workspace = QLineEdit(current.workspace)
        self.workspace.setPlaceholderText(str(storage.default_workspace()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        ws_row = QHBoxLayout()
        ws_row.addWidget(self.workspace, 1)
        ws_row.addWidget(browse)
        self.folders = QListWidget()
        self.folders.setMaximumHeight(96)
        self.folders.addItems(current.model_folders)
        self.folders.setToolTip("Folders searched for models you already have: an A1111 or "
                                "ComfyUI models folder, a folder of .gguf files, ...")
        add = QPushButton("Add folder…")
        add.clicked.connect(self._add_folder)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: [self.folders.takeItem(self.folders.row(i))
                                        for i in self.folders.selectedItems()])
        folder_buttons = QVBoxLayout()
        folder_buttons.addWidget(add)
        folder_buttons.addWidget(remove)
        folder_buttons.addStretch(1)
        folders_row = QHBoxLayout()
        folders_row.addWidget(self.folders, 1)
        folders_row.addLayout(folder_buttons)
        self.theme = QComboBox()
        for t in THEMES:
            self.theme.addItem(t.capitalize(), t)
        self.theme.setCurrentIndex(THEMES.index(current.theme))

        self.notify = QCheckBox("Tell me when a long job finishes while the studio is in the "
                                "background")
        self.notify.setChecked(current.notify_when_done)
        browse.setToolTip("Choose the workspace folder")

        form = QFormLayout()
        form.addRow("Compute &device:", self.device)
        form.addRow("CPU &threads:", self.threads)
        form.addRow("&Workspace folder:", ws_row)
        form.addRow("&Model folders:", folders_row)
        form.addRow("T&heme:", self.theme)
        form.addRow("Notifications:", self.notify)
        # rows whose field is a layout: their mnemonic goes to the editor in it
        ws_label = form.labelForField(ws_row)
        if isinstance(ws_label, QLabel):
            ws_label.setBuddy(self.workspace)
        folders_label = form.labelForField(folders_row)
        if isinstance(folders_label, QLabel):
            folders_label.setBuddy(self.folders)
        note = QLabel("Device and threads apply to jobs started after saving.")
        note.setObjectName("placeholder")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Workspace folder",
                                                  self.workspace.text() or str(Path.home()))
        if folder:
            self.workspace.setText(folder)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of models", str(Path.home()))
        if folder and folder not in self.model_folders():
            self.folders.addItem(folder)

    def model_folders(self) -> list[str]:
        return [self.folders.item(i).text() for i in range(self.folders.count())]

    def result_settings(self) -> Settings:
        return replace(self._current, device=self.device.currentData(),
                       cpu_threads=self.threads.value(), workspace=self.workspace.text().strip(),
                       theme=self.theme.currentData(), model_folders=self.model_folders(),
                       notify_when_done=self.notify.isChecked())

    def _accept(self) -> None:
        s = self.result_settings()
        if s.workspace:
            try:
                Path(s.workspace).expanduser().mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                QMessageBox.warning(self, "Workspace folder",
                                    f"Cannot use {s.workspace} as the workspace: {exc}")
                return
        self.accept()
