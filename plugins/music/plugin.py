"""The VAE music composer plugin (light: no torch, no Qt at import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.plugin import JobSpec, Plugin, QuickStart

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


class MusicPlugin(Plugin):
    id = "music"
    name = "Music"
    description = ("Learn melodies, piano-rolls or sounds with a VAE; sample, interpolate and "
                   "vary phrases, play them and export MIDI or WAV.")
    icon = "icon.svg"
    order = 20
    jobs = (
        JobSpec("train", "plugins.music.jobs:train", "Train music VAE", makes_run=True),
        JobSpec("sample", "plugins.music.jobs:sample", "Sample phrases", lane="interactive"),
        JobSpec("interpolate", "plugins.music.jobs:interpolate", "Interpolate phrases",
                lane="interactive"),
        JobSpec("variations", "plugins.music.jobs:variations", "Phrase variations",
                lane="interactive"),
        JobSpec("continue", "plugins.music.jobs:continue_", "Continue a phrase",
                lane="interactive"),
        JobSpec("load", "plugins.music.jobs:load", "Load MIDI phrases", lane="interactive"),
        JobSpec("render", "plugins.music.jobs:render", "Render MIDI to WAV", lane="interactive"),
    )
    quick_start = QuickStart(
        "train", "Learn from Bach chorales",
        "Reads the 371 built-in Bach chorales (a minute or two the first time), then trains "
        "a melody model for 3 minutes; the curves open on the right and new phrases can be "
        "sampled from it when it is done.",
        "plugins.music.params:TrainParams",
        {"data": "bach", "minutes": 3.0})
    audit_probe = "plugins.music.audit:MusicProbe"

    def create_panel(self, host: PanelHost) -> QWidget:
        from plugins.music.ui.panel import MusicPanel

        return MusicPanel(host)
