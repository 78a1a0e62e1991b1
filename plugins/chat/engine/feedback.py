"""The user's feedback as training data ("Improve this model").

From every rated or corrected reply in the chat store (:meth:`~.store.Store.feedback_examples`):

- a thumbs-up reply is a supervised example (SFT): the conversation before it and the reply;
- a corrected reply is a supervised example of the *correction*, and a preference pair
  (DPO): the correction is preferred over the reply the model gave;
- a thumbs-down reply without a correction is left out and counted: it says what not to
  answer, but not what to answer instead.

The prompt of each example is the conversation as the chat had it: the chat persona's system
prompt, then the branch up to the reply (a greeting before the first user message is left
out: strict templates refuse it). Every example has a stable id (its chat, message and a hash of
its content), which the run's manifest lists: "which feedback trained this adapter" has an
answer, and an edited correction is a new example.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import UserError
from studio.manifest import Example

from .personas import DEFAULT_PERSONA
from .records import FeedbackExample
from .store import Store


@dataclass(frozen=True)
class FeedbackItem:
    """One usable piece of feedback."""

    kind: str                         # "liked" or "corrected"
    messages: tuple[tuple[str, str], ...]   # the prompt: (role, content), system first
    target: str                       # the reply to learn (the correction when corrected)
    rejected: str | None              # the model's reply a correction replaced
    chat_id: int
    message_id: int

    @property
    def sha256(self) -> str:
        data = json.dumps([self.messages, self.target, self.rejected], ensure_ascii=False)
        return hashlib.sha256(data.encode("utf-8")).hexdigest()

    def example(self) -> Example:
        return Example(f"chat-{self.chat_id}/message-{self.message_id}", self.sha256,
                       self.kind)

    def prompt_messages(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.example().id, "kind": self.kind, "messages": self.prompt_messages(),
                "target": self.target, "rejected": self.rejected}


@dataclass
class FeedbackSet:
    items: list[FeedbackItem] = field(default_factory=list)
    thumbs_down_only: int = 0         # rated down, no correction: not usable
    empty: int = 0                    # no conversation before the reply

    @property
    def liked(self) -> int:
        return sum(1 for i in self.items if i.kind == "liked")

    @property
    def corrected(self) -> int:
        return sum(1 for i in self.items if i.kind == "corrected")

    def describe(self) -> str:
        parts = [f"{self.liked} liked repl{'y' if self.liked == 1 else 'ies'}",
                 f"{self.corrected} corrected"]
        if self.thumbs_down_only:
            parts.append(f"{self.thumbs_down_only} thumbs-down without a correction left out "
                         "(a correction says what the answer should have been)")
        return ", ".join(parts)


def collect(store: Store, chats: Sequence[int] = ()) -> FeedbackSet:
    """Every usable piece of feedback (of ``chats`` only, when given), oldest first."""
    wanted = set(chats)
    out = FeedbackSet()
    personas = {p.name: p for p in store.personas()}
    for ex in store.feedback_examples():
        if wanted and ex.chat_id not in wanted:
            continue
        item = _item(store, ex, personas)
        if item is None:
            if ex.rating < 0 and not ex.correction:
                out.thumbs_down_only += 1
            else:
                out.empty += 1
            continue
        out.items.append(item)
    return out


def _item(store: Store, ex: FeedbackExample, personas: dict[str, Any]) -> FeedbackItem | None:
    if ex.rating <= 0 and not ex.correction:
        return None
    context = list(ex.context)
    first_user = next((i for i, (role, _) in enumerate(context) if role == "user"), None)
    if first_user is None:
        return None
    persona = personas.get(store.chat(ex.chat_id).persona or "", DEFAULT_PERSONA)
    system = "\n\n".join(s for s in [persona.full_system_prompt(),
                                     *(c for r, c in context if r == "system" and c.strip())]
                         if s)
    messages = ([("system", system)] if system else []) + [
        (r, c) for r, c in context[first_user:] if r != "system"]
    if ex.correction:
        return FeedbackItem("corrected", tuple(messages), ex.correction, ex.reply, ex.chat_id,
                            ex.message_id)
    return FeedbackItem("liked", tuple(messages), ex.reply, None, ex.chat_id, ex.message_id)


def load_feedback_file(path: Path) -> FeedbackSet:
    """The examples a fine-tuning run saved (``feedback.jsonl``): a resumed run trains on
    exactly what it started with, whatever was rated since."""
    out = FeedbackSet()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            chat, message = str(d["id"]).split("@")[0].split("/")
            out.items.append(FeedbackItem(
                d["kind"], tuple((m["role"], m["content"]) for m in d["messages"]),
                d["target"], d.get("rejected"), int(chat.split("-")[1]),
                int(message.split("-")[1])))
        except (ValueError, KeyError, IndexError, TypeError):
            raise UserError(f"{path.name}, line {n}, is damaged: start a new run instead of "
                            "resuming") from None
    return out


def require(feedback: FeedbackSet) -> None:
    if not feedback.items:
        more = (f" ({feedback.thumbs_down_only} thumbs-down replies have no correction)"
                if feedback.thumbs_down_only else "")
        raise UserError("there is no feedback to learn from yet" + more + ": give good replies "
                        "a thumbs up, or correct the ones that were wrong")
