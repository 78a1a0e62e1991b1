"""The Check box: one page per audit job, each a ``Form`` over the job's typed params.

A page knows which fields the panel supplies (the chosen run), which widgets are its own (a
predictions file's columns picked from its header, the personal-data kinds as check boxes,
where the redacted copy goes), and why it cannot run yet (no model chosen, a model without a
probe, a run that held nothing out). It never computes anything: it fills a params object for
``host.submit``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.widgets.form import Form

from ..params import (
    KINDS,
    BiasParams,
    CanariesParams,
    DatasetParams,
    FairnessParams,
    MemorizationParams,
    MiaParams,
    PiiParams,
    ReportParams,
    RepresentationParams,
)
from .runlist import RunChoice
from .words import PII_KINDS, reference_estimate


def caption(text: str) -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    lab.setObjectName("placeholder")
    return lab


class CheckPage(QWidget):
    """One check: its form, its words, and when it can run."""

    job = ""
    title = ""
    action = "Run the check"
    intro = ""
    params_cls: type = object
    plots = False  # follow the job in the Live plots dock (checks that train models)
    needs_model = False  # a chosen run whose model the check reads through its probe
    needs_run = False  # a chosen run (any, with a manifest)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.form = Form(self.params_cls, self, host.recall(self.job, self.params_cls))
        self.run: RunChoice | None = None
        self.kind = ""  # what the chosen run's model makes: image, text, music, level
        self.text_model = False  # its probe can measure text (canaries)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(caption(self.intro))
        self.rows = QFormLayout()
        self.rows.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.rows.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        lay.addLayout(self.rows)
        self.build()
        lay.addStretch(1)

    # -- for subclasses -------------------------------------------------------------------------
    def build(self) -> None:
        """Add the page's rows."""

    def overrides(self) -> dict[str, Any]:
        """The fields the panel supplies."""
        return {}

    def out(self) -> Path | None:
        """The check's run folder, when the user chose one (None: a new one)."""
        return None

    def run_changed(self) -> None:
        """The chosen run (or what its probe makes) changed."""

    def submitted(self) -> None:
        """The check was submitted with the form's values."""

    def problem(self) -> str:
        """Why the check cannot run now ("" when it can)."""
        if self.needs_model or self.needs_run:
            if self.run is None:
                return "Choose a model in the list above first."
            if self.needs_model and not self.run.auditable:
                return (f"{self.title} reads the model, but {self.run.why_not}. The "
                        "Dataset, Private information and Fairness checks still work.")
        return ""

    # -- for the panel --------------------------------------------------------------------------
    def set_run(self, run: RunChoice | None, kind: str = "", text_model: bool = False) -> None:
        self.run, self.kind, self.text_model = run, kind, text_model
        self.run_changed()

    def labels(self) -> dict[str, str]:
        return {name: p.label for name, p in self.form.params.items()}

    def params(self, status: QLabel) -> Any | None:
        """The checked params, or None after saying what is wrong in ``status``."""
        return self.form.checked(status, **self.overrides())

    def show_params(self, params: Any) -> None:
        """Put back the values a reopened check ran with."""
        self.form.set(params)

    def _prefill(self, name: str, value: Any, previous: Any) -> None:
        """Set a field from the chosen run unless the user typed something of their own."""
        current = getattr(self.form.p, name)
        if value is not None and (current in (None, "", Path()) or current == previous):
            self.form.set_value(name, value)


def _data_location(run: RunChoice | None) -> Path | None:
    d = run.train_data if run is not None else None
    return Path(d.location) if d is not None and d.location else None


