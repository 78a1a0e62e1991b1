"""One model picker for every panel: the model library's entries of the kinds a panel uses,
plus "Choose…" for anything else on disk.

The list is filled off the GUI thread (scanning the Hugging Face cache or a large A1111 folder
touches many files) and refreshed when the picker is opened, so a model trained a minute ago is
there. The chosen path is the picker's value; a form remembers it with the job's other
settings, so each panel comes back with its last model.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QMenu,
    QToolButton,
    QWidget,
)

from studio import models as models_mod
from studio.models import ModelEntry, ModelLibrary

FILE_KINDS = {"sd-checkpoint", "lora", "embedding", "vae", "gguf"}


class ModelPicker(QWidget):
    """A combo box of models plus a Choose button.

    Args:
        kinds: model kinds to list (``studio.models.KINDS``); empty: all.
        library: the library to read (default: the one for the user's settings).
    """

    #: the chosen model changed (a ``Path``, or None)
    path_changed = Signal(object)
    #: the list was (re)filled: the entries it now offers
    listed = Signal(list)
    _scanned = Signal(object)

    def __init__(self, kinds: Iterable[str] = (), library: ModelLibrary | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kinds = tuple(kinds)
        self._library = library
        self.entries: list[ModelEntry] = []
        self._path: Path | None = None
        self._scanning = False
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(12)  # a side column stays narrow; names elide
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.currentIndexChanged.connect(self._picked)
        self.combo.setAccessibleName("Model")
        self.choose = QToolButton()
        self.choose.setText("Choose…")
        self.choose.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.choose)
        wants_files = not self.kinds or bool(set(self.kinds) & FILE_KINDS)
        wants_folders = not self.kinds or bool(set(self.kinds) - FILE_KINDS)
        if wants_folders:
            menu.addAction("Model folder…", self._choose_folder)
        if wants_files:
            menu.addAction("Model file…", self._choose_file)
        menu.addSeparator()
        menu.addAction("Look again for models", lambda: self.refresh())
        self.choose.setMenu(menu)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.combo, 1)
        lay.addWidget(self.choose)
        self._scanned.connect(self._fill)
        self._fill([])
        self.refresh()

    @property
    def library(self) -> ModelLibrary:
        return self._library or models_mod.library()

    # -- value ----------------------------------------------------------------------------------
    def path(self) -> Path | None:
        return self._path

    def set_path(self, path: str | Path | None) -> None:
        """Select ``path`` (added as "chosen by hand" when the library does not list it)."""
        self._path = Path(path).expanduser() if path else None
        self._select_current()

    def entry(self) -> ModelEntry | None:
        return next((e for e in self.entries if e.path == self._path), None)

    # -- list -----------------------------------------------------------------------------------
    def refresh(self, wait: bool = False) -> None:
        """Scan the library again (in a thread; ``wait`` for tests and first use)."""
        if self._scanning and not wait:
            return
        self._scanning = True
        lib, kinds = self.library, self.kinds or None

        def work() -> None:
            try:
                found = lib.scan(kinds, refresh=True)
            except OSError:
                found = []
            self._scanned.emit(found)

        if wait:
            work()
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.processEvents()
        else:
            threading.Thread(target=work, name="studio-model-scan", daemon=True).start()

    def _fill(self, entries: list[ModelEntry]) -> None:
        self._scanning = False
        self.entries = list(entries)
        self.combo.blockSignals(True)
        self.combo.clear()
        if not self.entries:
            self.combo.addItem("No models found yet: train one, or choose a file or folder",
                               None)
        for e in self.entries:
            self.combo.addItem(_label(e), str(e.path))
            self.combo.setItemData(self.combo.count() - 1, _tooltip(e), Qt.ItemDataRole.ToolTipRole)
        self.combo.blockSignals(False)
        self._select_current()
        self.listed.emit(list(self.entries))

    def _select_current(self) -> None:
        self.combo.blockSignals(True)
        try:
            if self._path is None:
                self.combo.setCurrentIndex(0 if not self.entries else -1)
                if self.entries:
                    self.combo.setPlaceholderText("Choose a model")
                return
            i = self.combo.findData(str(self._path))
            if i < 0:
                self.combo.addItem(f"{self._path.name} (chosen by hand)", str(self._path))
                i = self.combo.count() - 1
            self.combo.setCurrentIndex(i)
            tip = self.combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
            self.combo.setToolTip(tip or self._path.name)
        finally:
            self.combo.blockSignals(False)

    def _picked(self, index: int) -> None:
        data = self.combo.itemData(index)
        new = Path(data) if data else None
        if new != self._path:
            self._path = new
            self.path_changed.emit(new)

    def _choose_folder(self) -> None:
        start = str(self._path or self.library.workspace)
        path = QFileDialog.getExistingDirectory(self, "Choose a model folder", start)
        if path:
            self._choose(path)

    def _choose_file(self) -> None:
        start = str(self._path or self.library.workspace)
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", start,
                                              "Models (*.safetensors *.gguf);;All files (*)")
        if path:
            self._choose(path)

    def _choose(self, path: str) -> None:
        self.set_path(path)
        self.path_changed.emit(self._path)


def _label(e: ModelEntry) -> str:
    return f"{e.name}  ·  {e.source_label}"


def _tooltip(e: ModelEntry) -> str:
    parts: list[Any] = [e.kind_label, e.source_label]
    if e.info.get("base"):
        parts.append(e.info["base"])
    if e.size:
        parts.append(models_mod.human_size(e.size))
    if e.modified:
        parts.append(dt.datetime.fromtimestamp(e.modified).strftime("%d %b %Y %H:%M"))
    if e.info.get("data"):
        parts.append(f"trained on {e.info['data']}")
    return " · ".join(str(p) for p in parts)
