"""The prompt for the next reply, within the model's token budget, by the user's policy.

The budget is ``max_context - reserved_for_reply`` tokens of the *rendered* prompt (the chat
template's own tokens count too), measured by a :class:`TokenCounter` on the text a
:class:`Renderer` produces, so the figure shown to the user is the one the model will see.

When the whole chat does not fit, the policy decides, and the plan always says what it did
(:attr:`ContextPlan.notes`): nothing is ever cut silently.

- ``stop``: refuse (:class:`ContextOverflow`) and say what to do.
- ``drop_middle``: keep the system prompt, pinned notes, memory notes, retrieved passages, the
  first turn and as many of the newest turns as fit; whole turns from the middle are left out.
- ``rolling``: the newest turns that fit.
- ``summarise``: older turns replaced by a summary made by a :class:`Summariser` (the model),
  cached per span of turns; a longer span reuses the summary of its longest cached prefix, so a
  growing chat only ever summarises its new turns.

Pinned notes are never dropped: if they (with the system prompt) do not fit, that is an error
that says so. A *turn* is a user message and the replies after it; the newest turn (the message
being answered, or the reply being continued) is always kept whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from studio.errors import UserError

Policy = Literal["stop", "drop_middle", "rolling", "summarise"]
POLICIES: dict[str, str] = {
    "stop": "Stop and tell me",
    "drop_middle": "Leave out the middle (keep the start, notes and newest turns)",
    "rolling": "Keep the newest turns",
    "summarise": "Summarise older turns",
}


class TokenCounter(Protocol):
    """The model's tokenizer: how many tokens a prompt text is."""

    def count_tokens(self, text: str) -> int: ...


class Summariser(Protocol):
    """The model, asked to summarise: gets chat messages (a first ``system`` message may hold
    the summary so far) and returns a short summary text."""

    def summarise(self, messages: Sequence[Mapping[str, str]]) -> str: ...


Renderer = Callable[[list[dict[str, str]]], str]


@dataclass(frozen=True)
class Budget:
    max_context: int
    reserved_for_reply: int = 256

    def __post_init__(self) -> None:
        if self.max_context <= 0:
            raise UserError("The model's context length must be positive.")
        if not 0 <= self.reserved_for_reply < self.max_context:
            raise UserError(f"The room kept for the reply ({self.reserved_for_reply} tokens) must "
                            f"be smaller than the model's context ({self.max_context}).")

    @property
    def available(self) -> int:
        return self.max_context - self.reserved_for_reply


class ContextOverflow(UserError):
    """The prompt cannot be built within the budget; the message says why and what to do."""

    def __init__(self, message: str, used: int, total: int) -> None:
        super().__init__(message)
        self.used = used
        self.total = total


@dataclass
class ContextPlan:
    """What the next prompt holds and what was left out of it."""

    messages: list[dict[str, str]]          # what the template renders
    prompt: str                             # the rendered prompt
    used: int                               # its tokens
    total: int                              # tokens available for the prompt
    max_context: int
    policy: str
    kept: list[int] = field(default_factory=list)        # indices into ``history``
    dropped: list[int] = field(default_factory=list)     # left out
    summarised: list[int] = field(default_factory=list)  # replaced by ``summary``
    dropped_turns: int = 0
    summary: str | None = None
    passages_used: int = 0
    passages_dropped: int = 0
    memory_used: int = 0
    memory_dropped: int = 0
    notes: list[str] = field(default_factory=list)       # plain words, one per omission

    @property
    def complete(self) -> bool:
        """True when nothing was left out or summarised."""
        return not (self.dropped or self.summarised or self.passages_dropped
                    or self.memory_dropped)

    def describe(self) -> str:
        head = f"{self.used:,} of {self.total:,} tokens"
        return head + (". " + " ".join(self.notes) if self.notes else "")


