"""Architecture rules that must not erode: pure engines, lazy torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "PyQt5", "PyQt6")
PURE_HOST = ["jobs", "storage", "device", "settings", "runs", "params", "cli", "plugin", "errors",
             "registry", "fmt"]


def _pure_files() -> list[Path]:
    files = [ROOT / "studio" / f"{m}.py" for m in PURE_HOST]
    files += sorted((ROOT / "plugins" / "common").rglob("*.py"))
    for plugin in sorted((ROOT / "plugins").iterdir()):
        files += sorted(plugin.glob("engine*.py")) + sorted(plugin.glob("engine/**/*.py"))
    return files


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
    assert len(_pure_files()) > len(PURE_HOST)
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
    assert "Contracts: 1 kept, 0 broken." in proc.stdout
