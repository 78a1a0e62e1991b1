"""What the chat window says: figures, choices and messages in words for artists.

Kept apart from the widgets so the wording is one place to read and test: no metric keys,
no paths, no JSON reach the window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

#: the context policies as the window names them (the engine's keys stay inside)
POLICIES: dict[str, str] = {
    "drop_middle": "Leave out the middle",
    "rolling": "Keep the newest turns",
    "summarise": "Summarise older turns",
    "stop": "Stop and tell me",
}
POLICY_HELP: dict[str, str] = {
    "drop_middle": "Keeps the instructions, pinned notes and the start of the chat, and leaves "
                   "out turns in the middle when the chat no longer fits",
    "rolling": "Keeps the instructions, pinned notes and as many of the newest turns as fit",
    "summarise": "The model summarises older turns into a short note, which takes their place",
    "stop": "Refuses to answer when the chat no longer fits, and says so",
}
TONES: dict[str, str] = {"none": "No preset", "formal": "Formal", "casual": "Casual",
                         "friendly": "Friendly"}
TEMPLATE_NAMES: dict[str, str] = {
    "": "The model's own", "chatml": "ChatML", "llama3": "Llama 3", "llama2": "Llama 2",
    "mistral": "Mistral", "gemma": "Gemma", "zephyr": "Zephyr", "phi3": "Phi-3",
    "alpaca": "Alpaca",
}


def stats_words(stats: Any) -> str:
    """One line under a reply: "0.42 s to first token · 12.3 tokens/s · 812 of 2,048 context
    tokens · llama.cpp". ``stats`` is a ReplyStats or its dict."""
    get = stats.get if isinstance(stats, Mapping) else (lambda k: getattr(stats, k, None))
    if get("backend") == "intent":
        return "a saved answer (intent)"
    parts = []
    if get("ttft_s") is not None:
        parts.append(f"{float(get('ttft_s')):.2f} s to first token")
    if get("tokens_per_s") is not None:
        parts.append(f"{float(get('tokens_per_s')):.1f} tokens/s")
    if get("context_used") is not None and get("context_total"):
        parts.append(f"{int(get('context_used')):,} of {int(get('context_total')):,} "
                     "context tokens")
    if get("backend"):
        parts.append(str(get("backend")))
    return " · ".join(parts)


def when(timestamp: float, now: float | None = None) -> str:
    """A chat's last change: "14:02" today, "Mon 14:02" this week, else "3 Mar 2025"."""
    t = dt.datetime.fromtimestamp(timestamp)
    today = dt.datetime.fromtimestamp(now) if now is not None else dt.datetime.now()
    if t.date() == today.date():
        return t.strftime("%H:%M")
    if (today.date() - t.date()).days < 7:
        return t.strftime("%a %H:%M")
    return t.strftime("%-d %b %Y")


def citations_words(citations: Any) -> str:
    """"Sources: [1] setup.md, part 2 · [2] manual.pdf, page 7"."""
    items = [c for c in (citations or []) if isinstance(c, Mapping)]
    if not items:
        return ""
    return "Sources: " + " · ".join(f"[{c.get('number', i + 1)}] {c.get('label', '')}"
                                    for i, c in enumerate(items))


def context_words(used: int, total: int, policy: str) -> str:
    return (f"{used:,} of {total:,} tokens · when full: "
            f"{POLICIES.get(policy, POLICIES['drop_middle']).lower()}")


def error_words(error: str | None) -> str:
    """A job's failure as one calm line (the full story is in the Log)."""
    text = (error or "something went wrong").strip()
    first = text.splitlines()[0] if text else text
    return first[0].upper() + first[1:] if first else first


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")
