"""The diffusion editor plugin: train DDPMs, load diffusers pipelines, generate and edit images.

Light on purpose: neither torch nor Qt is imported here (the window opens without them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.plugin import JobSpec, Plugin, QuickStart

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


class DiffusionPlugin(Plugin):
    id = "diffusion"
    name = "Diffusion editor"
    description = ("Train a diffusion model on your images or load a Stable Diffusion / diffusers "
                   "model; generate, img2img, inpaint and outpaint on a layered canvas.")
    icon = "icon.svg"
    order = 30
    jobs = (
        JobSpec("train", "plugins.diffusion.jobs:train", "Train diffusion model", makes_run=True),
        JobSpec("sample", "plugins.diffusion.jobs:sample", "Generate images", lane="interactive"),
        JobSpec("img2img", "plugins.diffusion.jobs:img2img", "Image to image",
                lane="interactive"),
        JobSpec("inpaint", "plugins.diffusion.jobs:inpaint", "Inpaint", lane="interactive"),
        JobSpec("outpaint", "plugins.diffusion.jobs:outpaint", "Outpaint", lane="interactive"),
        JobSpec("info", "plugins.diffusion.jobs:info", "Inspect model", lane="interactive"),
    )
    quick_start = QuickStart(
        "train", "Train on handwritten digits",
        "Trains a small diffusion model on the built-in digits for 3 minutes; sample grids "
        "are saved with the run and the loss curve opens on the right.",
        "plugins.diffusion.params:TrainParams",
        {"data": "digits", "minutes": 3.0, "sample_every": 200})
    audit_probe = "plugins.diffusion.audit:DiffusionProbe"

    def create_panel(self, host: PanelHost) -> QWidget:
        from plugins.diffusion.ui.panel import DiffusionPanel

        return DiffusionPanel(host)
