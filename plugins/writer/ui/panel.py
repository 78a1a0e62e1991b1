"""The Writer panel: a model picker on top, then Write, Train and Evaluate tabs.

Thin by design: every model operation is a job (``host.submit`` with the job's params object);
the panel only keeps widgets. The model on top is the Write tab's ``model`` field (the studio's
shared model picker); Evaluate and fine-tuning use the same model. Each form's values are
remembered by the host (on submit, on a change of model, and on close).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plugins.writer.params import DownloadParams
from plugins.writer.ui.documents import DocumentStore
from plugins.writer.ui.eval_tab import EvalTab
from plugins.writer.ui.train_tab import TrainTab
from plugins.writer.ui.write_tab import WriteTab
from studio import storage
from studio.qtjobs import JobHandle
from studio.widgets.modelpicker import ModelPicker
from studio.widgets.panelparts import header


class WriterPanel(QWidget):
    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.root = host.workspace / "writer"
        self.store = DocumentStore(self.root)
        self.download_handle: JobHandle | None = None

        # -- tabs -------------------------------------------------------------------------------
        self.write_tab = WriteTab(host, self.store, self.current_model)
        self.write_tab.message.connect(lambda text: host.notify(text))
        self.train_tab = TrainTab(host, self.current_model)
        self.train_tab.model_trained.connect(self.add_model)
        self.train_tab.use_model.connect(self.add_model)
        self.eval_tab = EvalTab(host, self.current_model)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.write_tab, "Write")
        self.tabs.addTab(self.train_tab, "Train")
        self.tabs.addTab(self.eval_tab, "Evaluate")

        # -- model bar: the Write tab's model field -----------------------------------------------
        self.picker = self.write_tab.form.widget("model")
        assert isinstance(self.picker, ModelPicker)
        self.picker.setToolTip("The model used to write and evaluate, and the one fine-tuned "
                               "in the Train tab (trained models, downloads, the Hugging Face "
                               "cache; Choose… for any other model folder)")
        self.write_tab.form.changed.connect(self._on_form_changed)
        self.download_button = QPushButton("Download…")
        self.download_button.setToolTip("Download a model by its Hugging Face Hub id into the "
                                        "workspace (needs the internet; safetensors only)")
        self.download_button.clicked.connect(self._ask_download)
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Model:"))
        bar.addWidget(self.picker, 1)
        bar.addWidget(self.download_button)

        layout = QVBoxLayout(self)
        layout.addWidget(header("Writer", "Train a language model on your own writing, then "
                                "write with it."))
        layout.addLayout(bar)
        layout.addWidget(self.model_info)
        layout.addWidget(self.tabs, 1)
        host.run_reopened.connect(self._on_run_reopened)
        host.job_started.connect(self._on_job_started)
        self.train_tab.write_wanted.connect(lambda: self.tabs.setCurrentWidget(self.write_tab))
        self._show_model_info()

    # -- models ---------------------------------------------------------------------------------
    def current_model(self) -> str | None:
        model = self.write_tab.form.p.model
        return str(model) if model else None

    def add_model(self, path: str) -> None:
        """Choose ``path`` (a model just trained or downloaded, or a reopened run's base)."""
        self.write_tab.form.set_value("model", Path(path))
        self.picker.refresh()  # the library lists it once the scan has run
        self._model_changed()

    def _on_form_changed(self, name: str) -> None:
        if name == "model":
            self._model_changed()

    def _model_changed(self) -> None:
        self._show_model_info()
        self.write_tab.remember()  # the chosen model survives a crash, not only a clean exit

    def _show_model_info(self) -> None:
        path = self.current_model()
        if not path:
            self.model_info.setText("")
            return
        from plugins.common.lm.loading import inspect_model_dir
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

    def _ask_download(self) -> None:
        repo, ok = QInputDialog.getText(
            self, "Download a model",
            "Hugging Face Hub model id (safetensors only), e.g. HuggingFaceTB/SmolLM2-135M:")
        if ok and repo.strip():
            self.download(repo.strip())

    def download(self, repo_id: str) -> JobHandle:
        self.download_button.setEnabled(False)
        self.model_info.setText(f"Downloading {repo_id}…")
        handle = self.host.submit("download", DownloadParams(repo_id=repo_id), show_plots=False)
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

    # -- runs -----------------------------------------------------------------------------------
    def _on_run_reopened(self, job: str, params: Any, run_dir: Path) -> None:
        if job == "train":
            self.train_tab.reopen(params, Path(run_dir))
            self.tabs.setCurrentWidget(self.train_tab)

    def _on_job_started(self, job: str, params: Any, handle: JobHandle) -> None:
        """A training run the studio started (the welcome page's quick start) shows in the
        Train tab with its settings, as if Train had been pressed there."""
        if job == "train":
            self.train_tab.job_started(params, handle)
            self.tabs.setCurrentWidget(self.train_tab)

    def shutdown(self) -> None:
        """Called by the window on close: stop generation, save the document and settings."""
        self.write_tab.shutdown()
        self.train_tab.shutdown()
        self.eval_tab.shutdown()
