"""Fixtures for the chat engine tests: a fresh store in a temporary workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.chat.engine.store import Store


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "workspace")
    yield s
    s.close()
