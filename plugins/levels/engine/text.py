"""Reading the plugin's text formats (VGLC levels, legends, pins) the way people save them.

Editors save UTF-8 with or without a byte-order mark, and some still save UTF-16 or a Windows
code page. Every text file the plugin reads goes through :func:`read_text`: UTF-8, the BOM
dropped, and any byte that is not UTF-8 refused with a message naming the file, the line and the
column, rather than turned into stray characters (a BOM read as Latin-1 is three extra tiles on
the first row, which used to be reported as "ragged rows").

:func:`show_char` names a character the way the user typed it (``'Ð'``, not ``'\\xd0'``), and
invisible ones by their code point, so messages about tiles can be acted on.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from studio.errors import UserError

_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def decode(raw: bytes, name: str, what: str = "file") -> str:
    """``raw`` as UTF-8 text (BOM dropped); ``name`` and ``what`` word the error."""
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            raise UserError(f"{what} {name} is saved as {enc}: save it as UTF-8 text and open it "
                            "again")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[start:exc.start].decode("utf-8", "replace")) + 1
        raise UserError(f"{what} {name} is not UTF-8 text: byte 0x{raw[exc.start]:02X} on line "
                        f"{line}, column {column} cannot be read. Save the file as UTF-8 (in "
                        "most editors: Save As, encoding UTF-8) and open it again") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """The text of ``path`` (UTF-8, BOM dropped), or a :class:`UserError` naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        raise UserError(f"{what} {path.name} cannot be read ({exc.strerror or exc})") from None
    return decode(raw, path.name, what)


def show_char(ch: str) -> str:
    """``ch`` quoted as typed (``'Ж'``), or named by code point when it is invisible."""
    if ch == " ":
        return "' ' (a space)"
    if ch == "\t":
        return "a tab (U+0009)"
    if len(ch) == 1 and (not ch.isprintable() or unicodedata.category(ch) in ("Cf", "Zs")):
        return f"U+{ord(ch):04X} (an invisible character)"
    return f"'{ch}'"


def show_chars(chars: str | list[str]) -> str:
    """Several characters, as :func:`show_char` names them, comma separated."""
    return ", ".join(show_char(c) for c in chars)