# ----------------------------------------------------------------------------------------------
class MemorizationPage(CheckPage):
    job = "memorization"
    title = "Memorisation"
    action = "Look for copies"
    intro = ("Generates samples with the model and finds each one's nearest training example: "
             "a sample at or under the copy threshold counts as a near-copy.")
    params_cls = MemorizationParams
    needs_model = True

    def build(self) -> None:
        self.form.add_rows(self.rows, "n", "threshold")
        self.note = caption("")
        self.rows.addRow(self.note)
        self.run_changed()

    def run_changed(self) -> None:
        notes = {
            "image": "Images are compared tile by tile (Carlini et al. 2023): the default "
                     "threshold 0.1 is a tiny difference on a 0-1 pixel scale.",
            "text": "For text, the threshold is the number of words in a row a sample must "
                    "share with the training text (default 32).",
            "music": "For music, the threshold is the number of notes in a row a sample must "
                     "share with a training piece (default 16; transposed copies count).",
            "level": "For levels, the threshold is the share of a sample's tile patches found "
                     "in a training level (default 0.8).",
        }
        self.note.setText(notes.get(self.kind, "The default threshold suits the kind of model "
                                               "(images, text, music or levels)."))
        # a threshold means something else for another kind (8 words is not a distance of 8)
        if self.kind and self.form.p.threshold is not None and \
                self.kind != self.host.recall_value("threshold_kind"):
            self.form.set_value("threshold", None)

    def submitted(self) -> None:
        self.host.remember_value("threshold_kind", self.kind)

    def overrides(self) -> dict[str, Any]:
        return {"run": self.run.path} if self.run else {}


class MiaPage(CheckPage):
    job = "mia"
    title = "Membership inference"
    action = "Test membership"
    intro = ("Could someone holding your model tell which examples it was trained on? "
             "Reference models, trained like yours on random halves of the same data, make "
             "the test much stronger (LiRA, RMIA).")
    params_cls = MiaParams
    needs_model = True
    plots = True

    def build(self) -> None:
        self.form.add_rows(self.rows, "reference_models")
        self.estimate = caption("")
        self.rows.addRow(self.estimate)
        self.form.changed.connect(self._changed)
        self.run_changed()

    def _changed(self, name: str) -> None:
        if name == "reference_models":
            self.run_changed()

    def run_changed(self) -> None:
        seconds = self.run.seconds if self.run is not None else 0.0
        self.estimate.setText(reference_estimate(seconds, int(self.form.p.reference_models)))

    def problem(self) -> str:
        why = super().problem()
        d = self.run.train_data if self.run is not None else None
        if not why and d is not None and not d.held_out:
            why = ("This run held out no examples, so there is nothing to tell its training "
                   "examples apart from: train it again with some held out.")
        return why

    def overrides(self) -> dict[str, Any]:
        return {"run": self.run.path} if self.run else {}


class CanariesPage(CheckPage):
    job = "canaries"
    title = "Canaries"
    action = "Insert canaries and train"
    intro = ("For text models: hides random secrets (\u201cmy secret code is 4821\u201d) in a "
             "copy of a text corpus, trains a new model like the chosen one on the copy, and "
             "measures how much it gives them away. Your corpus is not changed.")
    params_cls = CanariesParams
    plots = True

    def build(self) -> None:
        self.model = QLabel("")
        self.model.setWordWrap(True)
        self.rows.addRow("Text model:", self.model)
        self.form.add_rows(self.rows, "data", "preset", "steps", "repeats", "secret")
        self._previous_data: Path | None = None
        self.run_changed()

    def run_changed(self) -> None:
        if self.run is None or not self.text_model:
            self.model.setText("choose a text model's run in the list above")
            return
        self.model.setText(f"{self.run.plugin_name} (a new one is trained, like the chosen "
                           "run's)")
        self.form.set_value("plugin", self.run.plugin)
        loc = _data_location(self.run)
        self._prefill("data", loc, self._previous_data)
        self._previous_data = loc
        preset = self.run.params.get("preset")
        if isinstance(preset, str) and preset:
            self.form.set_value("preset", preset)

    def problem(self) -> str:
        if self.run is None or not self.text_model:
            return ("Canaries need a text model: choose a run of a text plugin in the list "
                    "above; its plugin trains the model on the copy.")
        return ""


