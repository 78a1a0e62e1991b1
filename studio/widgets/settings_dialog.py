"""Settings: compute device, CPU threads, workspace folder, model folders, theme and the
prepared-data cache (its size limit and "Clear caches")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
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
from studio.cache import PrepCache
from studio.fmt import human_bytes
from studio.settings import DEVICES, THEMES, Settings


class SettingsDialog(QDialog):
    def __init__(self, current: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(600)
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
        self.cache_limit = QDoubleSpinBox()
        self.cache_limit.setRange(0.0, 10_000.0)
        self.cache_limit.setSingleStep(0.5)
        self.cache_limit.setDecimals(1)
        self.cache_limit.setSuffix(" GB")
        self.cache_limit.setSpecialValueText("Off")
        self.cache_limit.setValue(float(current.cache_limit_gb))
        why = ("Images and texts a training run prepared (decoded, resized, tokenised) are "
               "kept, so the next run on the same files starts at once. Your own files are "
               "never changed; an edited file is prepared again.")
        self.cache_limit.setToolTip(why)
        self.cache_used = QLabel()
        self.cache_used.setToolTip(why)
        self.clear_cache = QPushButton("Clear caches")
        self.clear_cache.setToolTip("Delete the prepared data now (it is made again when needed)")
        self.clear_cache.clicked.connect(self._clear_caches)
        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache_limit)
        cache_row.addWidget(self.cache_used, 1)
        cache_row.addWidget(self.clear_cache)
        self._show_cache_use()

        form = QFormLayout()
        form.addRow("Compute &device:", self.device)
        form.addRow("CPU &threads:", self.threads)
        form.addRow("&Workspace folder:", ws_row)
        form.addRow("&Model folders:", folders_row)
        form.addRow("T&heme:", self.theme)
        form.addRow("Notifications:", self.notify)
        form.addRow("Prepared &data:", cache_row)
        # rows whose field is a layout: their mnemonic goes to the editor in it
        ws_label = form.labelForField(ws_row)
        if isinstance(ws_label, QLabel):
            ws_label.setBuddy(self.workspace)
        folders_label = form.labelForField(folders_row)
        if isinstance(folders_label, QLabel):
            folders_label.setBuddy(self.folders)
        cache_label = form.labelForField(cache_row)
        if isinstance(cache_label, QLabel):
            cache_label.setBuddy(self.cache_limit)
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

    def _cache(self) -> PrepCache:
        return PrepCache.of_workspace(self._current.workspace_path(),
                                      float(self._current.cache_limit_gb))

    def _show_cache_use(self, prefix: str = "") -> None:
        used = self._cache().size()
        self.cache_used.setText(prefix + (f"{human_bytes(used)} kept now" if used else
                                          "nothing kept now"))
        self.clear_cache.setEnabled(used > 0)

    def _clear_caches(self) -> None:
        freed = self._cache().clear()
        self._show_cache_use(f"Cleared {human_bytes(freed)}; " if freed else "")

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
                       notify_when_done=self.notify.isChecked(),
                       cache_limit_gb=round(self.cache_limit.value(), 1))

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
