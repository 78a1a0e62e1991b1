"""The Writer panel: a model chooser on top, then Write, Train and Evaluate tabs.

Thin by design: every model operation is a job (``host.submit``); the panel only keeps widgets,
remembers the user's choices (``<workspace>/writer/panel.json``) and lists model folders by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plugins.writer.ui.documents import DocumentStore
from plugins.writer.ui.eval_tab import EvalTab
from plugins.writer.ui.train_tab import TrainTab
from plugins.writer.ui.write_tab import WriteTab
from studio import storage
from studio.qtjobs import JobHandle

STATE_FILE = "panel.json"
MAX_RECENT = 12


class WriterPanel(QWidget):
    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.root = host.workspace / "writer"
        self.store = DocumentStore(self.root)
        self.download_handle: JobHandle | None = None
        self._recent: list[str] = []

        # -- model bar --------------------------------------------------------------------------
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(240)
        self.model_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(20)
        self.model_combo.setToolTip("The model used to write and evaluate, and the one "
                                    "fine-tuned in the Train tab")
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        browse = QPushButton("Browse…")
        browse.setToolTip("A local Hugging Face model folder (config.json + .safetensors), a "
                          "LoRA adapter folder or a writer run folder")
        browse.clicked.connect(self._ask_model)
        self.download_button = QPushButton("Download…")
        self.download_button.setToolTip("Download a model by its Hugging Face Hub id into the "
                                        "workspace (needs the internet; safetensors only)")
        self.download_button.clicked.connect(self._ask_download)
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Model:"))
        bar.addWidget(self.model_combo, 1)
        bar.addWidget(browse)
        bar.addWidget(self.download_button)

        # -- tabs -------------------------------------------------------------------------------
        self.write_tab = WriteTab(host, self.store, self.current_model)
        self.write_tab.message.connect(lambda text: host.notify(text))
        self.train_tab = TrainTab(host, self.current_model)
        self.train_tab.model_trained.connect(self.add_model)
        self.eval_tab = EvalTab(host, self.current_model)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.write_tab, "Write")
        self.tabs.addTab(self.train_tab, "Train")
        self.tabs.addTab(self.eval_tab, "Evaluate")

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.model_info)
        layout.addWidget(self.tabs, 1)

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(1500)
        self._save_timer.timeout.connect(self.save_state)
        self._restore()

    # -- models ---------------------------------------------------------------------------------
    def current_model(self) -> str | None:
        data = self.model_combo.currentData()
        return str(data) if data else None

    def refresh_models(self, select: str | None = None) -> None:
        """List downloaded and trained models plus the ones the user browsed to."""
        from plugins.writer.engine.loading import find_models

        select = select or self.current_model()
        paths = [str(p) for p in find_models(self.host.workspace)]
        for r in self._recent:
            if r not in paths and Path(r).exists():
                paths.append(r)
        if select and select not in paths:
            paths.insert(0, select)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        if not paths:
            self.model_combo.addItem("(no model yet: train one, or Browse…)", None)
        for p in paths:
            self.model_combo.addItem(self._label(Path(p)), p)
        idx = self.model_combo.findData(select) if select else 0
        self.model_combo.setCurrentIndex(max(0, idx))
        self.model_combo.blockSignals(False)
        self._on_model_changed()

    def _label(self, p: Path) -> str:
        ws = self.host.workspace
        try:
            rel = p.relative_to(ws)
            parts = rel.parts
            if parts[:2] == ("runs", "writer"):
                return f"trained: {parts[2]}"
            if parts[:1] == ("models",):
                return f"downloaded: {parts[1].replace('--', '/')}"
        except ValueError:
            pass
        return f"{p.name}  ({p.parent})"

    def add_model(self, path: str) -> None:
        path = str(Path(path))
        if path in self._recent:
            self._recent.remove(path)
        self._recent.insert(0, path)
        del self._recent[MAX_RECENT:]
        self.refresh_models(select=path)
        self.save_state()

    def _on_model_changed(self, *_: Any) -> None:
        path = self.current_model()
        if not path:
            self.model_info.setText("")
            return
        from plugins.writer.engine.loading import inspect_model_dir
        from studio.errors import UserError

        try:
            info = inspect_model_dir(path)
            text = info.describe()
            studio_json = info.path / "studio.json"
            if studio_json.exists():
                meta = storage.read_json(studio_json)
                if meta.get("val_loss") is not None:
                    text += f"; validation loss {float(meta['val_loss']):.3f}"
            self.model_info.setText(text)
        except (UserError, OSError, ValueError) as exc:
            self.model_info.setText(f"⚠ {exc}")
        self._save_timer.start()

    def _ask_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a model folder",
                                                str(self.host.workspace))
        if path:
            self.add_model(path)

    def _ask_download(self) -> None:
        repo, ok = QInputDialog.getText(
            self, "Download a model",
            "Hugging Face Hub model id (safetensors only), e.g. HuggingFaceTB/SmolLM2-135M:")
        if ok and repo.strip():
            self.download(repo.strip())

    def download(self, repo_id: str) -> JobHandle:
        self.download_button.setEnabled(False)
        self.model_info.setText(f"Downloading {repo_id}…")
        handle = self.host.submit("download", {"repo_id": repo_id}, show_plots=False)
        self.download_handle = handle
        handle.finished.connect(self._on_downloaded)
        return handle

    def _on_downloaded(self, rec: Any) -> None:
        self.download_button.setEnabled(True)
        self.download_handle = None
        if rec.state == "done":
            self.add_model(str(rec.result))
        else:
            self.model_info.setText(f"⚠ Download failed: {rec.error or rec.state}")

    # -- state ----------------------------------------------------------------------------------
    def _restore(self) -> None:
        try:
            state = storage.read_json(self.root / STATE_FILE)
        except (OSError, ValueError):
            state = {}
        if not isinstance(state, dict):
            state = {}
        self._recent = [str(r) for r in state.get("recent_models", []) if isinstance(r, str)]
        self.write_tab.restore_state(state.get("write", {}))
        self.train_tab.restore_state(state.get("train", {}))
        self.eval_tab.restore_state(state.get("eval", {}))
        self.refresh_models(select=state.get("model"))

    def save_state(self) -> None:
        state = {"model": self.current_model(), "recent_models": self._recent,
                 "write": self.write_tab.state(), "train": self.train_tab.state(),
                 "eval": self.eval_tab.state()}
        try:
            storage.atomic_write_json(self.root / STATE_FILE, state)
        except OSError as exc:
            self.host.log(f"could not save the writer panel's settings: {exc}", "warning")

    def shutdown(self) -> None:
        """Called by the window on close: stop generation, save the document and settings."""
        self.write_tab.shutdown()
        self.train_tab.shutdown()
        self.save_state()
