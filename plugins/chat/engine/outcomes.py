"""What the chat's jobs return: typed records a panel reads and the command line prints.

Light on purpose (no torch, no Qt): the panel imports them. Every record has ``to_json()``
(plain values; what ``--events jsonl`` and the API carry) and prints as what a person wants to
see on the command line (a reply prints as its text).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .records import ReplyStats


@dataclass(frozen=True)
class ContextReport:
    """How the prompt of a reply was fitted into the model's context (never silently)."""

    used: int                     # prompt tokens
    available: int                # tokens the prompt may take (context minus the reply's room)
    max_context: int              # the model's context length
    policy: str                   # stop, drop_middle, rolling, summarise
    complete: bool                # nothing left out or summarised
    notes: tuple[str, ...] = ()   # what was left out or summarised, in words
    dropped_messages: int = 0
    summarised_messages: int = 0
    passages_used: int = 0
    memory_used: int = 0

    def describe(self) -> str:
        head = f"{self.used:,} of {self.available:,} prompt tokens ({self.max_context:,} context)"
        return head + (". " + " ".join(self.notes) if self.notes else "")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class Citation:
    """A document passage a reply was given (file name relative to its folder, no path)."""

    number: int                   # [n] in the prompt
    source: str                   # "guides/setup.md"
    page: int | None
    part: int                     # chunk number from 1
    label: str                    # "setup.md, part 2" / "manual.pdf, page 7"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReplyOutcome:
    """One reply: where it is in the store, its text and how it was made.

    ``stop_reason``: ``eos`` (the model ended its turn), ``length`` (the reply length or the
    context's room ran out: ``cut_by_context`` says which), ``stop`` (a stop string),
    ``cancelled`` (Stop: the reply is kept, unfinished), ``intent`` (a canned answer).
    """

    chat_id: int
    message_id: int               # the reply
    parent_id: int | None         # the message it answers
    user_message_id: int | None   # the user message this job added (mode "send")
    text: str
    complete: bool
    stop_reason: str
    seed: int | None
    stats: ReplyStats
    mode: str = "send"
    context: ContextReport | None = None
    intent: str | None = None
    intent_score: float | None = None
    citations: tuple[Citation, ...] = ()
    backend: dict[str, Any] | None = None   # BackendInfo.to_json()
    template: str | None = None             # which chat template formatted the prompt
    cut_by_context: bool = False
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.text

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["context"] = self.context.to_json() if self.context else None
        d["citations"] = [c.to_json() for c in self.citations]
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class CompareOutcome:
    """The same message answered by two models, side by side (two sibling replies)."""

    a: ReplyOutcome
    b: ReplyOutcome

    def __str__(self) -> str:
        def name(r: ReplyOutcome) -> str:
            return str((r.backend or {}).get("model") or r.stats.model or "model")

        return (f"--- A: {name(self.a)} ---\n{self.a.text}\n"
                f"--- B: {name(self.b)} ---\n{self.b.text}")

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a.to_json(), "b": self.b.to_json()}


@dataclass(frozen=True)
class TemplatePreview:
    """A chat template rendered: what the model sees."""

    label: str                    # "the model's (tokenizer_config.json)", "ChatML ..."
    text: str                     # the rendered prompt
    tokens: int | None            # its tokens (when a model was given)
    supports_system: bool
    available: tuple[str, ...] = ()  # the model's own named templates
    builtins: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainOutcome:
    """A training job's result: the model folder (what the command line prints)."""

    model: str                    # the model (or adapter) folder
    step: int
    best_val: float | None
    seconds: float
    examples: int
    held_out: int = 0
    sample: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.model

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
