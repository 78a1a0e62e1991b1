"""Plugin discovery through the studio.plugins entry-point group."""

from __future__ import annotations

import pytest

from studio import registry
from studio.errors import UserError


def test_broken_plugin_is_disabled_with_its_error_and_others_load() -> None:
    records = {r.id: r for r in registry.discover()}
    assert records["demo"].ok and records["demo"].name == "Demo"
    broken = records["broken"]
    assert not broken.ok
    assert broken.status() == "disabled: ImportError: this plugin is broken on purpose (test)"
    assert "Traceback" in broken.traceback


def test_builtin_plugins_are_registered() -> None:
    ids = {r.id for r in registry.discover()}
    assert {"gan", "music", "diffusion", "writer", "levels"} <= ids


def test_get_explains_unknown_and_disabled_plugins() -> None:
    with pytest.raises(UserError, match="no plugin 'nope'"):
        registry.get("nope")
    with pytest.raises(UserError, match="plugin 'broken' is disabled"):
        registry.get("broken")
    with pytest.raises(UserError, match="has no job 'fly'"):
        registry.get("demo").job("fly")
