"""The generate boxes: sample new phrases, vary or continue one, load a file, interpolate from
A to B.

One ``Form`` per job (``SampleParams``, ``VariationsParams``, ``ContinueParams``,
``LoadParams``, ``InterpolateParams``); the fields the panel knows are filled in when a job is
submitted: the model (the model box), the phrases themselves (from the strip: no files in
between), the tempo and the instruments (the transport's). Variations and continuations share
the sample seed (and continuations its temperature), as one control in the box.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
)

from plugins.music.engine.phrase import KEY_NAMES, Phrase
from plugins.music.params import MIDI_OR_AUDIO as FILE_FILTER
from plugins.music.params import ContinueParams, InterpolateParams, LoadParams, VariationsParams
from studio.widgets.form import Form
from studio.widgets.panelparts import primary

if TYPE_CHECKING:  # pragma: no cover
    from plugins.music.ui.panel import MusicPanel


def key_label(name: str) -> str:
    """ "F#m" -> "F# minor", "Bb" -> "Bb major"."""
    return f"{name[:-1]} minor" if name.endswith("m") else f"{name} major"


class GenerateBox(QGroupBox):
    """Sample, Variations and Load MIDI."""

    def __init__(self, panel: MusicPanel, sample_form: Form) -> None:
        super().__init__("Phrases")
        self.panel = panel
        host = panel.host
        self.sample_form = sample_form
        self.vary_form = Form(VariationsParams, self, host.recall("variations", VariationsParams))
        self.load_form = Form(LoadParams, self, host.recall("load", LoadParams))
        self.continue_form = Form(ContinueParams, self, host.recall("continue", ContinueParams))
        lay = QFormLayout(self)
        sample_form.add_rows(lay, "n", "temperature", "seed")
        self.key_combo = QComboBox()
        self.key_combo.addItem("Random", "random")
        for name in KEY_NAMES:
            self.key_combo.addItem(key_label(name), name)
        self.key_combo.setToolTip(sample_form.param("key").help)
        self.key_combo.setAccessibleName(sample_form.param("key").label)
        self._show_key()
        self.key_combo.currentIndexChanged.connect(
            lambda _i: sample_form.set_value("key", self.key_combo.currentData()))
        lay.addRow(sample_form.label("key"), self.key_combo)
        # the tab's primary button: the panel keeps it in view below the settings
        self.sample_btn = primary(QPushButton("Generate"))
        self.sample_btn.setToolTip("New phrases from the model (Ctrl+Enter)")
        self.sample_btn.clicked.connect(lambda: self.sample())

        self.vary_form.add_rows(lay, "n", "amount")
        row = QHBoxLayout()
        self.vary_btn = QPushButton("Variations")
        self.vary_btn.setToolTip("Phrases near the selected one")
        self.vary_btn.clicked.connect(lambda: self.variations())
        row.addWidget(self.vary_btn)
        self.continue_btn = QPushButton("Continue")
        self.continue_btn.setToolTip("What might come next after the selected phrase: new bars "
                                     "that follow it")
        self.continue_btn.clicked.connect(lambda: self.continue_phrase())
        row.addWidget(self.continue_btn)
        lay.addRow(row)
        self.continue_form.add_rows(lay, "bars", "n")
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load MIDI…")
        self.load_btn.setToolTip("Show a file's phrases (and, with a model, what the model "
                                 "makes of them)")
        self.load_btn.clicked.connect(lambda: self.load_file())
        row.addWidget(self.load_btn)
        lay.addRow(row)

    def _show_key(self) -> None:
        key = self.sample_form.p.key or "random"
        i = self.key_combo.findData(key)
        if i < 0:  # a key written another way on the command line ("f# minor")
            self.key_combo.addItem(key, key)
            i = self.key_combo.count() - 1
        self.key_combo.setCurrentIndex(i)

    # -- jobs -----------------------------------------------------------------------------------
    def sample(self) -> Any:
        panel = self.panel
        if not panel.need_model():
            return None
        p = self.sample_form.checked(panel.status, tempo=panel.transport_bar.tempo(),
                                     **panel.transport_bar.instrument_fields())
        return None if p is None else panel.run_phrase_job("sample", p, "New phrases")

    def variations(self, index: int | None = None) -> Any:
        panel = self.panel
        if not panel.need_model():
            return None
        i = panel.strip.selected if index is None else index
        if not 0 <= i < len(panel.phrases):
            panel.say("Select a phrase to vary.", error=True)
            return None
        p = self.vary_form.checked(panel.status, model=panel.model_path(),
                                   source=panel.phrases[i], seed=self.sample_form.p.seed,
                                   tempo=panel.transport_bar.tempo(),
                                   **panel.transport_bar.instrument_fields())
        return None if p is None else panel.run_phrase_job("variations", p, "Phrase variations")

    def continue_phrase(self, index: int | None = None) -> Any:
        """Continue the selected phrase (or ``index``): the clip, then its continuations."""
        panel = self.panel
        if not panel.need_model():
            return None
        i = panel.strip.selected if index is None else index
        if not 0 <= i < len(panel.phrases):
            panel.say("Select a phrase to continue.", error=True)
            return None
        p = self.continue_form.checked(panel.status, model=panel.model_path(),
                                       clip=panel.phrases[i], seed=self.sample_form.p.seed,
                                       temperature=self.sample_form.p.temperature,
                                       tempo=panel.transport_bar.tempo(),
                                       **panel.transport_bar.instrument_fields())
        return None if p is None else panel.run_phrase_job("continue", p, "Continue a phrase")

    def load_file(self, path: str | Path | None = None) -> Any:
        """Show a file's phrases; with a model, also its reconstructions (``path`` skips the
        file dialog)."""
        panel = self.panel
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load phrases from a file", "",
                                                  FILE_FILTER)
            if not path:
                return None
        train = panel.train_box.form.p
        p = self.load_form.checked(panel.status, midi=Path(path), model=panel.model_path(),
                                   bars=train.bars, metre=train.metre,
                                   mode="pianoroll" if train.mode == "pianoroll" else "melody")
        return None if p is None else panel.run_phrase_job("load", p, f"Load {Path(path).name}")

    def refresh(self) -> None:
        panel = self.panel
        ready = panel.model_path() is not None and not panel.handles
        self.sample_btn.setEnabled(ready)
        selected = 0 <= panel.strip.selected < len(panel.phrases)
        self.vary_btn.setEnabled(ready and selected)
        mode = panel.model_box.config().get("model", {}).get("mode", "melody")
        self.continue_btn.setEnabled(ready and selected and mode != "audio")
        self.key_combo.setEnabled(mode == "melody")


class InterpolateBox(QGroupBox):
    """Two phrases picked from the strip (A and B) and the steps between them."""

    def __init__(self, panel: MusicPanel) -> None:
        super().__init__("Interpolate")
        self.panel = panel
        self.form = Form(InterpolateParams, self,
                         panel.host.recall("interpolate", InterpolateParams))
        self.slots: dict[str, Phrase] = {}
        lay = QFormLayout(self)
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
            lay.addRow(f"{slot}:", row)
        self.form.add_rows(lay, "steps")
        self.interp_btn = QPushButton("Interpolate A → B")
        self.interp_btn.clicked.connect(lambda: self.interpolate())
        lay.addRow(self.interp_btn)

    def set_slot(self, slot: str, index: int | None = None) -> None:
        panel = self.panel
        i = panel.strip.selected if index is None else index
        if not 0 <= i < len(panel.phrases):
            panel.say("Select a phrase first.", error=True)
            return
        ph = panel.phrases[i]
        self.slots[slot] = ph
        self.slot_labels[slot].setText(ph.label or f"phrase {i + 1}")
        panel.refresh_roles()
        panel.update_buttons()

    def interpolate(self) -> Any:
        panel = self.panel
        if not panel.need_model():
            return None
        missing = [s for s in ("A", "B") if s not in self.slots]
        if missing:
            panel.say(f"Choose phrase {' and '.join(missing)} first (select a phrase, then "
                      "\"← selected\").", error=True)
            return None
        p = self.form.checked(panel.status, model=panel.model_path(), a=self.slots["A"],
                              b=self.slots["B"], tempo=panel.transport_bar.tempo(),
                              **panel.transport_bar.instrument_fields())
        return None if p is None else panel.run_phrase_job("interpolate", p,
                                                           "Interpolate phrases")

    def refresh(self) -> None:
        panel = self.panel
        self.interp_btn.setEnabled(panel.model_path() is not None and not panel.handles
                                   and "A" in self.slots and "B" in self.slots)
