"""Small text formatting shared by the Jobs dock, the status bar and the command line."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``42 s``, ``3:07``, ``1:02:03``; an em dash when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN, negative
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def rate(per_second: float | None, unit: str = "") -> str:
    """One rate format everywhere (Jobs dock, status bar): always per second, never "s/it"
    in one place and "steps/s" in another: ``1,234/s``, ``12.5 steps/s``, ``0.42/s``."""
    if not per_second:
        return "—"
    unit = f" {unit}" if unit else ""
    if per_second >= 100:
        return f"{per_second:,.0f}{unit}/s"
    if per_second >= 1:
        return f"{per_second:.1f}{unit}/s"
    return f"{per_second:.2g}{unit}/s"


def count(n: float) -> str:
    """``950``, ``12.3k``, ``4.5M``, ``1.2B``: parameter and token counts."""
    n = float(n)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """``812 bytes``, ``3.4 MB``, ``1.2 GB`` (decimal units, as disks and file managers say)."""
    n = float(n)
    for div, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(n) >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{n:.0f} bytes"


def when(timestamp: float | None, now: float | None = None) -> str:
    """``today 14:03``, ``yesterday 09:12``, ``2 Dec 14:03``, ``2 Dec 2025``: when a run
    started, in the words a person uses."""
    import datetime as dt

    if not timestamp:
        return "—"
    t = dt.datetime.fromtimestamp(timestamp)
    today = dt.datetime.fromtimestamp(now).date() if now else dt.date.today()
    if t.date() == today:
        return f"today {t:%H:%M}"
    if (today - t.date()).days == 1:
        return f"yesterday {t:%H:%M}"
    if t.year == today.year:
        return f"{t.day} {t:%b %H:%M}"
    return f"{t.day} {t:%b %Y}"
