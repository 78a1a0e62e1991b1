"""A Linux tar.gz of the bundle in the freedesktop layout, so it unpacks straight into a prefix:

    tar -xzf GenerativeStudio-0.1.0-linux-x86_64.tar.gz -C ~/.local --strip-components=1

gives ``~/.local/bin/studio`` and ``~/.local/bin/GenerativeStudio`` (links into
``lib/generative-studio/``), the menu entry, the icons at every size and the AppStream
metadata. ``/opt`` or ``/usr/local`` work the same as root.

    python build/linux/make_tarball.py [--dist dist/GenerativeStudio] [--out dist]

Plain Python (tarfile), so the tests build one from a fake bundle.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ICONS = ROOT / "resources" / "icons"


def _meta():
    spec = importlib.util.spec_from_file_location("studio_build_meta", HERE.parent / "meta.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def layout(dist: Path) -> list[tuple[str, Path | str]]:
    """(path in the prefix, source file or symlink target "->x") for everything shipped."""
    meta = _meta()
    entries: list[tuple[str, Path | str]] = []
    for f in sorted(dist.rglob("*")):
        if f.is_file() or f.is_symlink():
            entries.append((f"lib/generative-studio/{f.relative_to(dist).as_posix()}", f))
    for exe in (meta.CLI_EXE, meta.GUI_EXE):
        entries.append((f"bin/{exe}", f"->../lib/generative-studio/{exe}"))
    entries.append(("share/applications/generative-studio.desktop",
                    HERE / "generative-studio.desktop"))
    entries.append((f"share/metainfo/{meta.APP_ID}.metainfo.xml",
                    HERE / f"{meta.APP_ID}.metainfo.xml"))
    for png in sorted((ICONS / "png").glob("generative-studio-*.png")):
        size = png.stem.rsplit("-", 1)[1]
        entries.append((f"share/icons/hicolor/{size}x{size}/apps/generative-studio.png", png))
    entries.append(("share/icons/hicolor/scalable/apps/generative-studio.svg",
                    ICONS / "generative-studio.svg"))
    return entries


def build(dist: Path, out: Path) -> Path:
    meta = _meta()
    for exe in (meta.CLI_EXE, meta.GUI_EXE):
        if not (dist / exe).is_file():
            raise SystemExit(f"{dist / exe} is missing: run 'make bundle' first")
    top = f"{meta.BUNDLE_NAME}-{meta.version()}-linux-{platform.machine()}"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{top}.tar.gz"
    tmp = target.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for name, src in layout(dist):
            arcname = f"{top}/{name}"
            if isinstance(src, str):  # a symlink
                info = tarfile.TarInfo(arcname)
                info.type = tarfile.SYMTYPE
                info.linkname = src[2:]
                info.mode = 0o777
                tar.addfile(info)
            else:
                tar.add(src, arcname=arcname, recursive=False)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dist", type=Path, default=ROOT / "dist" / "GenerativeStudio")
    ap.add_argument("--out", type=Path, default=ROOT / "dist")
    ns = ap.parse_args(argv)
    print(build(ns.dist, ns.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
