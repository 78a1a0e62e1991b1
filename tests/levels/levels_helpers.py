"""Shared by the levels tests (imported by this unique name, never ``from conftest``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from plugins.levels.engine import generate as gen
from plugins.levels.params import GenerateParams


def settings(method: str, **values: Any) -> gen.MethodSettings:
    """The engine settings of ``method`` with the generate job's defaults (their one home)
    and ``values`` changed."""
    return GenerateParams(method=method, **values).settings()  # type: ignore[arg-type]


def knobs(method: str, **values: Any) -> dict[str, Any]:
    """The same settings as keyword arguments of a ``classic`` generator."""
    return asdict(settings(method, **values))
