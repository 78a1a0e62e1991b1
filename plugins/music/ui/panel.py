"""The composer panel: train, sample, interpolate, vary, play and export phrases.

Thin by rule: every model call is a job (``host.submit``: the same jobs as the command line),
results arrive as "phrases" previews; sound is rendered ahead of time on the transport's own
thread and played by a PortAudio callback that only copies samples (see
:mod:`plugins.music.engine.playback`). The only work done here is painting, writing small MIDI
files and copying an already-rendered buffer into a WAV file.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from plugins.music.engine import config as cfg_mod
from plugins.music.engine.phrase import KEY_NAMES, Phrase
from plugins.music.ui.strip import StripView
from studio.storage import read_json
from studio.widgets.seed import seed_row

BUILTIN_LABEL = "Bach chorales (built-in, 371 files)"


class MusicPanel(QWidget):
    """The Music plugin's central widget."""

    audio_status = Signal(bool, str)  # from the probe thread: usable?, message

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.phrases: list[Phrase] = []
        self.strip_source = ""  # "training" while the strip shows live training samples
        self.slots: dict[str, Phrase] = {}  # "A" / "B" for interpolation
        self.handles: list[Any] = []
        self.train_handle: Any = None
        self.data_folder: str = "bach"
        self.transport: Any = None
        self.audio_ok: bool | None = None
        self.audio_message = "Audio: checking…"
        self.last_result: str = ""
        self._build()
        self.audio_status.connect(self._on_audio_status)
        self.refresh_models()
        self._probe_audio()

    # ------------------------------------------------------------------------------------------
    # Layout
    # ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        split = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(split)

        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 4, 0)
        sl.addWidget(self._model_box())
        sl.addWidget(self._train_box())
        sl.addWidget(self._generate_box())
        sl.addWidget(self._interp_box())
        sl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(side.sizeHint().width() + 24)
        split.addWidget(scroll)

        main = QWidget()
        ml = QVBoxLayout(main)
        ml.setContentsMargins(4, 0, 0, 0)
        head = QHBoxLayout()
        self.title = QLabel("Phrases")
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        head.addWidget(self.title, 1)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(lambda: self.show_phrases([], "Phrases", ""))
        head.addWidget(self.clear_btn)
        ml.addLayout(head)
        self.strip = StripView()
        self.strip.selection_changed.connect(self._on_selection)
        self.strip.activated.connect(lambda i: self.play(i))
        self.strip.menu_requested.connect(self._phrase_menu)
        self.strip_scroll = QScrollArea()
        self.strip_scroll.setWidget(self.strip)
        self.strip_scroll.setWidgetResizable(True)
        ml.addWidget(self.strip_scroll, 1)
        ml.addWidget(self._transport_bar())
        self.audio_label = QLabel(self.audio_message)
        self.audio_label.setWordWrap(True)
        ml.addWidget(self.audio_label)
        ml.addWidget(self._export_bar())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ml.addWidget(self.status)
        split.addWidget(main)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([side.sizeHint().width() + 24, 900])

        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.toggle_play)
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._tick)
        self._update_buttons()

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(14)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        row.addWidget(self.model_combo, 1)
        self.open_model_btn = QPushButton("Open…")
        self.open_model_btn.setToolTip("Use a model folder from elsewhere (a train run folder)")
        self.open_model_btn.clicked.connect(self._open_model)
        row.addWidget(self.open_model_btn)
        lay.addLayout(row)
        self.model_info = QLabel("No model yet: train one below.")
        self.model_info.setWordWrap(True)
        lay.addWidget(self.model_info)
        return box

    def _train_box(self) -> QGroupBox:
        box = QGroupBox("Train")
        form = QFormLayout(box)
        self.data_label = QLabel(BUILTIN_LABEL)
        self.data_label.setWordWrap(True)
        self.data_label.setToolTip("What the next training run learns from")
        form.addRow("Data:", self.data_label)
        row = QHBoxLayout()
        self.data_btn = QPushButton("Folder…")
        self.data_btn.setToolTip("A folder of MIDI files (melody / piano-roll) or WAV/FLAC/OGG "
                                 "files (audio). Your files are only read.")
        self.data_btn.clicked.connect(self._choose_data)
        row.addWidget(self.data_btn)
        self.builtin_btn = QPushButton("Bach chorales")
        self.builtin_btn.setToolTip("Use the built-in Bach chorales (soprano lines as melodies)")
        self.builtin_btn.clicked.connect(lambda: self.set_data("bach"))
        row.addWidget(self.builtin_btn)
        form.addRow("", row)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["melody", "pianoroll", "audio"])
        self.mode_combo.setToolTip("melody: one line (MusicVAE); pianoroll: all notes; audio: "
                                   "log-mel spectrograms of sound files")
        form.addRow("Mode:", self.mode_combo)
        self.bars_combo = QComboBox()
        self.bars_combo.addItems(["2", "4"])
        self.bars_combo.setToolTip("Phrase length in 4/4 bars (4 bars: hierarchical decoder)")
        form.addRow("Bars:", self.bars_combo)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(cfg_mod.PRESETS))
        self.preset_combo.setCurrentText("default")
        form.addRow("Preset:", self.preset_combo)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1_000_000)
        self.steps_spin.setSingleStep(500)
        self.steps_spin.setValue(6000)
        form.addRow("Steps:", self.steps_spin)
        btns = QHBoxLayout()
        self.train_btn = QPushButton("Train")
        self.train_btn.clicked.connect(self.train)
        btns.addWidget(self.train_btn)
        self.resume_btn = QPushButton("Continue")
        self.resume_btn.setToolTip("Continue training the selected model up to Steps")
        self.resume_btn.clicked.connect(lambda: self.train(resume=True))
        btns.addWidget(self.resume_btn)
        self.cancel_btn = QPushButton("Stop")
        self.cancel_btn.setToolTip("Stop training (a checkpoint is saved; Continue resumes)")
        self.cancel_btn.clicked.connect(self.cancel_training)
        btns.addWidget(self.cancel_btn)
        form.addRow(btns)
        self.train_bar = QProgressBar()
        self.train_bar.setRange(0, 1000)
        self.train_bar.setTextVisible(True)
        self.train_bar.hide()
        form.addRow(self.train_bar)
        return box

    def _generate_box(self) -> QGroupBox:
        box = QGroupBox("Generate")
        form = QFormLayout(box)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 64)
        self.n_spin.setValue(8)
        form.addRow("Phrases:", self.n_spin)
        self.temp_spin = QDoubleSpinBox()
        self.temp_spin.setRange(0.0, 3.0)
        self.temp_spin.setSingleStep(0.1)
        self.temp_spin.setValue(1.0)
        self.temp_spin.setToolTip("0: the most likely notes; higher: more surprising")
        form.addRow("Temperature:", self.temp_spin)
        self.seed_spin, row = seed_row(1, "New")
        form.addRow("Seed:", row)
        self.key_combo = QComboBox()
        self.key_combo.addItems(["random", *KEY_NAMES])
        self.key_combo.setToolTip("Key of new melodies (melody models)")
        form.addRow("Key:", self.key_combo)
        self.sample_btn = QPushButton("Sample")
        self.sample_btn.clicked.connect(self.sample)
        form.addRow(self.sample_btn)
        row = QHBoxLayout()
        self.amount_spin = QDoubleSpinBox()
        self.amount_spin.setRange(0.05, 3.0)
        self.amount_spin.setSingleStep(0.1)
        self.amount_spin.setValue(0.5)
        self.amount_spin.setToolTip("How far variations stray from the selected phrase")
        row.addWidget(QLabel("amount"))
        row.addWidget(self.amount_spin)
        self.vary_btn = QPushButton("Variations")
        self.vary_btn.setToolTip("Phrases near the selected one in latent space")
        self.vary_btn.clicked.connect(lambda: self.variations())
        row.addWidget(self.vary_btn)
        form.addRow(row)
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load MIDI…")
        self.load_btn.setToolTip("Show a file's phrases (and, with a model, its reconstructions)")
        self.load_btn.clicked.connect(lambda: self.load_file())
        row.addWidget(self.load_btn)
        form.addRow(row)
        return box

    def _interp_box(self) -> QGroupBox:
        box = QGroupBox("Interpolate")
        form = QFormLayout(box)
        self.slot_labels: dict[str, QLabel] = {}
        for slot in ("A", "B"):
            row = QHBoxLayout()
            lab = QLabel("—")
            lab.setWordWrap(True)
            self.slot_labels[slot] = lab
            row.addWidget(lab, 1)
            use = QPushButton("← selected")
            use.setToolTip(f"Use the selected phrase as {slot}")
            use.clicked.connect(lambda _=False, s=slot: self.set_slot(s))
            row.addWidget(use)
            form.addRow(f"{slot}:", row)
        self.interp_steps = QSpinBox()
        self.interp_steps.setRange(2, 32)
        self.interp_steps.setValue(5)
        form.addRow("Steps:", self.interp_steps)
        self.interp_btn = QPushButton("Interpolate A → B")
        self.interp_btn.clicked.connect(self.interpolate)
        form.addRow(self.interp_btn)
        return box

    def _transport_bar(self) -> QWidget:
        w = QWidget()
        lay = QHBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        self.play_btn = QPushButton("▶ Play")
        self.play_btn.setToolTip("Play the whole strip (Space)")
        self.play_btn.clicked.connect(lambda: self.play(None))
        lay.addWidget(self.play_btn)
        self.play_sel_btn = QPushButton("▶ Selected")
        self.play_sel_btn.setToolTip("Play the selected phrase (or double-click it)")
        self.play_sel_btn.clicked.connect(lambda: self.play(self.strip.selected))
        lay.addWidget(self.play_sel_btn)
        self.stop_btn = QPushButton("■ Stop")
        self.stop_btn.clicked.connect(self.stop)
        lay.addWidget(self.stop_btn)
        self.loop_check = QCheckBox("Loop")
        self.loop_check.toggled.connect(self._on_loop)
        lay.addWidget(self.loop_check)
        lay.addStretch(1)
        # second row: the panel must fit beside the plots dock at 1400 px
        outer = QWidget()
        rows = QVBoxLayout(outer)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.addWidget(w)
        w2 = QWidget()
        lay = QHBoxLayout(w2)
        lay.setContentsMargins(0, 0, 0, 0)
        rows.addWidget(w2)
        lay.addWidget(QLabel("Tempo"))
        self.tempo_spin = QSpinBox()
        self.tempo_spin.setRange(30, 300)
        self.tempo_spin.setValue(120)
        self.tempo_spin.setSuffix(" bpm")
        self.tempo_spin.valueChanged.connect(lambda _v: self._rerender())
        lay.addWidget(self.tempo_spin)
        self.voice_combo = QComboBox()
        self.voice_combo.addItems(["piano", "organ", "pluck"])
        self.voice_combo.currentIndexChanged.connect(lambda _i: self._rerender())
        lay.addWidget(self.voice_combo)
        lay.addStretch(1)
        return outer

    def _export_bar(self) -> QWidget:
        w = QWidget()
        lay = QGridLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Export:"), 0, 0)
        self.export_buttons: list[QPushButton] = []
        for i, (text, fmt, which) in enumerate((("MIDI (selected)", "mid", "selected"),
                                                ("MIDI (strip)", "mid", "strip"),
                                                ("WAV (selected)", "wav", "selected"),
                                                ("WAV (strip)", "wav", "strip"))):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, f=fmt, s=which: self.export(f, s))
            lay.addWidget(b, i // 2, 1 + i % 2)
            self.export_buttons.append(b)
        lay.setColumnStretch(3, 1)
        return w

    # ------------------------------------------------------------------------------------------
    # Models
    # ------------------------------------------------------------------------------------------
    def refresh_models(self, select: str | None = None) -> None:
        """List model folders under the plugin's runs folder (newest first)."""
        current = select or self.model_path()
        root = self.host.runs_dir()
        found: list[tuple[float, Path]] = []
        if root.exists():
            for d in root.iterdir():
                if (d / cfg_mod.CONFIG_FILE).exists() and (d / cfg_mod.MODEL_FILE).exists():
                    found.append(((d / cfg_mod.MODEL_FILE).stat().st_mtime, d))
        extra = [Path(current)] if current and Path(current) not in [p for _, p in found] \
            and (Path(current) / cfg_mod.MODEL_FILE).exists() else []
        paths = extra + [p for _, p in sorted(found, reverse=True)]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for p in paths:
            self.model_combo.addItem(self._model_title(p), str(p))
        if current:
            i = self.model_combo.findData(str(current))
            if i >= 0:
                self.model_combo.setCurrentIndex(i)
        self.model_combo.blockSignals(False)
        self._on_model_changed()

    def _model_title(self, path: Path) -> str:
        try:
            conf = read_json(path / cfg_mod.CONFIG_FILE)
            m = conf["model"]
            return f"{path.name} · {m['mode']} · {m['bars']} bars · " \
                   f"{conf.get('trained_steps', '?')} steps"
        except (OSError, ValueError, KeyError, TypeError):
            return path.name

    def model_path(self) -> str:
        data = self.model_combo.currentData() if hasattr(self, "model_combo") else None
        return str(data) if data else ""

    def model_config(self) -> dict[str, Any]:
        path = self.model_path()
        if not path:
            return {}
        try:
            conf = read_json(Path(path) / cfg_mod.CONFIG_FILE)
            return conf if isinstance(conf, dict) else {}
        except (OSError, ValueError):
            return {}

    def _on_model_changed(self, _index: int = 0) -> None:
        conf = self.model_config()
        if not conf:
            self.model_info.setText("No model yet: train one below (the built-in Bach chorales "
                                    "work out of the box), or open a model folder.")
        else:
            m = conf.get("model", {})
            ev = conf.get("evaluation") or {}
            bits = [f"{m.get('mode')} · {m.get('bars')} bars · latent {m.get('latent')}",
                    f"trained {conf.get('trained_steps', '?')} steps"]
            if "sampled_accuracy" in ev:
                bits.append(f"held-out accuracy {ev.get('tf_accuracy', 0):.3f} teacher-forced, "
                            f"{ev['sampled_accuracy']:.3f} sampled")
            data = (conf.get("data") or {}).get("source")
            if data:
                bits.append(f"data: {data}")
            self.model_info.setText("\n".join(bits))
            tempo = int(round(float(conf.get("tempo", 120))))
            if self.tempo_spin.value() != tempo and not self.phrases:
                self.tempo_spin.setValue(tempo)
        self.key_combo.setEnabled(conf.get("model", {}).get("mode", "melody") == "melody")
        self._update_buttons()

    def _open_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a music model folder",
                                                str(self.host.runs_dir()))
        if path:
            self.select_model(path)

    def select_model(self, path: str | Path) -> None:
        p = Path(path)
        if not (p / cfg_mod.CONFIG_FILE).exists():
            self.say(f"{p} is not a music model folder (no config.json)", error=True)
            return
        self.refresh_models(select=str(p))

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------
    def _choose_data(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of MIDI or audio files")
        if path:
            self.set_data(path)

    def set_data(self, data: str) -> None:
        self.data_folder = data
        self.data_label.setText(BUILTIN_LABEL if data == "bach" else data)

    def train(self, resume: bool = False) -> Any:
        if self.train_handle is not None and not self.train_handle.is_finished:
            self.say("A training run is already going; stop it first.", error=True)
            return None
        params: dict[str, Any] = {"steps": self.steps_spin.value()}
        if resume:
            if not self.model_path():
                self.say("Select a model to continue.", error=True)
                return None
            params.update(out=self.model_path(), resume=True)
        else:
            params.update(data=self.data_folder, mode=self.mode_combo.currentText(),
                          bars=int(self.bars_combo.currentText()),
                          preset=self.preset_combo.currentText())
        h = self.host.submit("train", params, title="Train music VAE")
        self.train_handle = h
        self.train_bar.setValue(0)
        self.train_bar.setFormat("starting…")
        self.train_bar.show()
        h.progress.connect(self._on_train_progress)
        h.preview.connect(self._on_train_preview)
        h.finished.connect(self._on_train_finished)
        self._update_buttons()
        self.say("Training started: curves in the Live plots dock.")
        return h

    def cancel_training(self) -> None:
        if self.train_handle is not None and not self.train_handle.is_finished:
            self.train_handle.cancel()
            self.say("Stopping: the last checkpoint is kept, Continue resumes.")

    def _on_train_progress(self, data: dict[str, Any]) -> None:
        total = data.get("total")
        if total:
            self.train_bar.setValue(int(1000 * min(1.0, data["done"] / total)))
            msg = data.get("message", "")
            self.train_bar.setFormat(f"{int(data['done'])} / {int(total)}  {msg}")
        else:
            self.train_bar.setFormat(data.get("message", ""))

    def _on_train_preview(self, kind: str, payload: Any, _data: Any) -> None:
        if kind != "phrases" or not isinstance(payload, dict):
            return
        if not self.phrases or self.strip_source == "training":
            self.show_phrases([Phrase.from_payload(d) for d in payload["phrases"]],
                              f"Training preview: {payload.get('title', '')}", "training")

    def _on_train_finished(self, rec: Any) -> None:
        self.train_bar.hide()
        if rec.state == "done":
            self.say(f"Training finished: {rec.result}")
            self.refresh_models(select=str(rec.result))
            if self.strip_source == "training":
                self.strip_source = ""
        elif rec.state == "cancelled":
            self.say("Training stopped; its last checkpoint can be continued.")
            if rec.run_dir is not None:
                self.refresh_models(select=str(rec.run_dir))
        else:
            self.say(f"Training failed: {rec.error}", error=True)
        self._update_buttons()

    # ------------------------------------------------------------------------------------------
    # Generation jobs
    # ------------------------------------------------------------------------------------------
    def _submit(self, job: str, params: dict[str, Any], title: str) -> Any:
        h = self.host.submit(job, params, title=title, show_plots=False)
        self.handles.append(h)
        h.preview.connect(self._on_phrases_preview)
        h.finished.connect(lambda rec, h=h: self._on_job_finished(h, rec))
        self.say(f"{title}…")
        self._update_buttons()
        return h

    def _need_model(self) -> bool:
        if not self.model_path():
            self.say("Train or open a model first.", error=True)
            return False
        return True

    def sample(self) -> Any:
        if not self._need_model():
            return None
        params = {"model": self.model_path(), "n": self.n_spin.value(),
                  "seed": self.seed_spin.value(), "temperature": self.temp_spin.value(),
                  "tempo": float(self.tempo_spin.value())}
        if self.key_combo.isEnabled() and self.key_combo.currentText() != "random":
            params["key"] = self.key_combo.currentText()
        return self._submit("sample", params, "Sample phrases")

    def variations(self, index: int | None = None) -> Any:
        if not self._need_model():
            return None
        i = self.strip.selected if index is None else index
        if not 0 <= i < len(self.phrases):
            self.say("Select a phrase to vary.", error=True)
            return None
        src = self._scratch(self.phrases[i], "variation_source")
        return self._submit("variations", {
            "model": self.model_path(), "source": str(src), "n": max(2, self.n_spin.value() - 1),
            "amount": self.amount_spin.value(), "seed": self.seed_spin.value(),
            "tempo": float(self.tempo_spin.value())}, "Phrase variations")

    def interpolate(self) -> Any:
        if not self._need_model():
            return None
        missing = [s for s in ("A", "B") if s not in self.slots]
        if missing:
            self.say(f"Choose phrase {' and '.join(missing)} first (select a phrase, then "
                     "\"← selected\").", error=True)
            return None
        a = self._scratch(self.slots["A"], "A")
        b = self._scratch(self.slots["B"], "B")
        return self._submit("interpolate", {
            "model": self.model_path(), "a": str(a), "b": str(b),
            "steps": self.interp_steps.value(), "tempo": float(self.tempo_spin.value())},
            "Interpolate phrases")

    def load_file(self, path: str | None = None) -> Any:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Load phrases from a file", "",
                "MIDI or audio (*.mid *.midi *.wav *.flac *.ogg);;All files (*)")
            if not path:
                return None
        params: dict[str, Any] = {"midi": path}
        if self.model_path():
            params["model"] = self.model_path()
        else:
            params.update(bars=int(self.bars_combo.currentText()),
                          mode="pianoroll" if self.mode_combo.currentText() == "pianoroll"
                          else "melody")
        return self._submit("load", params, f"Load {Path(path).name}")

    def _scratch(self, phrase: Phrase, name: str) -> Path:
        """A phrase as a small file the jobs can read (MIDI, or WAV for audio phrases)."""
        folder = self.host.workspace / "music" / "scratch"
        if phrase.kind == "audio":
            from plugins.music.engine.synth import write_wav

            return write_wav(phrase.audio, folder / f"{name}.wav", phrase.sample_rate)
        from plugins.music.engine.midi import write_midi

        return write_midi(phrase, folder / f"{name}.mid", float(self.tempo_spin.value()))

    def _on_phrases_preview(self, kind: str, payload: Any, _data: Any) -> None:
        if kind != "phrases" or not isinstance(payload, dict):
            return
        phrases = [Phrase.from_payload(d) for d in payload["phrases"]]
        self.show_phrases(phrases, payload.get("title", "Phrases"), "job")
        if payload.get("tempo"):
            self.tempo_spin.setValue(int(round(float(payload["tempo"]))))
        if payload.get("out"):
            self.last_result = str(payload["out"])

    def _on_job_finished(self, handle: Any, rec: Any) -> None:
        with contextlib.suppress(ValueError):
            self.handles.remove(handle)
        if rec.state == "failed":
            self.say(f"{rec.title} failed: {rec.error}", error=True)
        elif rec.state == "done":
            where = f" (files in {self.last_result})" if self.last_result else ""
            self.say(f"{rec.title}: done{where}")
        self._update_buttons()

    # ------------------------------------------------------------------------------------------
    # Strip
    # ------------------------------------------------------------------------------------------
    def show_phrases(self, phrases: list[Phrase], title: str, source: str) -> None:
        self.stop()
        self.phrases = list(phrases)
        self.strip_source = source
        self.title.setText(f"{title}  ({len(phrases)})" if phrases else title)
        self.strip.set_phrases(self.phrases)
        self._refresh_roles()
        self._rerender()
        self._update_buttons()

    def _on_selection(self, _index: int) -> None:
        self._update_buttons()

    def set_slot(self, slot: str, index: int | None = None) -> None:
        i = self.strip.selected if index is None else index
        if not 0 <= i < len(self.phrases):
            self.say("Select a phrase first.", error=True)
            return
        ph = self.phrases[i]
        self.slots[slot] = ph
        self.slot_labels[slot].setText(ph.label or f"phrase {i + 1}")
        self._refresh_roles()
        self._update_buttons()

    def _refresh_roles(self) -> None:
        roles = {}
        for slot, ph in self.slots.items():
            for i, p in enumerate(self.phrases):
                if p is ph:
                    roles[i] = slot
        self.strip.roles = roles
        self.strip.update()

    def _phrase_menu(self, index: int, pos: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction("Play", lambda: self.play(index))
        menu.addAction("Use as A", lambda: self.set_slot("A", index))
        menu.addAction("Use as B", lambda: self.set_slot("B", index))
        menu.addAction("Variations", lambda: self.variations(index))
        menu.addSeparator()
        menu.addAction("Export MIDI…", lambda: self.export("mid", "selected"))
        menu.addAction("Export WAV…", lambda: self.export("wav", "selected"))
        menu.popup(pos)

    # ------------------------------------------------------------------------------------------
    # Sound
    # ------------------------------------------------------------------------------------------
    def _probe_audio(self) -> None:
        """Find out (off the GUI thread: importing PortAudio takes a while) whether playback
        can work, so the transport says so before anyone presses Play."""

        def probe() -> None:
            from plugins.music.engine.playback import AudioUnavailable, load_sounddevice

            try:
                sd = load_sounddevice()
                try:
                    dev = sd.query_devices(kind="output")
                    msg = f"Audio: {dev['name']}"
                    ok = True
                except Exception:  # no default output device
                    ok, msg = False, ("No audio output device found: playback is off; export "
                                      "to MIDI and WAV still works.")
            except AudioUnavailable as exc:
                ok, msg = False, str(exc)
            with contextlib.suppress(RuntimeError):  # the panel was closed meanwhile
                self.audio_status.emit(ok, msg)

        threading.Thread(target=probe, name="music-audio-probe", daemon=True).start()

    def _on_audio_status(self, ok: bool, message: str) -> None:
        self.audio_ok = ok
        self.audio_message = message
        self.audio_label.setText(message)
        self.audio_label.setStyleSheet("" if ok else "color: #b45309;")
        self._update_buttons()

    def _transport(self) -> Any:
        if self.transport is None:
            from plugins.music.engine.playback import Transport

            self.transport = Transport()
        return self.transport

    def _rerender(self) -> None:
        """Render the strip's sound ahead of time (on the transport's thread)."""
        if not self.phrases:
            return
        was_playing = self.transport is not None and self.transport.player.playing
        if was_playing:
            self.stop()
        self._transport().set_strip(self.phrases, float(self.tempo_spin.value()),
                                    self.voice_combo.currentText())

    def play(self, index: int | None = None) -> bool:
        if not self.phrases:
            self.say("Nothing to play yet.", error=True)
            return False
        from plugins.music.engine.playback import AudioUnavailable

        t = self._transport()
        try:
            t.play(index if index is not None and index >= 0 else None,
                   self.loop_check.isChecked())
        except AudioUnavailable as exc:
            self._on_audio_status(False, str(exc))
            self.say(str(exc), error=True)
            return False
        self._timer.start()
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.stop()
        self._timer.stop()
        self.strip.set_playhead(None)
        self._update_buttons()

    def toggle_play(self) -> None:
        if self.transport is not None and self.transport.player.playing:
            self.stop()
        else:
            self.play(None)

    def _on_loop(self, on: bool) -> None:
        if self.transport is not None:
            self.transport.set_loop(on)

    def _tick(self) -> None:
        t = self.transport
        head = t.playhead() if t is not None else None
        self.strip.set_playhead(head)
        if t is None or not t.player.playing:
            self._timer.stop()
            self.strip.set_playhead(None)
            self._update_buttons()

    # ------------------------------------------------------------------------------------------
    # Export
    # ------------------------------------------------------------------------------------------
    def export(self, fmt: str, which: str = "strip", path: str | None = None) -> Path | None:
        """Write the selected phrase or the whole strip as MIDI or WAV (``path`` skips the
        file dialog)."""
        if not self.phrases:
            self.say("Nothing to export yet.", error=True)
            return None
        index = self.strip.selected if which == "selected" else None
        if which == "selected" and not 0 <= (index or 0) < len(self.phrases):
            self.say("Select a phrase to export.", error=True)
            return None
        items = self.phrases if index is None else [self.phrases[index]]
        if fmt == "mid" and any(p.kind == "audio" for p in items):
            self.say("Audio phrases have no notes: export them as WAV.", error=True)
            return None
        if path is None:
            stem = "strip" if index is None else (items[0].label or "phrase").replace("/", "-")
            filt = "MIDI files (*.mid)" if fmt == "mid" else "WAV files (*.wav)"
            path, _ = QFileDialog.getSaveFileName(self, "Export", f"{stem}.{fmt}", filt)
            if not path:
                return None
        target = Path(path)
        if target.suffix.lower() != f".{fmt}":
            target = target.with_suffix(f".{fmt}")
        try:
            if fmt == "mid":
                from plugins.music.engine.midi import write_midi

                write_midi(items, target, float(self.tempo_spin.value()))
            else:
                from plugins.music.engine.synth import write_wav

                t = self._transport()
                if self.transport.phrase_count != len(self.phrases) or not t.ready:
                    self._rerender()
                audio = t.audio(index)  # rendered ahead of time: usually no wait at all
                write_wav(audio, target, t.sample_rate)
        except (OSError, ValueError) as exc:
            self.say(f"Export failed: {exc}", error=True)
            return None
        self.say(f"Exported {target}")
        return target

    # ------------------------------------------------------------------------------------------
    # Misc
    # ------------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #b91c1c;" if error else "")
        if error:
            self.host.log(text, "warning")

    def _update_buttons(self) -> None:
        has_model = bool(self.model_path())
        training = self.train_handle is not None and not self.train_handle.is_finished
        busy = bool(self.handles)
        has = bool(self.phrases)
        sel = 0 <= self.strip.selected < len(self.phrases)
        self.train_btn.setEnabled(not training)
        self.resume_btn.setEnabled(not training and has_model)
        self.cancel_btn.setEnabled(training)
        for b in (self.sample_btn,):
            b.setEnabled(has_model and not busy)
        self.vary_btn.setEnabled(has_model and sel and not busy)
        self.interp_btn.setEnabled(has_model and not busy and "A" in self.slots
                                   and "B" in self.slots)
        playing = self.transport is not None and self.transport.player.playing
        can_play = has and self.audio_ok is not False
        self.play_btn.setEnabled(can_play)
        self.play_sel_btn.setEnabled(can_play and sel)
        self.stop_btn.setEnabled(playing)
        for b in self.export_buttons:
            b.setEnabled(has)

    def shutdown(self) -> None:
        """Called by the window on close: silence, release the device, stop the render thread."""
        self._timer.stop()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
