"""A form for any job, built from its params class: the fallback panel and a building block.

Plugins with their own panel can still embed a :class:`JobForm` for an "advanced" page so every
option of a job is reachable in the window exactly as on the command line.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio import params as params_mod
from studio.plugin import JobSpec, Plugin
from studio.qtjobs import JobHandle
from studio.widgets.form import Form


class JobForm(QGroupBox):
    """Widgets for one job's params class (every field a panel need not supply), plus Run."""

    def __init__(self, plugin: Plugin, spec: JobSpec, host: Any, parent: QWidget | None = None
                 ) -> None:
        super().__init__(spec.title or spec.name, parent)
        self.plugin, self.spec, self.host = plugin, spec, host
        self.handle: JobHandle | None = None
        layout = QFormLayout(self)
        func = spec.load()
        cls = params_mod.job_params(func)
        if cls is None:
            raise TypeError(f"{spec.target} takes no params dataclass")
        doc = (spec.help or (func.__doc__ or "").strip().split("\n\n")[0]).strip()
        if doc:
            label = QLabel(doc)
            label.setWordWrap(True)
            layout.addRow(label)
        self.form = Form(cls, self, host.recall(spec.name, cls))
        shown = [p.name for p in params_mod.describe(cls) if not p.hidden and p.codec is None]
        self.form.add_rows(layout, *shown)
        self.out: QLineEdit | None = None
        if spec.makes_run:
            self.out = QLineEdit()
            self.out.setPlaceholderText("a new folder in the workspace")
            layout.addRow("Run folder:", self.out)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.status, 1)
        layout.addRow(row)

    def run(self) -> JobHandle | None:
        p = self.form.checked(self.status)
        if p is None:
            return None
        out = self.out.text().strip() if self.out is not None else ""
        self.handle = self.host.submit(self.spec.name, p, out=out or None)
        self.status.setText("queued…")
        self.handle.finished.connect(self._finished)
        return self.handle

    def _finished(self, rec: Any) -> None:
        if rec.state == "done":
            self.status.setText("done")
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
        host.run_reopened.connect(self._reopened)

    def _reopened(self, job: str, params: Any, run_dir: Any) -> None:
        """A reopened run's settings go back into its job's form."""
        form = self.forms.get(job)
        if form is not None:
            form.form.set(params)
            if form.out is not None:
                form.out.setText(str(run_dir))
