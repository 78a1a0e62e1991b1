"""The GAN plugin's panel: Train, Evaluate and Explore tabs around one current model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from plugins.gan.ui.eval_tab import EvalTab
from plugins.gan.ui.explore_tab import ExploreTab
from plugins.gan.ui.train_tab import TrainTab
from studio.widgets.panelparts import header


class GanPanel(QWidget):
    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        head = header("Image GAN", "Train a GAN on your own images, then explore what it "
                      "makes.")
        self.train = TrainTab(host)
        self.evaluate = EvalTab(host)
        self.explore = ExploreTab(host)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.train, "Train")
        self.tabs.addTab(self.evaluate, "Evaluate")
        self.tabs.addTab(self.explore, "Explore")
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(self.tabs, 1)
        self.train.model_ready.connect(self.use_model)
        self.train.explore_wanted.connect(lambda: self.tabs.setCurrentWidget(self.explore))
        host.run_reopened.connect(self._reopened)
        host.job_started.connect(self._job_started)
        latest = self.latest_run()
        if latest is not None:
            self.use_model(latest)

    def use_model(self, run_dir: Path) -> None:
        """Make ``run_dir`` the model of the Evaluate and Explore tabs."""
        data = None
        try:
            cfg = json.loads((Path(run_dir) / "config.json").read_text("utf-8"))
            data = (cfg.get("data") or {}).get("path")
        except (OSError, ValueError, AttributeError):
            pass
        self.evaluate.set_model(run_dir, data)
        self.explore.set_model(run_dir)

    def _reopened(self, job: str, _params: Any, run_dir: Path) -> None:
        """A reopened training run with a generator becomes the model to explore."""
        if job == "train" and (Path(run_dir) / "generator.safetensors").exists():
            self.use_model(Path(run_dir))

    def _job_started(self, job: str, params: Any, handle: Any) -> None:
        """A training run the studio started (the welcome page's quick start) shows in the
        Train tab: its settings in the form, its samples in the preview."""
        if job == "train":
            self.tabs.setCurrentWidget(self.train)
            self.train.job_started(params, handle)

    def latest_run(self) -> Path | None:
        """The newest run folder of this plugin that holds a generator (a directory listing)."""
        root = self.host.runs_dir()
        try:
            runs = [p for p in root.iterdir() if (p / "generator.safetensors").exists()]
        except OSError:
            return None
        return max(runs, key=lambda p: p.stat().st_mtime, default=None)

    def shutdown(self) -> None:
        self.train.stop()
