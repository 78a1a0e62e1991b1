"""The model box: which trained model the generation jobs use, and what that model is.

The choice is the sample form's ``model`` field, drawn by the shared model picker (studio runs,
the workspace, the user's model folders, "Choose…" for anything else), so it is remembered with
the other sampling settings. Variations, interpolation and loading use the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from plugins.music.engine import config as cfg_mod
from studio.storage import read_json
from studio.widgets.form import Form


def is_model_folder(path: Path | None) -> bool:
    return path is not None and (path / cfg_mod.CONFIG_FILE).is_file() \
        and (path / cfg_mod.MODEL_FILE).is_file()


def newest_model(runs_dir: Path) -> Path | None:
    """The most recently trained model among the plugin's runs (a few stat calls: cheap enough
    for the GUI thread, unlike a scan of the whole model library)."""
    if not runs_dir.is_dir():
        return None
    found = [((d / cfg_mod.MODEL_FILE).stat().st_mtime_ns, d) for d in runs_dir.iterdir()
             if is_model_folder(d)]
    return max(found)[1] if found else None


class ModelBox(QGroupBox):
    """The model picker and a few words about the chosen model.

    Args:
        form: the sample job's form (its ``model`` field is the panel's model).
        runs_dir: the plugin's runs folder: with no model remembered (or a remembered one that
            is gone), the newest trained there is chosen.
    """

    #: the chosen model changed (picked, trained, or reopened)
    changed = Signal()

    def __init__(self, form: Form, runs_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.form = form
        lay = QVBoxLayout(self)
        self.picker = form.widget("model")
        lay.addWidget(self.picker)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        if not is_model_folder(self.path()):
            form.set_value("model", newest_model(runs_dir) or form.p.model)
        form.changed.connect(self._field_changed)
        self.show_info()

    def path(self) -> Path | None:
        """The model folder (runs recorded before model kinds existed list their weights
        file: its folder is the model)."""
        path = Path(self.form.p.model) if self.form.p.model else None
        if path is not None and path.suffix == ".safetensors" and path.is_file():
            return path.parent
        return path

    def set_path(self, path: str | Path | None) -> None:
        """Choose a model from code (a run that just finished, a reopened run)."""
        self.form.set_value("model", Path(path) if path else None)
        refresh = getattr(self.picker, "refresh", None)
        if callable(refresh):  # list a model trained a moment ago by its run's name
            refresh()
        self.show_info()
        self.changed.emit()

    def config(self) -> dict[str, Any]:
        """The chosen model's config.json ({} when there is none or it is unreadable)."""
        path = self.path()
        if path is None:
            return {}
        try:
            conf = read_json(path / cfg_mod.CONFIG_FILE)
        except (OSError, ValueError):
            return {}
        return conf if isinstance(conf, dict) else {}

    def _field_changed(self, name: str) -> None:
        if name == "model":
            self.show_info()
            self.changed.emit()

    def show_info(self) -> None:
        conf = self.config()
        if not conf:
            self.info.setText("No model yet: train one below (the built-in Bach chorales work "
                              "out of the box), or choose a model folder.")
            return
        m = conf.get("model", {})
        ev = conf.get("evaluation") or {}
        kind = {"melody": "melodies", "pianoroll": "piano rolls", "audio": "sounds"}.get(
            str(m.get("mode")), str(m.get("mode")))
        length = f"{m.get('bars')} bars" if m.get("mode") == "audio" else \
            f"{m.get('bars')} bars of {m.get('metre') or '4/4'}"
        bits = [f"{kind} · {length} · latent {m.get('latent')}",
                f"trained {conf.get('trained_steps', '?')} steps"]
        if "sampled_accuracy" in ev:
            bits.append(f"held-out accuracy {ev.get('tf_accuracy', 0):.3f} teacher-forced, "
                        f"{ev['sampled_accuracy']:.3f} sampled")
        source = (conf.get("data") or {}).get("source")
        if source:
            name = "the Bach chorales" if source == "bach" else Path(str(source)).name
            bits.append(f"learnt from {name}")
        self.info.setText("\n".join(bits))