def build(history: Sequence[Any], *, budget: Budget, counter: TokenCounter, render: Renderer,
          policy: Policy = "drop_middle", system_prompt: str = "",
          pinned: Sequence[str] = (), memory: Sequence[str] = (),
          passages: Sequence[str] = (), summariser: Summariser | None = None,
          cache: MutableMapping[str, str] | None = None) -> ContextPlan:
    """Plan the prompt for the next reply.

    ``history`` is the active branch, oldest first (store messages or ``{"role", "content"}``
    mappings; system messages in it join the system prompt); its last turn is the one being
    answered. ``passages`` are retrieved passages already formatted with their citation, best
    first; ``memory`` the approved memory notes. ``render`` turns messages into the prompt
    (the chat template, with or without a generation prompt).
    """
    if policy not in POLICIES:
        raise UserError(f"Unknown context policy '{policy}' (choose one of "
                        f"{', '.join(POLICIES)}).")
    msgs = [_as_dict(m) for m in history]
    systems = [m["content"] for m in msgs if m["role"] == "system" and m["content"].strip()]
    body = [i for i, m in enumerate(msgs) if m["role"] != "system"]
    if not body:
        raise UserError("There is no message to answer yet.")
    turns = _turns(msgs, body)
    base_system = "\n\n".join(s for s in [system_prompt.strip(), *systems] if s)
    b = _Builder(msgs, turns, budget, counter, render, base_system, list(pinned))

    # everything
    full = b.plan(range(len(turns)), memory, passages, None)
    if full.fits:
        return b.result(full, policy)

    # what can never go: system prompt, pinned notes, the newest turn
    newest = len(turns) - 1
    core = b.plan([newest], (), (), None)
    if not core.fits:
        alone = counter.count_tokens(b.system_text((), (), None))
        if pinned and alone > budget.available:
            raise ContextOverflow(
                f"The system prompt and pinned notes alone take {alone:,} tokens, more than the "
                f"{budget.available:,} the model has for a prompt. Unpin or shorten some notes, "
                "or shorten the persona's system prompt.", alone, budget.available)
        raise ContextOverflow(
            f"Your last message does not fit the model's context ({core.used:,} tokens with "
            f"the system prompt and pinned notes, {budget.available:,} available). Shorten it "
            "or split it in parts.", core.used, budget.available)

    if policy == "stop":
        raise ContextOverflow(
            f"This chat has grown too long for the model: it needs {full.used:,} tokens and "
            f"the model has room for {budget.available:,}. Start a new chat (pin what matters "
            "first), or choose a context policy that leaves out or summarises older turns.",
            full.used, budget.available)

    # memory notes and passages: as many as fit beside the core, in their order
    mem = b.greedy(list(memory), lambda xs: b.plan([newest], xs, (), None))
    pas = b.greedy(list(passages), lambda xs: b.plan([newest], mem, xs, None))

    if policy == "drop_middle":
        first = 0 if newest > 0 else None
        head = [first] if first is not None and b.plan([first, newest], mem, pas, None).fits \
            else []
        start = 1 if head else 0
        k = b.most_recent(lambda k: b.plan(head + list(range(newest - k + 1, newest + 1)),
                                           mem, pas, None), newest + 1 - start)
        chosen = head + list(range(newest - k + 1, newest + 1))
        p = b.plan(chosen, mem, pas, None)
    elif policy == "rolling":
        k = b.most_recent(lambda k: b.plan(range(newest - k + 1, newest + 1), mem, pas, None),
                          newest + 1)
        p = b.plan(range(newest - k + 1, newest + 1), mem, pas, None)
    else:
        if summariser is None:
            raise UserError("Summarising older turns needs the model loaded; load it or choose "
                            "another context policy.")
        p = b.summarised(summariser, cache if cache is not None else {}, mem, pas)
    return b.result(p, policy, memory=list(memory), passages=list(passages))


