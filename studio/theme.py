"""Light and dark themes: Qt's Fusion style with an explicit palette, matching plot colours,
and the status colours (warning, error, success) that panels should use instead of their own.

Every text colour here reads at 4.5:1 or more against the backgrounds it is drawn on (WCAG AA
for body text; ``tests/core/test_window_ux.py`` measures it): Qt's own light palette draws
placeholder and caption text at half opacity (3.8:1), and an orange warning on the dark
background read at 2.75:1.

Panels: a label with ``setObjectName("caption")`` (secondary text), ``"warning"``, ``"error"``
or ``"success"`` gets the theme's colour from the style sheet; code that paints or writes HTML
asks :func:`colour` (``theme.colour("warning")``) for the current theme's.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

R = QPalette.ColorRole

PALETTES: dict[str, dict[QPalette.ColorRole, str]] = {
    "light": {
        R.Window: "#F3F3F3",
        R.WindowText: "#1A1A1A",
        R.Base: "#FFFFFF",
        R.AlternateBase: "#F5F5F5",
        R.ToolTipBase: "#FFFFF0",
        R.ToolTipText: "#1A1A1A",
        R.Text: "#1A1A1A",
        R.Button: "#E9E9E9",
        R.ButtonText: "#1A1A1A",
        R.BrightText: "#B3261E",
        R.Highlight: "#1F6FB5",
        R.HighlightedText: "#FFFFFF",
        R.Link: "#0B5CAD",
        R.PlaceholderText: "#5F5F5F",
    },
    "dark": {
        R.Window: "#2B2D31",
        R.WindowText: "#E6E6E6",
        R.Base: "#1F2023",
        R.AlternateBase: "#2B2D31",
        R.ToolTipBase: "#3A3C41",
        R.ToolTipText: "#E6E6E6",
        R.Text: "#E6E6E6",
        R.Button: "#35373C",
        R.ButtonText: "#E6E6E6",
        R.BrightText: "#FF8A80",
        R.Highlight: "#2F6DB0",
        R.HighlightedText: "#FFFFFF",
        R.Link: "#7CB8FF",
        R.PlaceholderText: "#A6A6A6",
    },
}

#: status colours per theme: text on the window or base background
STATUS: dict[str, dict[str, str]] = {
    "light": {"warning": "#8A5300", "error": "#B3261E", "success": "#1E6B30",
              "info": "#0B5CAD", "muted": "#5F5F5F"},
    "dark": {"warning": "#F2B65A", "error": "#FF8A80", "success": "#7BD88F",
             "info": "#8AB4F8", "muted": "#A6A6A6"},
}

#: (text role, background role) pairs that must read at 4.5:1
TEXT_PAIRS = [(R.WindowText, R.Window), (R.Text, R.Base), (R.ButtonText, R.Button),
              (R.PlaceholderText, R.Window), (R.PlaceholderText, R.Base),
              (R.HighlightedText, R.Highlight), (R.ToolTipText, R.ToolTipBase),
              (R.Link, R.Base), (R.Link, R.Window)]

_current = "light"

_STYLE = """
QListWidget#navigator {{ border: none; padding: 6px 4px; font-size: 13px; outline: 0; }}
QListWidget#navigator::item {{ padding: 8px 6px; border-radius: 6px; }}
QListWidget#navigator::item:selected {{ background: palette(highlight);
                                       color: palette(highlighted-text); }}
QLabel#placeholder, QLabel#caption {{ color: palette(placeholder-text); }}
QLabel#placeholder {{ font-size: 13px; }}
QLabel#pluginTitle {{ font-size: 18px; font-weight: 600; }}
QLabel#cardTitle {{ font-size: 15px; font-weight: 600; }}
QLabel#pluginError, QLabel#error {{ color: {error}; }}
QLabel#warning {{ color: {warning}; }}
QLabel#success {{ color: {success}; }}
QFrame#welcomeCard {{ background: palette(base); border: 1px solid palette(mid);
                     border-radius: 8px; }}
QPushButton#primary {{ background: palette(highlight); color: palette(highlighted-text);
                      border: 1px solid palette(highlight); border-radius: 4px;
                      padding: 4px 12px; font-weight: 600; }}
QPushButton#primary:disabled {{ background: palette(button); color: palette(placeholder-text);
                               border-color: palette(mid); }}
QDockWidget::title {{ padding: 4px 6px; }}
"""


def contrast(fg: str | QColor, bg: str | QColor) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""

    def lum(c: QColor) -> float:
        def chan(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * chan(c.redF()) + 0.7152 * chan(c.greenF()) + 0.0722 * chan(c.blueF())

    a, b = lum(QColor(fg)), lum(QColor(bg))
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


def palette(theme: str) -> QPalette:
    pal = QPalette()
    for role, value in PALETTES[theme].items():
        pal.setColor(role, QColor(value))
    disabled = "#7A7A7A" if theme == "dark" else "#8A8A8A"
    for role in (R.Text, R.ButtonText, R.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled))
    # mid-tones Fusion derives frames and separators from
    base = QColor(PALETTES[theme][R.Window])
    pal.setColor(R.Light, base.lighter(130))
    pal.setColor(R.Midlight, base.lighter(110))
    pal.setColor(R.Mid, base.darker(130) if theme == "light" else base.lighter(160))
    pal.setColor(R.Dark, base.darker(160))
    pal.setColor(R.Shadow, QColor("#000000"))
    return pal


def colour(name: str, theme: str | None = None) -> str:
    """The current (or ``theme``'s) status colour: warning, error, success, info, muted."""
    return STATUS[theme or _current][name]


def current() -> str:
    return _current


def apply(app: QApplication, theme: str) -> None:
    """Switch the whole application to ``theme`` ("light" or "dark")."""
    import pyqtgraph as pg

    global _current
    theme = theme if theme in PALETTES else "light"
    _current = theme
    app.setStyle("Fusion")
    app.setPalette(palette(theme))
    if theme == "dark":
        pg.setConfigOptions(background="#1F2023", foreground="#D0D0D0", antialias=True)
    else:
        pg.setConfigOptions(background="#FFFFFF", foreground="#333333", antialias=True)
    app.setStyleSheet(_STYLE.format(**STATUS[theme]))


def plot_background(theme: str) -> str:
    return "#1F2023" if theme == "dark" else "#FFFFFF"
