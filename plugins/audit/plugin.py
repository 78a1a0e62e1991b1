"""The audit plugin: what did the studio's models memorise, what do they leak, whom do they
leave out.

Reads any run of any plugin through the audit probe that plugin declares
(``Plugin.audit_probe``; protocol in ``plugins.common.probes``), never importing another
plugin's engine. Light on purpose: no torch and no Qt at import; the panel (``ui/``) is
imported only when the window opens it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.plugin import JobSpec, Plugin

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


class AuditPlugin(Plugin):
    id = "audit"
    name = "Privacy & bias audit"
    description = ("Check what models memorised and leak (membership inference, copies of "
                   "training examples, canaries), audit datasets for balance, duplicates and "
                   "personal data, and measure fairness; HTML reports and model cards.")
    order = 90
    jobs = (
        JobSpec("mia", "plugins.audit.jobs:mia", "Membership inference audit", makes_run=True),
        JobSpec("memorization", "plugins.audit.jobs:memorization", "Memorisation audit",
                makes_run=True),
        JobSpec("canaries", "plugins.audit.jobs:canaries", "Canary exposure audit",
                makes_run=True),
        JobSpec("dataset", "plugins.audit.jobs:dataset", "Dataset audit", makes_run=True),
        JobSpec("pii", "plugins.audit.jobs:pii_scan", "Personal data scan", makes_run=True),
        JobSpec("fairness", "plugins.audit.jobs:fairness", "Fairness audit", makes_run=True),
        JobSpec("representation", "plugins.audit.jobs:representation",
                "Representation audit", makes_run=True),
        JobSpec("bias", "plugins.audit.jobs:bias", "Language model bias probes", makes_run=True),
        JobSpec("report", "plugins.audit.jobs:report_job", "Audit report",
                lane="interactive"),
        JobSpec("targets", "plugins.audit.jobs:list_targets", "Auditable runs",
                lane="interactive"),
        JobSpec("verify", "plugins.audit.jobs:verify", "Verify a file's provenance",
                lane="interactive"),
        JobSpec("sign", "plugins.audit.jobs:sign", "Sign an image (C2PA)", lane="interactive"),
    )

    def create_panel(self, host: PanelHost) -> QWidget:
        from plugins.audit.ui.panel import AuditPanel  # Qt imported only here

        return AuditPanel(host)