def measure(history: Sequence[Any], *, budget: Budget, counter: TokenCounter,
            render: Renderer, system_prompt: str = "", pinned: Sequence[str] = (),
            memory: Sequence[str] = (), passages: Sequence[str] = ()) -> tuple[int, int]:
    """(tokens the whole chat needs, tokens available): the visible budget, before any
    policy applies."""
    msgs = [_as_dict(m) for m in history]
    systems = [m["content"] for m in msgs if m["role"] == "system" and m["content"].strip()]
    body = [i for i, m in enumerate(msgs) if m["role"] != "system"]
    base_system = "\n\n".join(s for s in [system_prompt.strip(), *systems] if s)
    b = _Builder(msgs, _turns(msgs, body), budget, counter, render, base_system, list(pinned))
    if not body:
        return counter.count_tokens(b.system_text(memory, passages, None)), budget.available
    return b.plan(range(len(b.turns)), memory, passages, None).used, budget.available


def system_text(system_prompt: str, pinned: Sequence[str] = (), memory: Sequence[str] = (),
                passages: Sequence[str] = (), summary: str | None = None) -> str:
    """The system message the model sees: instructions, pinned notes, memory, the summary of
    older turns, then the retrieved passages."""
    parts = [system_prompt.strip()] if system_prompt.strip() else []
    if pinned:
        parts.append("Pinned notes (always keep these in mind):\n"
                     + "\n".join(f"- {n}" for n in pinned))
    if memory:
        parts.append("What you remember from earlier chats:\n"
                     + "\n".join(f"- {n}" for n in memory))
    if summary:
        parts.append("Summary of the earlier part of this conversation:\n" + summary.strip())
    if passages:
        parts.append("Passages from the user's documents (cite the file name when you use "
                     "one):\n\n" + "\n\n".join(passages))
    return "\n\n".join(parts)


# -- internals ---------------------------------------------------------------------------------

@dataclass
class _Attempt:
    turns: list[int]
    memory: list[str]
    passages: list[str]
    summary: str | None
    summarised_turns: int
    messages: list[dict[str, str]]
    prompt: str
    used: int
    fits: bool


