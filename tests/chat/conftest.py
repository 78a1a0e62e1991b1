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


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a ChatML template in its tokenizer config (built here)."""
    from chat_models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("chat_model") / "tiny-chat")


@pytest.fixture(scope="session")
def tiny_gguf(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as an F32 GGUF file written with the gguf package."""
    from chat_models import write_gguf_of

    return write_gguf_of(tiny_chat_model, tmp_path_factory.mktemp("gguf") / "tiny-chat.gguf",
                         "f32")


@pytest.fixture(autouse=True)
def _fresh_backends():
    """Loaded backends and the jobs' open databases are process-wide: each test starts
    without any."""
    yield
    from plugins.chat.engine.backends import clear_backends
    from plugins.chat.jobs import close_shared

    clear_backends()
    close_shared()
