"""Opening the chat plugin's SQLite files one careful way.

WAL (readers never wait for the streaming writer), foreign keys on, a ``quick_check`` so a
damaged file is found when it is opened rather than halfway through a reply, the schema created
in one transaction and upgraded step by step (``PRAGMA user_version``). A damaged file is moved
aside with its ``-wal``/``-shm`` companions (a stale WAL beside a new file would be replayed into
it) and reported as :class:`DamagedDatabase`; a busy or unreadable file is a plain UserError and is
never moved.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from studio.errors import UserError

Migration = Callable[[sqlite3.Connection], None]


class DamagedDatabase(Exception):
    """The file is not a readable SQLite database; it was moved to ``moved_to``."""

    def __init__(self, path: Path, moved_to: Path | None, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.moved_to = moved_to
        self.reason = reason


def connect(path: Path, *, schema: str, version: int, migrations: Mapping[int, Migration],
            what: str, clock: Callable[[], float] = time.time) -> sqlite3.Connection:
    """An open connection (autocommit; use :func:`transaction`) with the schema at ``version``.

    ``schema`` creates version 1; ``migrations[v]`` takes version ``v`` to ``v + 1``. ``what``
    names the file in messages ("chat database")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check}")
        _upgrade(conn, path, schema, version, migrations, what)
        return conn
    except sqlite3.DatabaseError as e:
        if conn is not None:
            conn.close()
        if not is_corruption(e):
            raise UserError(f"Could not open the {what} {path.name}: {e}. Close other copies "
                            "of the studio and try again.") from None
        raise DamagedDatabase(path, move_aside(path, clock), str(e)) from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise


def _upgrade(conn: sqlite3.Connection, path: Path, schema: str, version: int,
             migrations: Mapping[int, Migration], what: str) -> None:
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > version:
        raise UserError(f"The {what} {path.name} was made by a newer version of the studio; "
                        "update the studio to open it.")
    if current == 0:
        try:        # one script, one transaction: a crash while creating leaves an empty file
            conn.executescript("BEGIN IMMEDIATE;" + schema + "PRAGMA user_version=1;COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        current = 1
    while current < version:
        step = migrations.get(current)
        if step is None:
            raise UserError(f"The {what} {path.name} is at schema version {current} and no "
                            "upgrade step is known.")
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute(f"PRAGMA user_version={current + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current += 1


def move_aside(path: Path, clock: Callable[[], float] = time.time) -> Path | None:
    """Rename a damaged file to ``<name>.corrupt-<time>`` (never overwriting an earlier one)."""
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(clock()))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.replace(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    return target


def is_corruption(e: sqlite3.DatabaseError) -> bool:
    """A damaged or foreign file, as opposed to a busy or unreachable one."""
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e).lower()
    return (name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text
            or "malformed" in text or text.startswith("quick_check"))


@contextmanager
def transaction(conn: sqlite3.Connection, lock: threading.RLock, path: Path,
                what: str) -> Iterator[sqlite3.Connection]:
    """One write transaction under ``lock``; SQLite failures become messages for the user."""
    with lock:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise friendly(e, path, what) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            conn.execute("ROLLBACK")
            raise friendly(e, path, what) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class DamagedWhileOpen(UserError):
    """A file found damaged while in use (it is moved aside when next opened)."""


def friendly(e: sqlite3.DatabaseError, path: Path, what: str) -> Exception:
    """The user's words for a failure while working (a damaged file is moved aside the next
    time it is opened)."""
    if is_corruption(e):
        return DamagedWhileOpen(f"The {what} {path.name} is damaged ({e}). Close the chat "
                                "panel and reopen it: the damaged file is then moved aside.")
    if "locked" in str(e).lower() or "busy" in str(e).lower():
        return UserError(f"The {what} {path.name} is busy (another copy of the studio is "
                         "writing to it); try again in a moment.")
    return e
