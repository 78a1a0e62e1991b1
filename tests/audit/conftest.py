"""The audit tests' set-up: the synthetic plugins join the registry for each test."""

from __future__ import annotations

import pytest


@pytest.fixture
def synth_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the synthetic plugins (tests/audit/audit_synthetic.py) discoverable, as if installed."""
    import audit_synthetic

    from studio import registry

    real = registry.discover

    def discover() -> list[registry.PluginRecord]:
        extra = [registry.PluginRecord(p.id, p.name, p()) for p in audit_synthetic.PLUGINS]
        return [*real(), *extra]

    monkeypatch.setattr(registry, "discover", discover)
