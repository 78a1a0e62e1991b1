"""Work off the GUI thread for panels, newest request wins.

Why: choosing a model in the audit panel reads its earlier audits and imports its plugin's
probe class, and showing a result decodes up to 48 thumbnails; opening the chat database runs
SQLite's ``quick_check`` over the whole file. Each is tens to hundreds of milliseconds, which
the window must not spend painting nothing. The work is plain Python and ``QImage`` (safe
outside the GUI thread); the answer comes back as a queued signal, and an answer to a request
that a newer one with the same key replaced is dropped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal


@dataclass
class Failed:
    """What a background read raised, for the panel to show."""

    error: BaseException


class Background(QObject):
    """``run(key, fn, on_done)``: ``fn()`` in a thread, then ``on_done(result)`` on the GUI
    thread (a :class:`Failed` when it raised), unless a newer ``run`` with the same key came
    first."""

    _done = Signal(str, int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tokens: dict[str, int] = {}
        self._callbacks: dict[str, Callable[[Any], None]] = {}
        self._busy: set[str] = set()
        self._done.connect(self._deliver)

    def run(self, key: str, fn: Callable[[], Any], on_done: Callable[[Any], None],
            wait: bool = False) -> None:
        token = self._tokens.get(key, 0) + 1
        self._tokens[key] = token
        self._callbacks[key] = on_done
        self._busy.add(key)

        def work() -> None:
            try:
                result: Any = fn()
            except Exception as exc:  # shown by the panel, never lost in a thread
                result = Failed(exc)
            try:
                self._done.emit(key, token, result)
            except RuntimeError:  # the panel was closed meanwhile
                pass

        if wait:
            work()
            QCoreApplication.processEvents()
        else:
            threading.Thread(target=work, name=f"background-{key}", daemon=True).start()

    def busy(self, key: str | None = None) -> bool:
        return bool(self._busy) if key is None else key in self._busy

    def _deliver(self, key: str, token: int, result: Any) -> None:
        if self._tokens.get(key) != token:
            return
        self._busy.discard(key)
        self._callbacks[key](result)
