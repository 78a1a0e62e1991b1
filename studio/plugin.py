"""What a plugin is: an id, a name, an icon, its jobs and a factory for its panel.

The plugin object is the API; its widget is separate and built only when the user opens it (the
Spyder pattern). Job functions are named by import path and imported only when run, so listing
plugins or opening the window never imports torch or a plugin's engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


@dataclass(frozen=True)
class JobSpec:
    """One job a plugin offers.

    Attributes:
        name: the job's command-line name (``studio run PLUGIN NAME``).
        target: ``"module:function"``; the function is ``f(ctx, p: SomeParams) -> result``.
        title: a short human label for the Jobs dock ("Train GAN").
        makes_run: the host creates a run folder for it (``--out DIR`` names it, else one is made
            under the workspace) and hands it to the job as ``ctx.run_dir``.
        lane: ``"compute"`` jobs queue one after another on the device worker; ``"interactive"``
            jobs (quick generation, previews) run on their own worker so they never wait behind a
            long training run.
    """

    name: str
    target: str
    title: str = ""
    makes_run: bool = False
    lane: str = "compute"
    help: str = ""

    def load(self) -> Callable[..., Any]:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class Plugin:
    """Base class for plugins, registered in the ``studio.plugins`` entry-point group.

    Subclasses set the class attributes and implement :meth:`create_panel`, importing their Qt
    panel module inside it (not at module level).
    """

    id: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    icon: ClassVar[str] = ""  # path to an SVG/PNG, absolute or relative to the plugin module
    order: ClassVar[int] = 100  # position in the navigator
    jobs: ClassVar[tuple[JobSpec, ...]] = ()
    #: ``"module:Class"`` of the plugin's audit probe (how the audit loads, samples and scores
    #: this plugin's models without importing its engine); empty: "not auditable yet"
    audit_probe: ClassVar[str] = ""

    def job(self, name: str) -> JobSpec:
        for spec in self.jobs:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.jobs) or "none"
        from studio.errors import UserError

        raise UserError(f"plugin '{self.id}' has no job '{name}' (its jobs: {known})")

    def load_audit_probe(self) -> Any | None:
        """The probe class named by :attr:`audit_probe`, imported now (None without one)."""
        if not self.audit_probe:
            return None
        module, _, attr = self.audit_probe.partition(":")
        return getattr(importlib.import_module(module), attr)

    def icon_path(self) -> Path | None:
        if not self.icon:
            return None
        p = Path(self.icon)
        if not p.is_absolute():
            mod = importlib.import_module(type(self).__module__)
            p = Path(mod.__file__ or ".").parent / p
        return p if p.exists() else None

    def create_panel(self, host: PanelHost) -> QWidget | None:
        """Build the plugin's central widget, importing the Qt panel module here (not at module
        level). Returning None gives the generic page: one form per job, built from its params.
        """
        return None
