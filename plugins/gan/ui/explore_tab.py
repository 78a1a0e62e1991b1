"""Explore tab: seeded samples, click-to-keep, slerp strips with GIF export, GANSpace sliders.

Every picture here is made by a quick job on the "interactive" lane, so exploring never waits
behind a training run and the window never computes anything itself. Slider moves are coalesced:
at most one edit job runs at a time and only the newest slider position is rendered next.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from plugins.gan.ui.widgets import (
    ImageView,
    PathPicker,
    SampleGrid,
    ask_save,
    caption,
    to_pixmap,
)
from studio.qtjobs import JobHandle
from studio.widgets.seed import seed_button, seed_spin

N_SLIDERS = 5
SLIDER_RANGE = 30  # +-3.0 standard deviations in steps of 0.1


class ExploreTab(QWidget):
    status_changed = Signal(str)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.model_info: dict[str, Any] = {}
        self.samples: list[dict[str, Any]] = []  # what the grid shows: seed, label, edits
        self.kept: list[dict[str, Any]] = []
        self.strip_frames: np.ndarray | None = None
        self._gen_handle: JobHandle | None = None
        self._gen_pending: dict[str, Any] | None = None
        self._handles: list[JobHandle] = []  # keep references until jobs finish
        self._directions_for = ""

        # -- model and generation controls
        self.model = PathPicker("GAN run folder")
        self.model.start_dir = lambda: str(self.host.runs_dir())
        self.model.line.editingFinished.connect(lambda: self.set_model(Path(self.model.text())))
        self.model.changed.connect(self._model_text_changed)
        self.n = QSpinBox()
        self.n.setRange(1, 256)
        self.n.setValue(16)
        self.seed = seed_spin(1)
        dice = seed_button(self.seed)
        self.label = QComboBox()
        self.label.addItem("any class", None)
        self.gen_btn = QPushButton("Generate")
        self.gen_btn.clicked.connect(lambda: self.generate(False))
        # two short rows rather than one long one: the panel must fit beside the plots dock
        controls = QVBoxLayout()
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(QLabel("Images:"))
        row1.addWidget(self.n)
        row1.addWidget(QLabel("Seed:"))
        row1.addWidget(self.seed, 1)
        row1.addWidget(dice)
        row2.addWidget(QLabel("Class:"))
        row2.addWidget(self.label, 1)
        row2.addWidget(self.gen_btn)
        controls.addLayout(row1)
        controls.addLayout(row2)

        self.grid = SampleGrid()
        self.grid.clicked.connect(self.keep)
        self.grid_hint = caption("Generate samples, then click one to keep it. Kept samples can "
                                 "be exported as PNGs (with their recipe inside) or interpolated.")
        grid_box = QGroupBox("Samples")
        gl = QVBoxLayout(grid_box)
        gl.addLayout(controls)
        gl.addWidget(self.grid, 1, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        gl.addWidget(self.grid_hint)

        # -- kept samples
        self.kept_list = QListWidget()
        self.kept_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.kept_list.setIconSize(QSize(64, 64))
        self.kept_list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.kept_list.setGridSize(QSize(118, 96))
        self.kept_list.setWordWrap(True)
        self.kept_list.setFixedHeight(118)
        self.kept_list.setFlow(QListWidget.Flow.LeftToRight)
        self.kept_list.setWrapping(False)
        self.kept_list.itemSelectionChanged.connect(self._refresh)
        self.export_btn = QPushButton("Export PNG…")
        self.export_btn.clicked.connect(lambda: self.export_selected())
        self.a_btn = QPushButton("Set as A")
        self.b_btn = QPushButton("Set as B")
        self.a_btn.clicked.connect(lambda: self._set_end("a"))
        self.b_btn.clicked.connect(lambda: self._set_end("b"))
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.clicked.connect(self.remove_selected)
        self.regen_btn = QPushButton("Regenerate from PNG…")
        self.regen_btn.setToolTip("Open a PNG exported here and draw it again from its metadata")
        self.regen_btn.clicked.connect(lambda: self.ask_regenerate())
        kept_box = QGroupBox("Kept")
        kl = QVBoxLayout(kept_box)
        kl.addWidget(self.kept_list)
        kb = QHBoxLayout()
        for b in (self.a_btn, self.b_btn, self.remove_btn):
            kb.addWidget(b)
        kb.addStretch(1)
        kb2 = QHBoxLayout()
        kb2.addWidget(self.export_btn)
        kb2.addStretch(1)
        kb2.addWidget(self.regen_btn)
        kl.addLayout(kb)
        kl.addLayout(kb2)

        # -- interpolation
        self.ends: dict[str, dict[str, Any] | None] = {"a": None, "b": None}
        self.ends_label = QLabel("A: — · B: —")
        self.frames = QSpinBox()
        self.frames.setRange(2, 64)
        self.frames.setValue(10)
        self.interp_btn = QPushButton("Interpolate")
        self.interp_btn.clicked.connect(lambda: self.interpolate())
        self.gif_btn = QPushButton("Export GIF…")
        self.gif_btn.clicked.connect(lambda: self.export_gif())
        self.strip = ImageView("Keep two samples, set them as A and B, then Interpolate.")
        self.strip.setMinimumHeight(90)
        ib = QHBoxLayout()
        ib.addWidget(QLabel("Frames:"))
        ib.addWidget(self.frames)
        ib.addWidget(self.interp_btn)
        ib.addWidget(self.gif_btn)
        interp_box = QGroupBox("Interpolation (slerp)")
        il = QVBoxLayout(interp_box)
        il.addWidget(self.ends_label)
        il.addLayout(ib)
        il.addWidget(self.strip, 1)

        # -- GANSpace sliders
        self.sliders: list[QSlider] = []
        self.slider_labels: list[QLabel] = []
        sl = QGridLayout()
        for i in range(N_SLIDERS):
            s = QSlider(Qt.Orientation.Horizontal)
            s.setRange(-SLIDER_RANGE, SLIDER_RANGE)
            s.setValue(0)
            s.valueChanged.connect(self._slider_moved)
            name = QLabel(f"Direction {i + 1}")
            val = QLabel("0.0")
            val.setMinimumWidth(32)
            sl.addWidget(name, i, 0)
            sl.addWidget(s, i, 1)
            sl.addWidget(val, i, 2)
            self.sliders.append(s)
            self.slider_labels.append(name)
            s.setProperty("value_label", val)
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.clicked.connect(lambda: self.reset_sliders())
        space_box = QGroupBox("Latent directions (GANSpace)")
        spl = QVBoxLayout(space_box)
        spl.addLayout(sl)
        spl.addWidget(caption("Principal directions of the generator's first layer. Moving a "
                              "slider edits every sample in the grid live."))
        spl.addWidget(self.reset_btn, 0, Qt.AlignmentFlag.AlignRight)
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(60)
        self._edit_timer.timeout.connect(lambda: self.generate(edit=True))

        self.status = QLabel("")
        self.status.setWordWrap(True)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(grid_box, 1)
        ll.addWidget(kept_box)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(space_box)
        rl.addWidget(interp_box, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([560, 440])
        top = QFormLayout()
        top.addRow("Model:", self.model)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        self._refresh()

    # -- model --------------------------------------------------------------------------------
    def _model_text_changed(self, text: str) -> None:
        p = Path(text).expanduser()
        if text and (p / "generator.safetensors").exists() and str(p) != \
                self.model_info.get("_path"):
            self.set_model(p)

    def set_model(self, run_dir: Path) -> bool:
        """Point the tab at a run folder; reads its small config.json (no torch)."""
        run_dir = Path(run_dir).expanduser()
        try:
            cfg = json.loads((run_dir / "config.json").read_text("utf-8"))
        except (OSError, ValueError):
            self._say(f"⚠ {run_dir} is not a GAN run folder (no config.json).")
            return False
        if self.model.text() != str(run_dir):
            self.model.line.blockSignals(True)
            self.model.setText(str(run_dir))
            self.model.line.blockSignals(False)
        self.model_info = {**cfg, "_path": str(run_dir)}
        c = cfg.get("config", {})
        self.label.clear()
        self.label.addItem("any class", None)
        if c.get("num_classes"):
            for i, name in enumerate(c.get("class_names") or range(c["num_classes"])):
                self.label.addItem(str(name), i)
        self._say(f"Model: {run_dir.name} · {c.get('arch')} · step {cfg.get('step')} · "
                  f"{c.get('size')} px")
        self.reset_sliders(render=False)
        self._directions_for = ""
        if self.isVisible():
            self._load_directions()
        self._refresh()
        return True

    def showEvent(self, event: Any) -> None:
        # Directions are computed (a torch job) only once the user looks at this tab, so opening
        # the window never starts torch work.
        super().showEvent(event)
        if self.model_path and self._directions_for != self.model_path:
            self._load_directions()

    @property
    def model_path(self) -> str:
        return self.model_info.get("_path", "")

    def _load_directions(self) -> None:
        if not self.model_path or not Path(self.model_path, "generator.safetensors").exists():
            return
        self._directions_for = self.model_path
        h = self._submit("directions", {"model": self.model_path, "k": N_SLIDERS})
        h.finished.connect(self._directions_done)

    def _directions_done(self, rec: Any) -> None:
        if rec.state != "done" or not isinstance(rec.result, dict):
            return
        for i, v in enumerate(rec.result.get("explained", [])[:N_SLIDERS]):
            self.slider_labels[i].setText(f"Direction {i + 1} ({v:.0%})")

    # -- jobs ---------------------------------------------------------------------------------
    def _submit(self, job: str, params: dict[str, Any]) -> JobHandle:
        h = self.host.submit(job, params, show_plots=False)
        self._handles.append(h)
        h.finished.connect(lambda _r, h=h: self._handles.remove(h) if h in self._handles
                           else None)
        h.finished.connect(self._report_failure)
        return h

    def _report_failure(self, rec: Any) -> None:
        if rec.state == "failed":
            self._say(f"⚠ {rec.error}")

    def edits(self) -> list[float]:
        return [s.value() / 10.0 for s in self.sliders]

    def generate(self, edit: bool = False) -> None:
        """New samples (or, with ``edit``, the same samples with the sliders' edits)."""
        if not self.model_path:
            self._say("⚠ Choose a model first (a GAN run folder, or train one).")
            return
        if edit and self.samples:
            first = self.samples[0]
            params = {"model": self.model_path, "n": len(self.samples), "seed": first["seed"],
                      "label": first.get("_label_param"), "edits": self._edit_text()}
        else:
            params = {"model": self.model_path, "n": self.n.value(), "seed": self.seed.value(),
                      "label": None if self.label.currentData() is None
                      else str(self.label.currentData()), "edits": self._edit_text()}
        params = {k: v for k, v in params.items() if v is not None}
        if self._gen_handle is not None and not self._gen_handle.is_finished:
            self._gen_pending = {**params, "_edit": edit}
            return
        self._run_generate(params, edit)

    def _edit_text(self) -> str | None:
        e = self.edits()
        return ",".join(f"{v:g}" for v in e) if any(e) else None

    def _run_generate(self, params: dict[str, Any], edit: bool) -> None:
        label_param = params.get("label")
        self._gen_handle = self._submit("generate", params)
        self._gen_handle.finished.connect(
            lambda rec: self._generated(rec, edit, label_param))
        self._refresh()

    def _generated(self, rec: Any, edit: bool, label_param: str | None) -> None:
        if rec.state == "done":
            out = rec.result
            samples = [{"seed": s.seed, "label": s.label, "edits": list(s.edits),
                        "_label_param": label_param} for s in out.samples]
            names = out.model.get("classes") or []
            if edit and len(samples) == len(self.samples):
                self.grid.update_images(out.images)
            else:
                tips = [self._describe(s, names) for s in samples]
                self.grid.set_images(out.images, int(np.ceil(np.sqrt(len(samples)))), tips)
            self.samples = samples
            for s, img in zip(self.samples, out.images, strict=True):
                s["image"] = img
        pending, self._gen_pending = self._gen_pending, None
        if pending is not None:
            edit = bool(pending.pop("_edit"))
            if edit and self.samples:
                pending["edits"] = self._edit_text()
                pending = {k: v for k, v in pending.items() if v is not None}
            self._run_generate(pending, edit)
        self._refresh()

    @staticmethod
    def _describe(s: dict[str, Any], names: list[str]) -> str:
        text = f"seed {s['seed']}"
        if s.get("label") is not None:
            text += f" · class {names[s['label']] if names else s['label']}"
        if any(s.get("edits") or []):
            text += " · edits " + ",".join(f"{e:g}" for e in s["edits"])
        return text

    # -- keep / export ------------------------------------------------------------------------
    def keep(self, index: int) -> None:
        if not 0 <= index < len(self.samples):
            return
        s = dict(self.samples[index])
        self.kept.append(s)
        names = (self.model_info.get("config") or {}).get("class_names") or []
        item = QListWidgetItem(QIcon(to_pixmap(s["image"], max(1, 64 // s["image"].shape[0]))),
                               self._describe(s, names))
        self.kept_list.addItem(item)
        if self.ends["a"] is None:
            self.ends["a"] = s
        elif self.ends["b"] is None:
            self.ends["b"] = s
        self._say(f"Kept {self._describe(s, names)}.")
        self._refresh()

    def _selected(self) -> list[int]:
        return sorted(self.kept_list.row(i) for i in self.kept_list.selectedItems())

    def remove_selected(self) -> None:
        for row in reversed(self._selected()):
            s = self.kept.pop(row)
            self.kept_list.takeItem(row)
            for k, v in self.ends.items():
                if v is s:
                    self.ends[k] = None
        self._refresh()

    def _set_end(self, which: str) -> None:
        rows = self._selected()
        if rows:
            self.ends[which] = self.kept[rows[0]]
            self._refresh()

    def _sample_params(self, s: dict[str, Any]) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model_path, "seed": s["seed"]}
        if s.get("label") is not None:
            p["label"] = str(s["label"])
        if any(s.get("edits") or []):
            p["edits"] = ",".join(f"{e:g}" for e in s["edits"])
        return p

    def export_selected(self, target: Path | None = None) -> JobHandle | None:
        rows = self._selected() or ([len(self.kept) - 1] if self.kept else [])
        if not rows:
            return None
        s = self.kept[rows[0]]
        if target is None:
            target = ask_save(self, "Export sample", Path(self.model_path) /
                              f"seed-{s['seed']}.png", "PNG image (*.png)")
            if target is None:
                return None
        h = self._submit("export", {**self._sample_params(s), "out": str(target)})
        h.finished.connect(lambda rec: rec.state == "done" and
                           self._say(f"Saved {rec.result} (model, seed, class and latent are in "
                                     "its metadata)."))
        return h

    def ask_regenerate(self, png: Path | None = None) -> JobHandle | None:
        if png is None:
            from PySide6.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(self, "PNG exported by the GAN plugin",
                                                  self.model_path, "PNG image (*.png)")
            if not path:
                return None
            png = Path(path)
        h = self._submit("regenerate", {"png": str(png)})
        h.preview.connect(lambda kind, payload, _d: kind == "image" and
                          self.strip.set_image(payload))
        h.finished.connect(lambda rec: rec.state == "done" and
                           self._say(f"Regenerated into {rec.result}."))
        return h

    # -- interpolation --------------------------------------------------------------------------
    def interpolate(self, gif: Path | None = None) -> JobHandle | None:
        a, b = self.ends["a"], self.ends["b"]
        if a is None or b is None or not self.model_path:
            self._say("⚠ Keep two samples (click them) and set them as A and B.")
            return None
        p: dict[str, Any] = {"model": self.model_path, "seed_a": a["seed"], "seed_b": b["seed"],
                             "frames": self.frames.value()}
        if a.get("label") is not None:
            p["label_a"] = str(a["label"])
        if b.get("label") is not None:
            p["label_b"] = str(b["label"])
        if any(a.get("edits") or []):
            p["edits"] = ",".join(f"{e:g}" for e in a["edits"])
        if gif is not None:
            p["out"] = str(gif)
        h = self._submit("interpolate", p)
        h.finished.connect(self._interpolated)
        return h

    def _interpolated(self, rec: Any) -> None:
        if rec.state != "done":
            return
        from plugins.common.images import make_grid

        self.strip_frames = rec.result.images
        self.strip.set_image(make_grid(rec.result.images, nrow=len(rec.result.images)))
        if rec.result.path:
            self._say(f"Saved the GIF {rec.result.path}.")
        self._refresh()

    def export_gif(self, target: Path | None = None) -> JobHandle | None:
        if target is None:
            target = ask_save(self, "Export interpolation", Path(self.model_path) /
                              "interpolation.gif", "GIF animation (*.gif)")
            if target is None:
                return None
        return self.interpolate(gif=target)

    # -- sliders ------------------------------------------------------------------------------
    def _slider_moved(self, value: int) -> None:
        for s in self.sliders:
            s.property("value_label").setText(f"{s.value() / 10:.1f}")
        if self.samples:
            self._edit_timer.start()

    def reset_sliders(self, render: bool = True) -> None:
        for s in self.sliders:
            s.blockSignals(True)
            s.setValue(0)
            s.property("value_label").setText("0.0")
            s.blockSignals(False)
        if render and self.samples:
            self.generate(edit=True)

    # -- misc -----------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status_changed.emit(text)

    def _refresh(self) -> None:
        has_model = bool(self.model_path)
        self.gen_btn.setEnabled(has_model)
        sel = bool(self._selected())
        self.export_btn.setEnabled(bool(self.kept))
        self.a_btn.setEnabled(sel)
        self.b_btn.setEnabled(sel)
        self.remove_btn.setEnabled(sel)
        a, b = self.ends["a"], self.ends["b"]
        self.ends_label.setText(f"A: {'seed ' + str(a['seed']) if a else '—'} · "
                                f"B: {'seed ' + str(b['seed']) if b else '—'}")
        ready = has_model and a is not None and b is not None
        self.interp_btn.setEnabled(ready)
        self.gif_btn.setEnabled(ready)
        for s in self.sliders:
            s.setEnabled(has_model)
