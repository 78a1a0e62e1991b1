"""Architecture rules that must not erode: pure engines, lazy torch."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "PyQt5", "PyQt6")
# the host's Qt side: everything else in studio/ must be in the pure list
QT_HOST = {"app", "__main__", "window", "plots", "theme", "host", "qtjobs", "widgets",
           "selftest"}  # selftest renders the window


def _pure_contract() -> dict:
    """The import-linter contract in pyproject.toml: the one list of pure modules."""
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = conf["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c.get("id") == "pure")


def _module_files(name: str) -> list[Path]:
    """The source files of a dotted module name; ``*`` matches any package at that level."""
    paths = [ROOT]
    for part in name.split("."):
        if part == "*":
            paths = [c for p in paths for c in sorted(p.iterdir())
                     if (c / "__init__.py").exists()]
        else:
            paths = [p / part for p in paths]
    files: list[Path] = []
    for p in paths:
        if p.with_suffix(".py").is_file():
            files.append(p.with_suffix(".py"))
        elif p.is_dir():
            files += sorted(p.rglob("*.py"))
    return files


def _pure_files() -> list[Path]:
    return sorted({f for name in _pure_contract()["source_modules"] for f in _module_files(name)})


def test_one_list_of_pure_modules_covers_the_host_and_every_plugin() -> None:
    listed = set(_pure_contract()["source_modules"])
    host = {p.stem for p in (ROOT / "studio").iterdir()
            if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem != "__init__"}
    missing = sorted(m for m in host - QT_HOST if f"studio.{m}" not in listed)
    assert missing == [], f"add these pure host modules to pyproject's 'pure' contract: {missing}"
    for part in ("engine", "params", "jobs", "plugin"):
        assert f"plugins.*.{part}" in listed
    assert "plugins.common" in listed


def _imports(path: Path) -> list[str]:
    """Imported module names, skipping ``if TYPE_CHECKING:`` blocks and ``create_panel`` (the
    one sanctioned bridge from a plugin object to its Qt panel)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        typing_only = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        bridge = isinstance(node, ast.FunctionDef) and node.name == "create_panel"
        if typing_only or bridge:
            skip.update(id(n) for n in ast.walk(node))
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_engines_and_core_never_import_qt() -> None:
    offenders = []
    for path in _pure_files():
        for name in _imports(path):
            if name.split(".")[0] in QT_MODULES:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    files = _pure_files()
    assert ROOT / "studio" / "manifest.py" in files
    assert ROOT / "plugins" / "gan" / "params.py" in files
    assert ROOT / "plugins" / "levels" / "engine" / "level.py" in files
    assert offenders == []


def test_window_and_every_panel_open_without_importing_torch(tmp_path: Path) -> None:
    code = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from studio.window import MainWindow
win = MainWindow()
for rec in win.records:
    win.panel(rec.id)
win.show(); app.processEvents()
heavy = [m for m in ("torch", "transformers", "diffusers", "torchaudio") if m in sys.modules]
win._force_close = True; win.shutdown(5)
print("HEAVY=" + ",".join(heavy))
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", STUDIO_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_plugin_modules_are_light() -> None:
    """Listing plugins (``studio plugins``) must not import torch or Qt."""
    code = ("import sys; from studio import registry; registry.discover(); "
            "print([m for m in ('torch', 'PySide6') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_import_linter_contract_holds() -> None:
    """The same rule as an import-linter contract (pyproject.toml), which also follows indirect
    imports: a pure module importing a helper that imports Qt is caught too."""
    exe = Path(sys.executable).parent / ("lint-imports.exe" if os.name == "nt" else "lint-imports")
    proc = subprocess.run([str(exe), "--no-cache"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"Contracts: \d+ kept, 0 broken\.", proc.stdout), proc.stdout[-2000:]
