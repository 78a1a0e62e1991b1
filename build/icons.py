"""Make the application icon files from the one SVG source (``resources/icons/
generative-studio.svg``): PNGs at the sizes desktops ask for, a Windows ``.ico`` and a macOS
``.icns``. Run ``python build/icons.py`` after changing the SVG; the results are committed (a few
hundred kB), so a packager needs no SVG renderer and every system builds from the same pixels.

Qt's own SVG renderer draws the PNGs (PySide6 is already a dependency; Pillow reads no SVG), and
Pillow writes the ``.ico`` and ``.icns`` containers from those PNGs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
SOURCE = ICONS / "generative-studio.svg"
#: the sizes a freedesktop hicolor theme, Windows and macOS look for
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: Pillow's ICNS writer takes these (16..1024; the @2x variants are made from the same images)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def png_path(size: int) -> Path:
    return ICONS / "png" / f"generative-studio-{size}.png"


def render_pngs() -> None:
    """Draw the SVG at each size (antialiased, transparent background)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {SOURCE}")
    png_path(16).parent.mkdir(parents=True, exist_ok=True)
    for size in PNG_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        if not image.save(str(png_path(size))):
            raise SystemExit(f"cannot write {png_path(size)}")


def write_containers() -> None:
    """The .ico (Windows) and .icns (macOS) from the rendered PNGs."""
    from PIL import Image

    images = {s: Image.open(png_path(s)).convert("RGBA") for s in PNG_SIZES}
    images[256].save(ICONS / "generative-studio.ico", format="ICO",
                     sizes=[(s, s) for s in ICO_SIZES],
                     append_images=[images[s] for s in ICO_SIZES if s != 256])
    images[1024].save(ICONS / "generative-studio.icns", format="ICNS",
                      append_images=[images[s] for s in ICNS_SIZES if s != 1024])


def main() -> int:
    render_pngs()
    write_containers()
    for f in sorted(ICONS.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(ROOT)}  {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
