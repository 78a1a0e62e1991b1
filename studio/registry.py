"""Finding plugins through the ``studio.plugins`` entry-point group.

A plugin that fails to import or construct is kept as a disabled record carrying its error, so the
window can show it greyed out with the reason while every other plugin keeps working.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from studio.errors import UserError
from studio.plugin import Plugin

log = logging.getLogger(__name__)
GROUP = "studio.plugins"


@dataclass
class PluginRecord:
    id: str
    name: str
    plugin: Plugin | None
    error: str | None = None
    traceback: str | None = None
    order: int = 1000

    @property
    def ok(self) -> bool:
        return self.plugin is not None

    def status(self) -> str:
        return "ok" if self.ok else f"disabled: {self.error}"


def _load(ep: EntryPoint) -> PluginRecord:
    try:
        obj = ep.load()
        plugin = obj() if isinstance(obj, type) else obj
        if not isinstance(plugin, Plugin):
            raise TypeError(f"{ep.value} is not a studio Plugin")
        if plugin.id != ep.name:
            raise ValueError(f"plugin id '{plugin.id}' does not match entry point '{ep.name}'")
        return PluginRecord(plugin.id, plugin.name or plugin.id, plugin, order=plugin.order)
    except Exception as exc:  # any failure disables this plugin only
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.info("plugin %s disabled: %s", ep.name, msg)
        return PluginRecord(ep.name, ep.name, None, msg, traceback.format_exc())


def discover() -> list[PluginRecord]:
    """All plugins in navigator order; duplicates (same id twice) keep the first."""
    seen: dict[str, PluginRecord] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in seen:
            continue
        seen[ep.name] = _load(ep)
    return sorted(seen.values(), key=lambda r: (r.order, r.id))


def get(plugin_id: str, records: list[PluginRecord] | None = None) -> Plugin:
    """The plugin with ``plugin_id``, or a :class:`UserError` that says why it is unavailable."""
    records = records if records is not None else discover()
    for rec in records:
        if rec.id == plugin_id:
            if rec.plugin is None:
                raise UserError(f"plugin '{plugin_id}' is disabled: {rec.error}")
            return rec.plugin
    known = ", ".join(r.id for r in records) or "none"
    raise UserError(f"no plugin '{plugin_id}' (installed: {known})")
