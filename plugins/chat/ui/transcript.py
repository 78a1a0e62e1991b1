"""What the conversation view shows of a chat, read from the store in one go.

A few small queries per message (its position among its alternatives, its figures, its
feedback): about a millisecond for a 200-message chat on SQLite, so opening a chat may run on
the GUI thread. The records are plain snapshots; the view never touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugins.chat.engine.store import Store


@dataclass(frozen=True)
class Shown:
    """One message as the view shows it."""

    id: int
    role: str                       # user, assistant, system
    text: str
    complete: bool
    position: int                   # 1-based among its alternatives
    count: int                      # how many alternatives (regenerated replies, edits)
    stats: dict[str, Any] | None    # ReplyStats as a dict (assistant replies)
    rating: int                     # -1, 0, +1
    correction: str | None
    meta: dict[str, Any]
    last: bool                      # the last message of the branch

    @property
    def can_continue(self) -> bool:
        """Continue is offered for the branch's last reply when it was cut short (Stop, a
        crash, or its length ran out)."""
        return (self.role == "assistant" and self.last and not self.meta.get("greeting")
                and (not self.complete or self.meta.get("stop_reason") == "length"))


def load_branch(store: Store, chat_id: int) -> list[Shown]:
    """The chat's active branch, oldest first."""
    msgs = store.branch(chat_id)
    out = []
    for i, m in enumerate(msgs):
        pos, count = store.sibling_position(m.id)
        stats = store.stats(m.id) if m.role == "assistant" else None
        fb = store.feedback(m.id) if m.role == "assistant" else None
        out.append(Shown(m.id, m.role, m.content, m.complete, pos, count,
                         dict(stats.__dict__) if stats else None,
                         fb.rating if fb else 0, fb.correction if fb else None,
                         dict(m.meta), i == len(msgs) - 1))
    return out
