"""Explore tab: seeded samples, click-to-keep, slerp strips with GIF export, GANSpace sliders.

Every picture here is made by a quick job on the "interactive" lane, so exploring never waits
behind a training run and the window never computes anything itself. Slider moves are coalesced:
at most one edit job runs at a time and only the newest slider position is rendered next.

The jobs' settings are typed objects (``plugins.gan.params``): the model picker, image count,
seed and frame count are :class:`~studio.widgets.form.Form` widgets; the class, the kept
samples and the slider values are what this tab supplies (a class by its name, the edits as a
list of numbers).
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
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from plugins.gan.engine.results import Generated
from plugins.gan.params import (
    DirectionsParams,
    ExportParams,
    GenerateParams,
    InterpolateParams,
    RegenerateParams,
)
from plugins.gan.ui.widgets import (
    ImageView,
    SampleGrid,
    ask_save,
    caption,
    dropped_png,
    to_pixmap,
)
from studio.qtjobs import JobHandle
from studio.widgets.form import Form
from studio.widgets.panelparts import primary

N_SLIDERS = 5
SLIDER_RANGE = 30  # +-3.0 standard deviations in steps of 0.1
MAX_GRID = 256  # tiles the grid shows at once (the command line makes up to 4096)
GENERATOR = "generator.safetensors"


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
        self._gen_pending: tuple[GenerateParams, bool] | None = None
        self._handles: list[JobHandle] = []  # keep references until jobs finish
        self._directions_for = ""
        self.form = Form(GenerateParams, self, host.recall("generate", GenerateParams))
        self.interp_form = Form(InterpolateParams, self,
                                host.recall("interpolate", InterpolateParams))
        self.form.changed.connect(self._form_changed)

        # -- model and generation controls
        self.model = self.form.widget("model")
        self.n = self.form.editor("n")
        self.n.setMaximum(MAX_GRID)
        self.seed = self.form.editor("seed")
        self.label = QComboBox()
        self.label.addItem("any class", None)
        self.gen_btn = primary(QPushButton("Generate"))
        self.gen_btn.clicked.connect(lambda: self.generate(False))
        # two short rows rather than one long one: the panel must fit beside the plots dock
        controls = QVBoxLayout()
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(QLabel(self.form.label("n")))
        row1.addWidget(self.n)
        row1.addWidget(QLabel(self.form.label("seed")))
        row1.addWidget(self.form.widget("seed"), 1)
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
        self.regen_btn.setToolTip("Open a PNG exported here and draw it again from its metadata "
                                  "(or drop the PNG onto this tab)")
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
        self.frames = self.interp_form.editor("frames")
        self.frames.setMaximum(64)
        self.interp_btn = QPushButton("Interpolate")
        self.interp_btn.clicked.connect(lambda: self.interpolate())
        self.gif_btn = QPushButton("Export GIF…")
        self.gif_btn.clicked.connect(lambda: self.export_gif())
        self.strip = ImageView("Keep two samples, set them as A and B, then Interpolate.")
        self.strip.setMinimumHeight(90)
        ib = QHBoxLayout()
        ib.addWidget(QLabel(self.interp_form.label("frames")))
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
        self.form.add_rows(top, "model")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        host.run_reopened.connect(self._reopened)
        self.setAcceptDrops(True)
        if self.form.p.model:
            self.set_model(self.form.p.model)
        self._refresh()

    # -- model --------------------------------------------------------------------------------
    def _form_changed(self, name: str) -> None:
        if name == "model":  # picked in the model picker
            if self.form.p.model:
                self.set_model(self.form.p.model)
            else:
                self.model_info = {}
                self._refresh()

    def _reopened(self, job: str, params: Any, run_dir: Path) -> None:
        """A reopened Explore job's settings come back (a training run's model is set by the
        panel)."""
        if job == "generate" and isinstance(params, GenerateParams):
            self.form.set(params)
        elif job == "interpolate" and isinstance(params, InterpolateParams):
            self.interp_form.set(params)

    def set_model(self, model: Path) -> bool:
        """Point the tab at a run folder (or its generator file); reads its small config.json
        (no torch)."""
        run_dir = Path(model).expanduser()
        if run_dir.suffix == ".safetensors":
            run_dir = run_dir.parent
        try:
            cfg = json.loads((run_dir / "config.json").read_text("utf-8"))
        except (OSError, ValueError):
            self._say(f"⚠ {run_dir.name} is not a GAN run folder (it has no config.json).")
            self.model_info = {}
            self._refresh()
            return False
        if self.form.p.model != run_dir:
            self.form.set_value("model", run_dir)
        self.model_info = {**cfg, "_path": str(run_dir)}
        c = cfg.get("config", {})
        self.label.clear()
        self.label.addItem("any class", None)
        if c.get("num_classes"):
            for name in c.get("class_names") or [str(i) for i in range(c["num_classes"])]:
                self.label.addItem(str(name), str(name))
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
        if not self.model_path or not Path(self.model_path, GENERATOR).exists():
            return
        self._directions_for = self.model_path
        h = self._submit("directions", DirectionsParams(model=Path(self.model_path), k=N_SLIDERS))
        h.finished.connect(self._directions_done)

    def _directions_done(self, rec: Any) -> None:
        if rec.state != "done" or not isinstance(rec.result, dict):
            return
        for i, v in enumerate(rec.result.get("explained", [])[:N_SLIDERS]):
            self.slider_labels[i].setText(f"Direction {i + 1} ({v:.0%})")

    # -- jobs ---------------------------------------------------------------------------------
    def _submit(self, job: str, params: Any, remember: bool = True) -> JobHandle:
        """Queue one of the plugin's jobs. Live slider renders are not remembered as the
        job's last settings: that would write the settings file at every slider move."""
        if remember:
            h = self.host.submit(job, params, show_plots=False)
        else:
            h = self.host.manager.submit(self.host.plugin_id, self.host.plugin.job(job), params)
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

    def _class_name(self, label: int | None) -> str | None:
        """A class index as the name the jobs take (a name, unlike an index, cannot be
        mistaken for another class when the class folders are numbers)."""
        if label is None:
            return None
        names = (self.model_info.get("config") or {}).get("class_names") or []
        return str(names[label]) if label < len(names) else str(label)

    def generate(self, edit: bool = False) -> None:
        """New samples (or, with ``edit``, the same samples with the sliders' edits)."""
        if not self.model_path:
            self._say("⚠ Choose a model first (a GAN run folder, or train one).")
            return
        if edit and self.samples:
            first = self.samples[0]
            p = self.form.checked(self.status, model=Path(self.model_path),
                                  n=len(self.samples), seed=first["seed"],
                                  label=first.get("_label_param"), edits=self.edits())
        else:
            p = self.form.checked(self.status, model=Path(self.model_path),
                                  label=self.label.currentData(), edits=self.edits(), out=None)
        if p is None:
            return
        if self._gen_handle is not None and not self._gen_handle.is_finished:
            self._gen_pending = (p, edit)
            return
        self._run_generate(p, edit)

    def _run_generate(self, p: GenerateParams, edit: bool) -> None:
        self._gen_handle = self._submit("generate", p, remember=not edit)
        self._gen_handle.finished.connect(lambda rec: self._generated(rec, edit, p.label))
        self._refresh()

    def _generated(self, rec: Any, edit: bool, label_param: str | None) -> None:
        if rec.state == "done" and isinstance(rec.result, Generated):
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
            p, edit = pending
            if edit and self.samples:  # the newest slider position, on the current samples
                p.edits = self.edits()
            self._run_generate(p, edit)
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
        h = self._submit("export", ExportParams(
            model=Path(self.model_path), seed=s["seed"], out=Path(target),
            label=self._class_name(s.get("label")), edits=list(s.get("edits") or [])))
        h.finished.connect(lambda rec: rec.state == "done" and
                           self._say(f"Saved {Path(rec.result).name} (model, seed, class and "
                                     "latent are in its metadata)."))
        return h

    def ask_regenerate(self, png: Path | None = None) -> JobHandle | None:
        if png is None:
            from PySide6.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(self, "PNG exported by the GAN plugin",
                                                  self.model_path, "PNG image (*.png)")
            if not path:
                return None
            png = Path(path)
        # drawn with the model open here (the job warns when its weights differ from the
        # PNG's): PNGs name their model, never its folder, so it may live anywhere
        h = self._submit("regenerate", RegenerateParams(
            png=Path(png), model=Path(self.model_path) if self.model_path else None))
        h.preview.connect(lambda kind, payload, _d: kind == "image" and
                          self.strip.set_image(payload))
        h.finished.connect(lambda rec: rec.state == "done" and
                           self._say(f"Regenerated into {Path(rec.result).name}."))
        return h

    # -- a PNG from the studio dropped here: draw it again from its recipe -----------------
    def dragEnterEvent(self, event: Any) -> None:
        if dropped_png(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        png = dropped_png(event.mimeData())
        if png is not None:
            event.acceptProposedAction()
            self._say(f"Drawing {png.name} again from its recipe…")
            self.ask_regenerate(png)

    # -- interpolation --------------------------------------------------------------------------
    def interpolate(self, gif: Path | None = None) -> JobHandle | None:
        a, b = self.ends["a"], self.ends["b"]
        if a is None or b is None or not self.model_path:
            self._say("⚠ Keep two samples (click them) and set them as A and B.")
            return None
        p = self.interp_form.checked(
            self.status, model=Path(self.model_path), seed_a=a["seed"], seed_b=b["seed"],
            label_a=self._class_name(a.get("label")), label_b=self._class_name(b.get("label")),
            edits=list(a.get("edits") or []), out=None if gif is None else Path(gif))
        if p is None:
            return None
        h = self._submit("interpolate", p)
        h.finished.connect(self._interpolated)
        return h

    def _interpolated(self, rec: Any) -> None:
        if rec.state != "done" or not isinstance(rec.result, Generated):
            return
        from plugins.common.images import make_grid

        self.strip_frames = rec.result.images
        self.strip.set_image(make_grid(rec.result.images, nrow=len(rec.result.images)))
        if rec.result.path:
            self._say(f"Saved the GIF {rec.result.path.name}.")
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