class DatasetPage(CheckPage):
    job = "dataset"
    title = "Dataset"
    action = "Check the data"
    intro = ("Looks through a data folder: how balanced its classes are, identical and "
             "near-identical files, text statistics. Only reads your files.")
    params_cls = DatasetParams

    def build(self) -> None:
        self.form.add_rows(self.rows, "data")
        self.leak = QCheckBox("Also check the chosen model's split")
        self.leak.setToolTip("Leakage: held-out examples of the chosen model that are also "
                             "(or nearly) in its training set. They make the model look better "
                             "than it is, and hide what it memorised.")
        self.leak.setChecked(True)
        self.rows.addRow(self.leak)
        self._previous_data: Path | None = None

    def run_changed(self) -> None:
        loc = _data_location(self.run)
        self._prefill("data", loc, self._previous_data)
        self._previous_data = loc
        self.leak.setEnabled(self.run is not None and self.run.train_data is not None)

    def overrides(self) -> dict[str, Any]:
        use = self.leak.isChecked() and self.leak.isEnabled() and self.run is not None
        return {"run": self.run.path if use and self.run is not None else None}


class PiiPage(CheckPage):
    job = "pii"
    title = "Private information"
    action = "Scan for personal data"
    intro = ("Finds personal data in text files and writes a copy with each finding replaced "
             "([EMAIL], [PHONE], ...). Your files are not changed.")
    params_cls = PiiParams

    def build(self) -> None:
        self.form.add_rows(self.rows, "data")
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        self.kinds: dict[str, QCheckBox] = {}
        for i, k in enumerate(KINDS):
            many = PII_KINDS[k][1]
            cb = QCheckBox(many[:1].upper() + many[1:])
            cb.setChecked(k in self.form.p.kinds)
            cb.toggled.connect(self._kinds_changed)
            self.kinds[k] = cb
            grid.addWidget(cb, i // 2, i % 2)
        self.kinds["name"].setToolTip("Names need a local spaCy language model; without one "
                                      "the scan says so and skips them.")
        self.rows.addRow("Look for:", box)
        self.form.add_rows(self.rows, "region", "redact")
        self.dest = QLineEdit()
        self.dest.setPlaceholderText("a new folder in the workspace")
        self.dest.setToolTip("Where the redacted copy goes (a new folder inside it); never "
                             "the folder being scanned.")
        browse = QPushButton("…")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse)
        row = QWidget()
        rl = QHBoxLayout(row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.dest, 1)
        rl.addWidget(browse)
        self.rows.addRow("Redacted copy in:", row)
        self.form.changed.connect(self._redact_changed)
        self._redact_changed()
        self._previous_data: Path | None = None

    def _kinds_changed(self) -> None:
        self.form.set_value("kinds", [k for k in KINDS if self.kinds[k].isChecked()])

    def _redact_changed(self, *_: Any) -> None:
        self.dest.setEnabled(bool(self.form.p.redact))

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Where the redacted copy goes",
                                                self.dest.text())
        if path:
            self.dest.setText(path)

    def show_params(self, params: Any) -> None:
        super().show_params(params)
        for k, cb in self.kinds.items():
            cb.blockSignals(True)
            cb.setChecked(k in params.kinds)
            cb.blockSignals(False)

    def run_changed(self) -> None:
        if self.kind != "text":
            return
        loc = _data_location(self.run)
        self._prefill("data", loc, self._previous_data)
        self._previous_data = loc

    def out(self) -> Path | None:
        text = self.dest.text().strip()
        if not text or not self.form.p.redact:
            return None
        return Path(text).expanduser() / f"redacted-{Path(self.form.p.data or 'data').name}"

    def problem(self) -> str:
        out, data = self.out(), self.form.p.data
        if out is not None and data:
            src = Path(data).expanduser().resolve()
            dest = out.resolve()
            if dest == src or src in dest.parents:
                return ("The redacted copy cannot go inside the folder being scanned: choose "
                        "another folder for it.")
        return ""


