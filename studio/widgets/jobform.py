"""A form for any job, built from its signature: the fallback panel and a building block.

Plugins with their own panel can still embed a :class:`JobForm` for an "advanced" page so every
option of a job is reachable in the window exactly as on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio import params as params_mod
from studio.errors import UserError
from studio.plugin import JobSpec, Plugin
from studio.qtjobs import JobHandle

PATH_HINTS = ("data", "model", "out", "path", "file", "dir", "image", "mask", "example", "level",
              "legend", "midi", "weights")


class JobForm(QGroupBox):
    """Widgets for one job's parameters, plus a Run button."""

    def __init__(self, plugin: Plugin, spec: JobSpec, host: Any, parent: QWidget | None = None
                 ) -> None:
        super().__init__(spec.title or spec.name, parent)
        self.plugin, self.spec, self.host = plugin, spec, host
        self.fields: dict[str, tuple[params_mod.Param, QWidget]] = {}
        self.handle: JobHandle | None = None
        form = QFormLayout(self)
        func = spec.load()
        doc = (spec.help or (func.__doc__ or "").strip().split("\n\n")[0]).strip()
        if doc:
            label = QLabel(doc)
            label.setWordWrap(True)
            form.addRow(label)
        for p in params_mod.describe(func):
            widget = self._widget_for(p)
            widget.setToolTip(p.help)
            form.addRow(p.flag[2:] + ("*" if p.required else "") + ":", widget)
            self.fields[p.name] = (p, widget)
        if spec.makes_run:
            out = QLineEdit()
            out.setPlaceholderText("new folder under the workspace")
            self.fields["out"] = (params_mod.Param("out", str, None, False, None, True), out)
            form.addRow("out:", self._with_browse(out, "out"))
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.status, 1)
        form.addRow(row)

    def _widget_for(self, p: params_mod.Param) -> QWidget:
        if p.kind is bool:
            w = QCheckBox()
            w.setChecked(bool(p.default))
            return w
        if p.choices:
            w = QComboBox()
            for c in p.choices:
                w.addItem(str(c), c)
            if p.default in p.choices:
                w.setCurrentIndex(list(p.choices).index(p.default))
            return w
        if p.kind is int and p.default is not None:
            w = QSpinBox()
            w.setRange(-(2**31) + 1, 2**31 - 1)
            w.setValue(int(p.default))
            return w
        line = QLineEdit("" if p.default is None else str(p.default))
        if p.kind is Path or any(h in p.name for h in PATH_HINTS):
            return self._with_browse(line, p.name)
        return line

    def _with_browse(self, line: QLineEdit, name: str) -> QWidget:
        box = QWidget()
        lay = QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(line, 1)
        btn = QPushButton("…")
        btn.setMaximumWidth(30)

        def browse() -> None:
            if name in ("data", "out", "model") or name.endswith("dir"):
                path = QFileDialog.getExistingDirectory(self, name, line.text())
            else:
                path, _ = QFileDialog.getOpenFileName(self, name, line.text())
            if path:
                line.setText(path)

        btn.clicked.connect(browse)
        lay.addWidget(btn)
        box.setProperty("line", line)
        return box

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (p, w) in self.fields.items():
            line = w.property("line") if isinstance(w.property("line"), QLineEdit) else None
            if isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QComboBox):
                out[name] = w.currentData()
            elif isinstance(w, QSpinBox):
                out[name] = w.value()
            else:
                text = (line or w).text().strip()  # type: ignore[union-attr]
                if text or p.required:
                    out[name] = text
        return out

    def run(self) -> JobHandle | None:
        values = self.values()
        try:
            func = self.spec.load()
            checked = dict(values)
            checked.pop("out", None)
            params_mod.bind(func, checked)
        except UserError as exc:
            self.status.setText(f"⚠ {exc}")
            return None
        self.handle = self.host.submit(self.spec.name, values)
        self.status.setText("queued…")
        self.handle.finished.connect(self._finished)
        return self.handle

    def _finished(self, rec: Any) -> None:
        if rec.state == "done":
            self.status.setText(f"done → {rec.result}")
        elif rec.state == "failed":
            self.status.setText(f"⚠ {rec.error}")
        else:
            self.status.setText(rec.state)


class JobFormPanel(QWidget):
    """The default panel: a title, the plugin's description and one form per job (the window
    puts every panel in a scroll area)."""

    def __init__(self, plugin: Plugin, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        title = QLabel(plugin.name)
        title.setObjectName("pluginTitle")
        lay.addWidget(title)
        if plugin.description:
            desc = QLabel(plugin.description)
            desc.setWordWrap(True)
            lay.addWidget(desc)
        self.forms = {spec.name: JobForm(plugin, spec, host) for spec in plugin.jobs}
        for form in self.forms.values():
            lay.addWidget(form)
        lay.addStretch(1)
