"""The Writer plugin: train or fine-tune a language model on your own writing, then write with it.

Light on purpose: importing this module imports neither torch nor Qt (the window lists plugins
before any is opened). Jobs live in :mod:`plugins.writer.jobs`, the engine in
:mod:`plugins.writer.engine`, the panel in :mod:`plugins.writer.ui`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.plugin import JobSpec, Plugin, QuickStart

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


class WriterPlugin(Plugin):
    id = "writer"
    name = "Writer"
    description = ("Train a small language model on your own writing (or fine-tune a local one) "
                   "and write with it: continue, alternatives, evaluation.")
    icon = "icon.svg"
    order = 40
    jobs = (
        JobSpec("train", "plugins.writer.jobs:train", "Train language model", makes_run=True),
        JobSpec("generate", "plugins.writer.jobs:generate", "Continue text",
                lane="interactive"),
        JobSpec("alternatives", "plugins.writer.jobs:alternatives", "Alternatives",
                lane="interactive"),
        JobSpec("eval", "plugins.writer.jobs:eval", "Evaluate language model"),
        JobSpec("inspect", "plugins.writer.jobs:inspect", "Inspect corpus", lane="interactive"),
        JobSpec("download", "plugins.writer.jobs:download", "Download model from the Hub",
                lane="download"),
    )
    quick_start = QuickStart(
        "train", "Train on a sample of Shakespeare",
        "Trains a tiny language model on 60 KB of Shakespeare for 2 minutes; the held-out "
        "loss curve opens on the right, and the model can then continue your text.",
        "plugins.writer.params:TrainParams",
        {"data": "{samples}/shakespeare.txt", "minutes": 2.0})
    audit_probe = "plugins.writer.audit:WriterProbe"

    def create_panel(self, host: PanelHost) -> QWidget:
        from plugins.writer.ui.panel import WriterPanel

        return WriterPanel(host)
