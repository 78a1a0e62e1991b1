"""The Results side: what a check found, in words first, then the evidence.

Every audit job leaves ``audit.json`` in its run folder (``engine.report.save``); the view
shows one such document: a headline sentence (``words.headline``), a line of detail, then the
evidence for its kind (closest pairs for memorisation; the ROC curve, the attacks and the most
exposed examples for membership inference; a table for the others), and buttons to open the
check's HTML report and its folder. Files are read off the GUI thread (:func:`load`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine import report
from . import words
from .pairs import Pair, PairsView, prepare
from .roc import RocPlot


@dataclass
class Shown:
    """One result, read and ready to show."""

    doc: dict[str, Any]
    folder: Path | None  # the check's run folder
    report: Path | None  # the HTML file "Open report" opens
    open_folder: Path | None  # what "Show in folder" opens
    pairs: list[Pair] = field(default_factory=list)


def load(folder: Path) -> Shown:
    """An audit run folder's result (any thread). Raises ``ValueError`` with a sentence for
    the user when the folder holds no result."""
    folder = Path(folder)
    doc = report.load(folder)
    if doc is None:
        raise ValueError(f"{folder.name} holds no audit result (it was stopped, or failed, "
                         "before it finished)")
    return shown(doc, folder)


def shown(doc: dict[str, Any], folder: Path | None) -> Shown:
    html = folder / "report.html" if folder is not None else None
    opens = folder
    if doc.get("audit") == "pii" and folder is not None and doc["result"].get("redacted_dir"):
        opens = folder / doc["result"]["redacted_dir"]
    pairs: list[Pair] = []
    if doc.get("audit") == "memorization" and doc["result"].get("results"):
        pairs = prepare(doc["result"]["results"][0], folder)
    return Shown(doc, folder, html if html is not None and html.exists() else None, opens, pairs)


def report_written(path: Path, audits: Sequence[dict[str, Any]], card: bool,
                   model: str = "") -> Shown:
    """What the Report check shows: the file it wrote, what went into it and what did not."""
    names = ", ".join(words.CHECKS.get(a["audit"], a["audit"]).lower() for a in audits)
    done = {a["audit"] for a in audits}
    missing = [words.CHECKS[k].lower() for k in ("memorization", "mia") if k not in done]
    headline = (f"The report {path.name} is written, with {words.plural(len(audits), 'check')}"
                + (f" ({names})" if names else "") + ".")
    if missing:
        headline += f" Not checked yet: {' and '.join(missing)}."
    doc = {"audit": "report", "created": None, "target": {}, "subject": model or path.stem,
           "result": {"file": path.name, "audits": sorted(done), "card": card,
                      "headline": headline,
                      "detail": ("The model card (README.md) is in the model's folder. "
                                 if card else "") +
                      "The report is one file with its plots inside: it can be shared as is."}}
    return Shown(doc, None, path, path.parent)


def _table(headers: Sequence[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(list(headers))
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    t.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
    t.setWordWrap(False)
    t.horizontalHeader().setStretchLastSection(True)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return t


def _fill(t: QTableWidget, headers: Sequence[str], rows: Sequence[Sequence[Any]],
          max_rows: int = 12) -> None:
    """Fill a table and make it as tall as its rows (up to ``max_rows``; it scrolls beyond):
    the results column scrolls as a whole, so a table never gets squeezed to one line."""
    t.clear()
    t.setColumnCount(len(headers))
    t.setHorizontalHeaderLabels(list(headers))
    t.setRowCount(len(rows))
    for i, r in enumerate(rows):
        for j, c in enumerate(r):
            item = QTableWidgetItem(str(c))
            item.setToolTip(str(c))
            t.setItem(i, j, item)
    t.resizeRowsToContents()
    shown = min(len(rows), max_rows)
    height = t.horizontalHeader().sizeHint().height() + 2 * t.frameWidth() + \
        sum(t.rowHeight(i) for i in range(shown)) + t.horizontalScrollBar().sizeHint().height()
    t.setFixedHeight(max(height, 60))


ATTACK_HEADERS = ["Attack", "AUC\n(95% interval)", "Found at\n0.1% false alarms",
                  "Found at\n1% false alarms"]


class MiaPage(QWidget):
    """The ROC curve, the attacks' figures and the most exposed training examples."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.roc = RocPlot()
        self.roc.setMinimumHeight(240)
        self.attacks = _table(ATTACK_HEADERS)
        head = QLabel("Most exposed training examples (the best attack is surest about them):")
        head.setWordWrap(True)
        self.exposed = QListWidget()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.roc)
        lay.addWidget(self.attacks)
        lay.addWidget(head)
        lay.addWidget(self.exposed)

    def set_result(self, r: dict[str, Any]) -> None:
        self.roc.set_attacks(r["attacks"])
        rows = []
        for a in r["attacks"]:
            lo, hi = a.get("auc_ci", [None, None])
            auc = f"{a['auc']:.3f}" + (f" ({lo:.2f}–{hi:.2f})" if lo is not None else "")
            at = {round(float(p["target_fpr"]), 6): p for p in a.get("at", [])}
            cells = [words.attack_name(a["attack"]), auc]
            for fpr in (0.001, 0.01):
                p = at.get(fpr)
                cells.append(words.rate_cell(p) if p else "n/a")
            rows.append(cells)
        _fill(self.attacks, ATTACK_HEADERS, rows)
        self.exposed.clear()
        for name, score in words.most_exposed(r["best"], 20):
            self.exposed.addItem(f"{name}   (score {score:.3g})")
        rows_shown = min(self.exposed.count(), 8)
        self.exposed.setFixedHeight(max(40, rows_shown * self.exposed.sizeHintForRow(0)
                                        + 2 * self.exposed.frameWidth() + 4))


