"""What a plugin is: an id, a name, an icon, its jobs and a factory for its panel.

The plugin object is the API; its widget is separate and built only when the user opens it (the
Spyder pattern). Job functions are named by import path and imported only when run, so listing
plugins or opening the window never imports torch or a plugin's engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


SAMPLES = Path(__file__).parent / "resources" / "samples"


@dataclass(frozen=True)
class QuickStart:
    """One job the welcome page starts in one click, and what the user should expect.

    ``values`` are the job's parameters as the command line takes them (``{"data":
    "digits", "steps": 400}``), read into ``params`` (``"plugins.foo.params:TrainParams"``,
    a light module) and checked before the job is queued. A value ``"{samples}/NAME"``
    names a sample file the studio ships (``studio/resources/samples``).
    """

    job: str
    title: str  # "Train a GAN on handwritten digits"
    expect: str  # "About 3 minutes on a laptop CPU; samples sharpen in the panel, ..."
    params: str  # "module:Class" of the job's params dataclass
    values: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """The typed, checked params object (raises UserError on values that do not fit)."""
        from studio import params as params_mod

        module, _, attr = self.params.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        values = {k: (str(SAMPLES / v[len("{samples}/"):])
                      if isinstance(v, str) and v.startswith("{samples}/") else v)
                  for k, v in self.values.items()}
        return params_mod.from_mapping(cls, values)


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
    #: the welcome page's one-click job for this plugin (None: the card opens the panel)
    quick_start: ClassVar[QuickStart | None] = None
    #: words for this plugin's own metric keys in the plots dock, added to the studio's
    #: table (``studio.plotlabels``): ``{"loss": "Loss (nats per note)", "my_key": ...}``
    metric_labels: ClassVar[Mapping[str, Any]] = {}

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
