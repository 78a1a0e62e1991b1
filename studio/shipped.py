"""Files shipped with the studio: the top-level ``resources/`` folder (built-in data sets made
by scripts at build time, so a first run does not wait for them).

In a source checkout or an editable install it sits beside the ``studio`` package; in a
PyInstaller bundle under the bundle's data folder (``sys._MEIPASS``). ``STUDIO_RESOURCES``
points elsewhere (tests, packagers).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """The folder of shipped resources (it may not exist in a stripped install)."""
    env = os.environ.get("STUDIO_RESOURCES")
    if env:
        return Path(env)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource(*parts: str) -> Path | None:
    """``resources/<parts>`` when it is shipped, else None."""
    path = resources_dir().joinpath(*parts)
    return path if path.exists() else None
