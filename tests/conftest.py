"""Test set-up shared by every test: headless Qt, an isolated workspace, the test plugins."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE_PLUGINS = ROOT / "tests" / "fakeplugins"
SHARED = ROOT.parent / "shared"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
sys.path.insert(0, str(FAKE_PLUGINS))
# A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so
# would the studio processes the tests stop with SIGINT (Ctrl-C), which then never stop: give
# this process Python's own handler, which their exec resets to the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(FAKE_PLUGINS), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(autouse=True)
def studio_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own STUDIO_HOME: settings and workspace never touch the user's."""
    home = tmp_path_factory.mktemp("studio_home")
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.fail("../shared (reference data) must sit beside the checkout; see README")
    return SHARED


@pytest.fixture
def make_host(qtbot):
    """Build a panel's PanelHost around a real JobManager, without a main window.

    Usage: ``host = make_host(GanPlugin())``; jobs run on real worker threads; every manager is
    shut down (jobs cancelled, workers joined) at the end of the test.
    """
    from studio import settings as settings_mod
    from studio.host import PanelHost
    from studio.qtjobs import JobManager

    managers: list[JobManager] = []

    def make(plugin):
        manager = JobManager(settings_mod.load())
        managers.append(manager)
        return PanelHost(manager, plugin)

    yield make
    for manager in managers:
        manager.shutdown(timeout=15)
