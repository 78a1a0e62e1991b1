"""The allocator tuning the studio applies at start-up (studio.device.configure_allocator)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from studio.device import configure_allocator as c; print(c(), c())"


def _run(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CODE], env={**clean, **env}, check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_applied_once_on_glibc_and_idempotent() -> None:
    assert _run({}) == "True True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_users_own_malloc_settings_win() -> None:
    assert _run({"MALLOC_ARENA_MAX": "4"}) == "False False"