class _Builder:
    def __init__(self, msgs: list[dict[str, str]], turns: list[list[int]], budget: Budget,
                 counter: TokenCounter, render: Renderer, system: str, pinned: list[str]) -> None:
        self.msgs, self.turns, self.budget = msgs, turns, budget
        self.counter, self.render, self.system, self.pinned = counter, render, system, pinned

    def system_text(self, memory: Sequence[str], passages: Sequence[str],
                    summary: str | None) -> str:
        return system_text(self.system, self.pinned, memory, passages, summary)

    def plan(self, turns: Sequence[int], memory: Sequence[str], passages: Sequence[str],
             summary: str | None, summarised_turns: int = 0) -> _Attempt:
        turns = sorted(set(turns))
        sys_text = self.system_text(memory, passages, summary)
        messages = [{"role": "system", "content": sys_text}] if sys_text else []
        messages += [self.msgs[i] for t in turns for i in self.turns[t]]
        prompt = self.render(messages)
        used = int(self.counter.count_tokens(prompt))
        return _Attempt(turns, list(memory), list(passages), summary, summarised_turns,
                        messages, prompt, used, used <= self.budget.available)

    @staticmethod
    def greedy(items: list[str], attempt: Callable[[list[str]], _Attempt]) -> list[str]:
        kept: list[str] = []
        for item in items:
            if attempt([*kept, item]).fits:
                kept.append(item)
        return kept

    @staticmethod
    def most_recent(attempt: Callable[[int], _Attempt], most: int) -> int:
        """The largest k in [1, most] for which ``attempt(k)`` fits (k=1 is known to fit)."""
        lo, hi = 1, most
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if attempt(mid).fits:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def summarised(self, summariser: Summariser, cache: MutableMapping[str, str],
                   memory: list[str], passages: list[str]) -> _Attempt:
        newest = len(self.turns) - 1
        k = self.most_recent(lambda k: self.plan(range(newest - k + 1, newest + 1), memory,
                                                 passages, None), newest + 1)
        for _ in range(len(self.turns)):
            span = newest + 1 - k                       # turns [0, span) are summarised
            if span == 0:                               # all turns fit beside the extras
                return self.plan(range(newest + 1), memory, passages, None)
            summary = self._summary(summariser, cache, span)
            fitting = next((kk for kk in range(k, 0, -1)
                            if self.plan(range(newest - kk + 1, newest + 1), memory, passages,
                                         summary, span).fits), None)
            if fitting == k:
                return self.plan(range(newest - k + 1, newest + 1), memory, passages,
                                 summary, span)
            if fitting is None:
                break                                   # even one turn + summary is too long
            k = fitting                                 # a longer span: summarise again
        # the summary itself does not fit: the newest turns alone, said so in the notes
        p = self.plan(range(newest - k + 1, newest + 1), memory, passages, None)
        p.summarised_turns = -1
        return p

    def _summary(self, summariser: Summariser, cache: MutableMapping[str, str],
                 span: int) -> str:
        keys = self._prefix_keys(span)
        if keys[span - 1] in cache:
            return cache[keys[span - 1]]
        start, previous = 0, None
        for j in range(span - 1, 0, -1):                # the longest cached prefix
            if keys[j - 1] in cache:
                start, previous = j, cache[keys[j - 1]]
                break
        messages: list[dict[str, str]] = []
        if previous:
            messages.append({"role": "system",
                             "content": "Summary of the conversation so far:\n" + previous})
        messages += [self.msgs[i] for t in range(start, span) for i in self.turns[t]]
        text = summariser.summarise(messages).strip()
        cache[keys[span - 1]] = text
        return text

    def _prefix_keys(self, span: int) -> list[str]:
        h = hashlib.sha256(self.system.encode("utf-8"))
        keys = []
        for t in range(span):
            for i in self.turns[t]:
                m = self.msgs[i]
                h.update(b"\x00" + m["role"].encode() + b"\x01" + m["content"].encode("utf-8"))
            keys.append("summary-" + h.copy().hexdigest()[:32])
        return keys

    def result(self, p: _Attempt, policy: str, memory: Sequence[str] = (),
               passages: Sequence[str] = ()) -> ContextPlan:
        kept = [i for t in p.turns for i in self.turns[t]]
        summarised_turns = max(p.summarised_turns, 0)
        summarised = [i for t in range(summarised_turns) for i in self.turns[t]]
        omitted_turns = [t for t in range(len(self.turns))
                         if t not in p.turns and t >= summarised_turns]
        dropped = [i for t in omitted_turns for i in self.turns[t]]
        plan = ContextPlan(p.messages, p.prompt, p.used, self.budget.available,
                           self.budget.max_context, policy, kept, dropped, summarised,
                           len(omitted_turns), p.summary, len(p.passages),
                           len(passages) - len(p.passages) if passages else 0,
                           len(p.memory), len(memory) - len(p.memory) if memory else 0)
        if summarised_turns:
            plan.notes.append(f"{_n(summarised_turns, 'older turn')} replaced by a summary to "
                              "fit the model's context.")
        if p.summarised_turns == -1:
            plan.notes.append("A summary of the older turns did not fit beside the newest ones, "
                              "so they are left out.")
        if omitted_turns:
            where = ("from the middle of the chat" if omitted_turns[0] > 0
                     else "from the start of the chat")
            plan.notes.append(f"{_n(len(omitted_turns), 'turn')} ({_n(len(dropped), 'message')}) "
                              f"left out {where} to fit the model's context.")
        if plan.memory_dropped:
            plan.notes.append(f"{_n(plan.memory_dropped, 'memory note')} left out for room.")
        if plan.passages_dropped:
            plan.notes.append(f"{_n(plan.passages_dropped, 'document passage')} left out for "
                              "room.")
        return plan


def _turns(msgs: list[dict[str, str]], body: list[int]) -> list[list[int]]:
    turns: list[list[int]] = []
    for i in body:
        if msgs[i]["role"] == "user" or not turns:
            turns.append([i])
        else:
            turns[-1].append(i)
    return turns


def _as_dict(m: Any) -> dict[str, str]:
    if isinstance(m, Mapping):
        role, content = m.get("role"), m.get("content")
    else:
        role, content = getattr(m, "role", None), getattr(m, "content", None)
    if role not in ("system", "user", "assistant") or not isinstance(content, str):
        raise UserError("A chat message needs a role (system, user or assistant) and text.")
    return {"role": str(role), "content": content}


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