class ResultsView(QWidget):
    """Headline, detail, evidence, and the buttons to open the report and the folder."""

    #: the user picked an earlier result of the chosen model (its folder)
    earlier_chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.current: Shown | None = None
        self.earlier = QComboBox()
        self.earlier.setAccessibleName("Earlier checks of this model")
        self.earlier.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.earlier.setMinimumContentsLength(8)
        self.earlier.setPlaceholderText("choose one to show it")
        self.earlier.activated.connect(self._earlier_picked)
        self.title = QLabel("Results")
        self.title.setStyleSheet("font-weight: 600;")
        self.title.setWordWrap(True)
        top = QHBoxLayout()
        self.earlier_label = QLabel("Earlier checks:")
        self.earlier_label.setToolTip("Checks already run on the chosen model")
        top.addWidget(self.earlier_label)
        top.addWidget(self.earlier, 1)
        self.headline = QLabel()
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-size: 14px; font-weight: 600;")
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.placeholder = QLabel("Choose a model on the left and run a check: what it finds "
                                  "appears here, in words first, then the evidence.")
        self.placeholder.setObjectName("placeholder")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pairs = PairsView()
        self.mia = MiaPage()
        self.table = _table([""])
        # one column that scrolls as a whole: headline, detail, then the evidence
        body = QWidget()
        bl = QVBoxLayout(body)
        bl.setContentsMargins(0, 0, 4, 0)
        bl.addWidget(self.headline)
        bl.addWidget(self.detail)
        self.pages: list[QWidget] = [self.placeholder, self.pairs, self.mia, self.table]
        for w in self.pages:
            bl.addWidget(w)
        bl.addStretch(1)
        self.body = QScrollArea()
        self.body.setWidgetResizable(True)
        self.body.setFrameShape(QFrame.Shape.NoFrame)
        self.body.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.body.setWidget(body)
        self.open_report = QPushButton("Open report")
        self.open_report.setToolTip("Open the check's HTML report in your web browser")
        self.show_folder = QPushButton("Show in folder")
        self.show_folder.setToolTip("Open the folder the check wrote its files to")
        self.open_report.clicked.connect(self._open_report)
        self.show_folder.clicked.connect(self._show_folder)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_report)
        buttons.addWidget(self.show_folder)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addLayout(top)
        lay.addWidget(self.body, 1)
        lay.addLayout(buttons)
        self.set_earlier([])
        self.show_result(None)

    # -- earlier results of the chosen model ----------------------------------------------------
    def set_earlier(self, audits: Sequence[dict[str, Any]]) -> None:
        self.earlier.clear()
        for a in sorted(audits, key=lambda d: -(d.get("created") or 0)):
            self.earlier.addItem(words.audit_label(a), str(a.get("_folder", "")))
        has = self.earlier.count() > 0
        self.earlier.setVisible(has)
        self.earlier_label.setVisible(has)
        self._mark_earlier()

    def _mark_earlier(self) -> None:
        folder = str(self.current.folder) if self.current and self.current.folder else ""
        i = self.earlier.findData(folder)
        self.earlier.setCurrentIndex(i)

    def _earlier_picked(self, index: int) -> None:
        data = self.earlier.itemData(index)
        if data:
            self.earlier_chosen.emit(Path(data))

    # -- one result -----------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        """A sentence instead of a result (a folder without one, a failed read)."""
        self.show_result(None)
        self.placeholder.setText(text)

    def show_result(self, s: Shown | None) -> None:
        self.current = s
        self.open_report.setEnabled(bool(s and s.report))
        self.show_folder.setEnabled(bool(s and s.open_folder))
        if s is None:
            self.title.setText("Results")
            self.headline.clear()
            self.detail.clear()
            self.headline.hide()
            self.detail.hide()
            self._page(self.placeholder)
            self._mark_earlier()
            return
        doc = s.doc
        kind = doc.get("audit", "")
        r = doc.get("result", {})
        what = words.subject(doc)
        self.title.setText(f"{words.CHECKS.get(kind, kind)}" + (f" · {what}" if what else ""))
        if kind == "report":
            self.headline.setText(r["headline"])
            self.detail.setText(r["detail"])
        else:
            self.headline.setText(words.headline(doc))
            self.detail.setText(words.detail(doc))
        self.headline.show()
        self.detail.setVisible(bool(self.detail.text()))
        if kind == "memorization":
            self.pairs.set_pairs(s.pairs, "" if s.pairs else
                                 "No generated sample shares anything with the training data.")
            self._page(self.pairs)
        elif kind == "mia":
            self.mia.set_result(r)
            self._page(self.mia)
        elif kind in TABLES:
            headers, rows = TABLES[kind](r)
            _fill(self.table, headers, rows)
            self._page(self.table if rows else self.placeholder)
            if not rows:
                self.placeholder.setText("")
        else:
            self.placeholder.setText("")
            self._page(self.placeholder)
        self._mark_earlier()

    def _page(self, page: QWidget) -> None:
        for w in self.pages:
            w.setVisible(w is page)
        self.body.verticalScrollBar().setValue(0)

    @property
    def page(self) -> QWidget:
        return next(w for w in self.pages if not w.isHidden())

    def _open_report(self) -> None:
        if self.current and self.current.report:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.current.report)))

    def _show_folder(self) -> None:
        if self.current and self.current.open_folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.current.open_folder)))


