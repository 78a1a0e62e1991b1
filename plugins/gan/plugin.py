"""The Image GAN plugin: train DCGAN / WGAN-GP / SNGAN on your own images, watch it learn,
evaluate it and explore what it made. Light on purpose: no torch, no Qt at import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.plugin import JobSpec, Plugin, QuickStart

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


class GanPlugin(Plugin):
    id = "gan"
    name = "Image GAN"
    description = "Train a GAN on a folder of images, watch it learn, and explore what it makes."
    icon = "icon.svg"
    order = 10
    jobs = (
        JobSpec("train", "plugins.gan.jobs:train", "Train GAN", makes_run=True),
        JobSpec("sample", "plugins.gan.jobs:sample", "Sample GAN"),
        JobSpec("eval", "plugins.gan.jobs:eval", "Evaluate GAN (FD / KID)"),
        JobSpec("generate", "plugins.gan.jobs:generate", "Generate samples", lane="interactive"),
        JobSpec("interpolate", "plugins.gan.jobs:interpolate", "Interpolate",
                lane="interactive"),
        JobSpec("directions", "plugins.gan.jobs:directions", "GANSpace directions",
                lane="interactive"),
        JobSpec("export", "plugins.gan.jobs:export", "Export sample PNG", lane="interactive"),
        JobSpec("regenerate", "plugins.gan.jobs:regenerate", "Regenerate from PNG",
                lane="interactive"),
    )
    quick_start = QuickStart(
        "train", "Train on handwritten digits",
        "Trains a small GAN on the built-in digits for up to 3 minutes; its curves open on "
        "the right, and the model is kept in your workspace, ready to explore.",
        "plugins.gan.params:TrainParams",
        {"data": "digits", "steps": 600, "max_minutes": 3.0, "preview_every": 50})
    audit_probe = "plugins.gan.audit:GanProbe"

    def create_panel(self, host: PanelHost) -> QWidget:
        from plugins.gan.ui.panel import GanPanel

        return GanPanel(host)