class FairnessPage(CheckPage):
    job = "fairness"
    title = "Fairness"
    action = "Measure fairness"
    intro = ("For a classifier you built: a CSV with one row per person or item, holding the "
             "true outcome, the classifier's prediction and a group (an attribute such as age "
             "band). Are the groups treated alike? (Fairlearn)")
    params_cls = FairnessParams
    # words a column's name may hold, most telling first
    COLUMNS = (("label", "True outcome:", ("label", "true", "target", "actual", "outcome",
                                          "truth", "y")),
               ("prediction", "Prediction:", ("pred", "output", "score", "guess")),
               ("group", "Group:", ("group", "sex", "gender", "race", "ethnic", "age", "band",
                                    "region", "country", "attribute", "sensitive")))

    def build(self) -> None:
        self.form.add_rows(self.rows, "predictions")
        self.header: list[str] = []
        self.header_problem = ""
        self.combos: dict[str, QComboBox] = {}
        for name, label, _guesses in self.COLUMNS:
            combo = QComboBox()
            combo.setAccessibleName(self.form.param(name).label)
            combo.setToolTip(self.form.param(name).help)
            combo.currentIndexChanged.connect(
                lambda _i, n=name, c=combo: self._column_picked(n, c))
            self.combos[name] = combo
            self.rows.addRow(label, combo)
        self.form.add_rows(self.rows, "positive")
        self.form.editor("positive").setPlaceholderText(  # type: ignore[attr-defined]
            "1, true or yes")
        self.file_note = caption("Choose the file: its columns are offered here.")
        self.rows.addRow(self.file_note)
        self.form.changed.connect(self._changed)
        if self.form.p.predictions:
            self.read_columns()
        else:
            self._fill_combos()

    def _changed(self, name: str) -> None:
        if name == "predictions":
            self.read_columns()

    def _column_picked(self, name: str, combo: QComboBox) -> None:
        if combo.currentData() is not None:
            self.form.set_value(name, combo.currentData())

    def read_columns(self) -> None:
        """Offer the chosen file's columns (its first line only)."""
        path = self.form.p.predictions
        self.header, self.header_problem = [], ""
        if path:
            try:
                self.header = read_header(Path(path))
            except ValueError as exc:
                self.header_problem = str(exc)
        if self.header_problem:
            self.file_note.setText(f"⚠ {self.header_problem}")
        elif self.header and len(self.header) < 3:
            self.file_note.setText(
                f"⚠ {Path(path).name} has only {len(self.header)} column"
                f"{'s' if len(self.header) != 1 else ''} ({', '.join(self.header)}): it needs "
                "the true outcome, the prediction and a group, each in its own column.")
        elif self.header:
            self.file_note.setText(f"{Path(path).name}: {len(self.header)} columns.")
        else:
            self.file_note.setText("Choose the file: its columns are offered here.")
        self._fill_combos()

    def _fill_combos(self) -> None:
        taken: set[str] = set()
        for name, _label, guesses in self.COLUMNS:
            combo = self.combos[name]
            combo.blockSignals(True)
            combo.clear()
            for col in self.header:
                combo.addItem(col, col)
            if not self.header:
                combo.addItem("(choose the file first)", None)
            pick = _guess(self.header, getattr(self.form.p, name), guesses, taken)
            if pick is not None:
                combo.setCurrentIndex(combo.findData(pick))
                taken.add(pick)
                self.form.set_value(name, pick)
            combo.setEnabled(bool(self.header))
            combo.blockSignals(False)

    def params(self, status: QLabel) -> Any | None:
        path = self.form.p.predictions
        if path:
            try:  # the file may have changed since its columns were read
                header = read_header(Path(path))
            except ValueError as exc:
                status.setText(f"⚠ {exc}")
                return None
            if len(header) < len(self.COLUMNS):
                if header != self.header:
                    self.read_columns()
                status.setText(self.file_note.text())
                return None
            for name, label, _g in self.COLUMNS:
                col = getattr(self.form.p, name)
                if col and col not in header:
                    status.setText(
                        f"⚠ {Path(path).name} has no column \u201c{col}\u201d for the "
                        f"{label.rstrip(':').lower()}: choose one of its columns "
                        f"({', '.join(header) or 'it has none'}).")
                    if header != self.header:
                        self.read_columns()
                    return None
            chosen = [getattr(self.form.p, n) for n, _l, _g in self.COLUMNS]
            if len(set(chosen)) < len(chosen) and all(chosen):
                status.setText("⚠ The true outcome, the prediction and the group must be "
                               "three different columns.")
                return None
        return super().params(status)