# ----------------------------------------------------------------------------------------------
# Tables for the other checks
# ----------------------------------------------------------------------------------------------
def _canaries(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = [[c["canary"], "once" if c["repeats"] == 1 else f"{c['repeats']} times",
             f"{c['exposure_bits']:.1f} of {c['max_bits']:.1f}"]
            for c in sorted(r.get("canaries", []), key=lambda c: -c["exposure_bits"])]
    return ["Secret", "Inserted", "Exposure (bits)"], rows


def _dataset(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for group in r.get("exact_duplicates", [])[:50]:
        rows.append(["identical", group[0], ", ".join(group[1:4])
                     + (" …" if len(group) > 4 else "")])
    for d in r.get("near_duplicates", [])[:100]:
        rows.append(["near duplicate", d["a"], d["b"]])
    leak = r.get("leakage") or {}
    for what, key in (("held out, also trained on", "exact"),
                      ("held out, near one trained on", "near")):
        for pair in leak.get(key, [])[:50]:
            train = pair.get("train")
            first = train[0] if isinstance(train, list) and train else train
            rows.append([what, words.example_name(str(pair.get("held_out", ""))),
                         words.example_name(str(first)) if first else ""])
    return ["What", "File", "Same as"], rows


def _pii(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for f in r.get("files", []):
        counts = {k: v for k, v in f["counts"].items() if v}
        if not counts:
            continue
        found = ", ".join(f"{v} {words.PII_KINDS.get(k, (k, k))[v != 1]}"
                          for k, v in counts.items())
        ex = "; ".join(f"{e['masked']} (line {e['line']})" for e in f.get("examples", [])[:3])
        rows.append([f["path"], found, ex])
    return ["File", "Found", "Examples (masked)"], rows


def _fairness(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = [[str(g["group"]), f"{int(g['count']):,}", words.group_rate(g["selection_rate"]),
             words.group_rate(g["true_positive_rate"]), words.group_rate(g["false_positive_rate"]),
             words.group_rate(g["accuracy"])] for g in r.get("groups", [])]
    return ["Group", "Rows", "Positive outcome", "True positive rate", "False positive rate",
            "Accuracy"], rows


def _representation(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    def ratio(c: dict[str, Any]) -> str:
        if c["generated"]["k"] == 0:
            return "never generated"
        if c["ratio"] is None:
            return "not in training"
        return f"{c['ratio']:.2f}x" + (" (differs)" if c.get("differs") else "")

    rows = [[str(c["class"]), words.group_rate(c["training"]), words.group_rate(c["generated"]),
             ratio(c), words.group_rate(c["recall"]) if c.get("recall") else ""]
            for c in r.get("classes", [])]
    return ["Class", "In training", "In samples", "Samples / training",
            "Recognised"], rows


def _bias(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    def fig(f: dict[str, Any] | None, fmt: str) -> str:
        if not f or f.get("mean") is None:
            return ""
        ci = f" ({f['lo']:{fmt}} to {f['hi']:{fmt}})" if f.get("lo") is not None else ""
        return f"{f['mean']:{fmt}}{ci}"

    rows = []
    for c in r.get("categories", []):
        regard = {f["group"]: f for f in c.get("regard", [])}
        sent = {f["group"]: f for f in c.get("sentiment", [])}
        for g in c["groups"]:
            s = sent.get(g)
            rows.append([c["category"], g, fig(regard.get(g), "+.2f"), fig(s, "+.2f"),
                         words.group_rate(s["negative"]) if s and s.get("negative") else ""])
    return ["Category", "Group", "Regard (nats)", "Sentiment (-1..+1)",
            "Negative"], rows


TABLES = {"canaries": _canaries, "dataset": _dataset, "pii": _pii, "fairness": _fairness,
          "representation": _representation, "bias": _bias}
