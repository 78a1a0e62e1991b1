"""Light and dark themes: Qt's Fusion style with a palette, plus matching plot colours."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_DARK = {
    QPalette.ColorRole.Window: "#2B2D31",
    QPalette.ColorRole.WindowText: "#E6E6E6",
    QPalette.ColorRole.Base: "#1F2023",
    QPalette.ColorRole.AlternateBase: "#2B2D31",
    QPalette.ColorRole.ToolTipBase: "#3A3C41",
    QPalette.ColorRole.ToolTipText: "#E6E6E6",
    QPalette.ColorRole.Text: "#E6E6E6",
    QPalette.ColorRole.Button: "#35373C",
    QPalette.ColorRole.ButtonText: "#E6E6E6",
    QPalette.ColorRole.BrightText: "#FF6B6B",
    QPalette.ColorRole.Highlight: "#4C9BE8",
    QPalette.ColorRole.HighlightedText: "#FFFFFF",
    QPalette.ColorRole.Link: "#6FB1FF",
    QPalette.ColorRole.PlaceholderText: "#8C8C8C",
}

_STYLE = """
QListWidget#navigator { border: none; padding: 6px 4px; font-size: 13px; }
QListWidget#navigator::item { padding: 8px 6px; border-radius: 6px; }
QListWidget#navigator::item:selected { background: palette(highlight);
                                       color: palette(highlighted-text); }
QLabel#placeholder { color: palette(placeholder-text); font-size: 13px; }
QLabel#pluginTitle { font-size: 18px; font-weight: 600; }
QLabel#pluginError { color: #D64545; }
QDockWidget::title { padding: 4px 6px; }
"""


def apply(app: QApplication, theme: str) -> None:
    """Switch the whole application to ``theme`` ("light" or "dark")."""
    import pyqtgraph as pg

    app.setStyle("Fusion")
    if theme == "dark":
        pal = QPalette()
        for role, colour in _DARK.items():
            pal.setColor(role, QColor(colour))
        for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText,
                     QPalette.ColorRole.WindowText):
            pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7A7A7A"))
        app.setPalette(pal)
        pg.setConfigOptions(background="#1F2023", foreground="#D0D0D0", antialias=True)
    else:
        app.setPalette(app.style().standardPalette())
        pg.setConfigOptions(background="#FFFFFF", foreground="#333333", antialias=True)
    app.setStyleSheet(_STYLE)


def plot_background(theme: str) -> str:
    return "#1F2023" if theme == "dark" else "#FFFFFF"
