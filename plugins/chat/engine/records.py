"""The plain records the chat store hands out (frozen: a snapshot, not a live row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Chat:
    id: int
    title: str
    persona: str | None
    model: str | None
    active_leaf: int | None
    settings: dict[str, Any]
    created: float
    updated: float


@dataclass(frozen=True)
class Message:
    id: int
    chat_id: int
    parent_id: int | None
    role: Role
    content: str
    complete: bool
    meta: dict[str, Any]
    created: float
    updated: float


@dataclass(frozen=True)
class ReplyStats:
    """How a reply was made: the honest speed figures shown under it."""

    ttft_s: float | None = None          # time to first token, seconds
    tokens: int | None = None            # tokens generated
    tokens_per_s: float | None = None    # generation speed after the first token
    context_used: int | None = None      # prompt tokens
    context_total: int | None = None     # the model's context window
    backend: str | None = None           # "transformers", "llama.cpp", "intent", ...
    model: str | None = None             # the model's name (never a path)


@dataclass(frozen=True)
class Feedback:
    message_id: int
    rating: int                          # -1 thumbs down, 0 none, +1 thumbs up
    correction: str | None


@dataclass(frozen=True)
class FeedbackExample:
    """One reply with feedback and the conversation that led to it (for fine-tuning)."""

    chat_id: int
    message_id: int
    context: list[tuple[str, str]]       # (role, content) before the reply
    reply: str
    rating: int
    correction: str | None


@dataclass(frozen=True)
class Note:
    id: int
    chat_id: int
    text: str


@dataclass(frozen=True)
class MemoryNote:
    id: int
    text: str
    approved: bool
    source_chat_id: int | None


@dataclass(frozen=True)
class SearchHit:
    chat_id: int
    chat_title: str
    message_id: int
    role: str
    snippet: str
