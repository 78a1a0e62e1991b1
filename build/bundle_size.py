"""What a built bundle holds, by top-level package: ``python build/bundle_size.py
[dist/GenerativeStudio] [--top 25] [--json out.json]``.

PyInstaller's one-folder layout keeps each package's files under ``_internal/<package>/`` (the
``nvidia`` CUDA wheels, ``torch``, ``PySide6``...); loose shared libraries at the top of
``_internal`` are grouped by library name (``libpython3.11``), and the executables by name. A
symlink counts nothing (PyInstaller links duplicate libraries instead of copying them), so the
total is what the folder takes on disk; ``--compare`` shows two builds side by side.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def _group(rel: Path) -> str:
    parts = rel.parts
    if parts[0] != "_internal" and parts[0] not in ("Contents",):
        return f"[exe] {parts[0]}" if len(parts) == 1 else parts[0]
    inner = parts[1:] if parts[0] == "_internal" else parts[2:]  # macOS: Contents/<X>/...
    if not inner:
        return "(other)"
    if len(inner) == 1:
        name = inner[0]
        if name.endswith(".dist-info"):
            return "(metadata)"
        stem = re.split(r"\.so|\.dll|\.dylib|\.pyd|\.zip", name)[0]
        return f"[lib] {stem}" if name != stem else name
    top = inner[0]
    if top.endswith((".dist-info", ".egg-info")):
        return "(metadata)"
    if top.endswith(".libs"):  # auditwheel's vendored libraries (numpy.libs, scipy.libs)
        return top[:-5]
    return top


def sizes(folder: Path) -> dict[str, int]:
    """Bytes per group (files only; symlinks are free)."""
    out: dict[str, int] = {}
    for f in folder.rglob("*"):
        if f.is_symlink() or not f.is_file():
            continue
        key = _group(f.relative_to(folder))
        out[key] = out.get(key, 0) + f.stat().st_size
    return out


def _mb(n: int) -> str:
    return f"{n / 1e6:9.1f}"


def report(folder: Path, top: int, other: Path | None = None) -> str:
    a = sizes(folder)
    b = sizes(other) if other else None
    keys = sorted(set(a) | set(b or {}), key=lambda k: -max(a.get(k, 0), (b or {}).get(k, 0)))
    lines = [f"{'package':<32}{'MB':>9}" + (f"{'after MB':>10}{'change':>10}" if b else "")]
    shown = keys[:top]
    rest = keys[top:]
    for k in shown:
        row = f"{k:<32}{_mb(a.get(k, 0))}"
        if b is not None:
            row += f" {_mb(b.get(k, 0))} {_mb(b.get(k, 0) - a.get(k, 0))}"
        lines.append(row)
    if rest:
        ra = sum(a.get(k, 0) for k in rest)
        row = f"{f'({len(rest)} more)':<32}{_mb(ra)}"
        if b is not None:
            rb = sum(b.get(k, 0) for k in rest)
            row += f" {_mb(rb)} {_mb(rb - ra)}"
        lines.append(row)
    total = f"{'total':<32}{_mb(sum(a.values()))}"
    if b is not None:
        total += f" {_mb(sum(b.values()))} {_mb(sum(b.values()) - sum(a.values()))}"
    lines.append(total)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="sizes of a bundle folder by top-level package")
    ap.add_argument("folder", type=Path, nargs="?", default=Path("dist/GenerativeStudio"))
    ap.add_argument("--compare", type=Path, help="a second build: show both and the change")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", type=Path, help="also write the sizes (bytes) as JSON")
    ns = ap.parse_args(argv)
    if not ns.folder.is_dir():
        raise SystemExit(f"{ns.folder} is not a folder: build the bundle first (make bundle)")
    print(report(ns.folder, ns.top, ns.compare))
    if ns.json:
        ns.json.write_text(json.dumps(sizes(ns.folder), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