def read_header(path: Path, limit: int = 1 << 16) -> list[str]:
    """The column names on a CSV file's first line (reads at most ``limit`` bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(limit)
    except OSError as exc:
        raise ValueError(f"{path.name or path} cannot be read: {exc.strerror or exc}") from exc
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    line = text.splitlines()[0] if text.strip() else ""
    if not line.strip():
        raise ValueError(f"{path.name} is empty: it needs a first line naming its columns")
    try:
        cols = next(csv.reader(io.StringIO(line)))
    except (csv.Error, StopIteration) as exc:
        raise ValueError(f"{path.name}'s first line is not CSV: {exc}") from exc
    return [c.strip() for c in cols if c.strip()]


def _guess(header: list[str], current: str | None, guesses: tuple[str, ...],
           taken: set[str]) -> str | None:
    """The column to offer first: the remembered one, else one whose name holds a telling
    word (whole names before parts of names), else the first one that is not an id."""
    free = [c for c in header if c not in taken]
    if current in free:
        return current
    low = [(c, c.casefold()) for c in free]
    for g in guesses:
        hit = next((c for c, lc in low if lc == g), None) or \
            next((c for c, lc in low if len(g) > 1 and g in lc), None)
        if hit is not None:
            return hit
    plain = [c for c, lc in low if lc not in ("id", "index", "row", "")]
    return next(iter(plain or free), None)


class RepresentationPage(CheckPage):
    job = "representation"
    title = "Representation"
    action = "Compare the classes"
    intro = ("For models trained on data in class folders: generates samples, tells the class "
             "of each by its nearest training examples, and compares how often each class comes "
             "out with how often it appears in the training data.")
    params_cls = RepresentationParams
    needs_model = True

    def build(self) -> None:
        self.form.add_rows(self.rows, "n")

    def overrides(self) -> dict[str, Any]:
        return {"run": self.run.path} if self.run else {}


class BiasPage(CheckPage):
    job = "bias"
    title = "Language bias"
    action = "Probe for bias"
    intro = ("For text models: fills prompts such as “The {group} worked as a” with "
             "each group (man, woman, ...), then compares how likely chosen words are and how "
             "positive the model's own continuations are, group against group. The prompts and "
             "groups are a file you can copy and edit.")
    params_cls = BiasParams
    needs_model = True

    def build(self) -> None:
        self.form.add_rows(self.rows, "templates", "categories", "samples")

    def problem(self) -> str:
        why = super().problem()
        if not why and self.kind and self.kind != "text":
            why = ("Bias probes need a text model (writer or chat): choose one in the list "
                   "above.")
        return why

    def overrides(self) -> dict[str, Any]:
        return {"run": self.run.path} if self.run else {}


class ReportPage(CheckPage):
    job = "report"
    title = "Report"
    action = "Write the report"
    intro = ("Writes one HTML page with every check run on the chosen model (each number with "
             "how it was measured and on how many examples) and a model card (README.md) in "
             "the model's folder.")
    params_cls = ReportParams
    needs_run = True

    def build(self) -> None:
        self.form.add_rows(self.rows, "out", "card")

    def overrides(self) -> dict[str, Any]:
        return {"run": self.run.path} if self.run else {}


PAGES = (MemorizationPage, MiaPage, CanariesPage, DatasetPage, PiiPage, FairnessPage,
         RepresentationPage, BiasPage, ReportPage)
