"""The levels plugin: procedural and learned game levels, checked for playability.

Light on purpose: no torch and no Qt at import (the window lists plugins without loading them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.plugin import JobSpec, Plugin, QuickStart

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


class LevelsPlugin(Plugin):
    id = "levels"
    name = "Game levels"
    description = ("Generate game levels (WFC, BSP dungeons, caves, noise terrain, L-systems), "
                   "train GAN/VAE level models, check playability and export to Tiled.")
    icon = "icon.svg"
    order = 50
    jobs = (
        JobSpec("generate", "plugins.levels.jobs:generate", "Generate levels",
                lane="interactive"),
        JobSpec("check", "plugins.levels.jobs:check", "Check level", lane="interactive"),
        JobSpec("repair", "plugins.levels.jobs:repair", "Repair level", lane="interactive"),
        JobSpec("export", "plugins.levels.jobs:export", "Export level", lane="interactive"),
        JobSpec("info", "plugins.levels.jobs:info", "Open level", lane="interactive"),
        JobSpec("train", "plugins.levels.jobs:train", "Train level model", makes_run=True),
        JobSpec("sample", "plugins.levels.jobs:sample", "Sample level model",
                lane="interactive"),
    )
    quick_start = QuickStart(
        "generate", "Generate dungeons",
        "Makes four BSP dungeons in a few seconds, checks that each can be walked through, "
        "and saves them in your workspace (text and Tiled files).",
        "plugins.levels.params:GenerateParams",
        {"method": "dungeon", "count": 4})
    audit_probe = "plugins.levels.audit:LevelsProbe"

    def create_panel(self, host: PanelHost) -> QWidget:
        from plugins.levels.ui.panel import LevelsPanel

        return LevelsPanel(host)
