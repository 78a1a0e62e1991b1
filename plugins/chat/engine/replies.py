"""Writing a streamed reply into the chat store as it grows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .records import ReplyStats

if TYPE_CHECKING:
    from .store import Store


class ReplyWriter:
    """Writes a streamed reply into its message as it grows.

    ``append`` keeps text in memory and commits it when ``commit_every`` seconds passed since
    the last commit, so a crash loses at most that much of this one reply. ``finish`` marks the
    reply complete (with its stats); ``stop`` keeps it unfinished (it can be continued). Used as
    a context manager, an exception leaves what was written, unfinished.
    """

    def __init__(self, store: Store, message_id: int, text: str, commit_every: float,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.message_id = message_id
        self._parts = [text]
        self._every = commit_every
        self._clock = clock
        self._last = clock()
        self._dirty = False
        self.commits = 0
        self.closed = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def append(self, chunk: str) -> None:
        if self.closed:
            raise RuntimeError("this reply is already finished")
        if not chunk:
            return
        self._parts.append(chunk)
        self._dirty = True
        if self._clock() - self._last >= self._every:
            self.flush()

    def flush(self) -> None:
        if self._dirty:
            text = self.text
            self._parts = [text]
            self.store._write_content(self.message_id, text, complete=False)
            self.commits += 1
            self._dirty = False
        self._last = self._clock()

    def finish(self, stats: ReplyStats | None = None) -> int:
        self.store._write_content(self.message_id, self.text, complete=True)
        if stats is not None:
            self.store.set_stats(self.message_id, stats)
        self.closed = True
        return self.message_id

    def stop(self, stats: ReplyStats | None = None) -> int:
        self.flush()
        if stats is not None:
            self.store.set_stats(self.message_id, stats)
        self.closed = True
        return self.message_id

    def __enter__(self) -> ReplyWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self.closed:
            self.stop()
