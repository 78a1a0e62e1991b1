"""What every chat backend offers, whatever runs the model underneath.

A backend is a loaded model that turns a prompt (the chat template's rendered text, see
:mod:`..templates`) into a stream of text chunks. The chat loop, the API server and the benches
use nothing else, so transformers and llama.cpp are interchangeable behind it:

- :meth:`ChatBackend.stream` yields text chunks; ``cancel()`` is asked before every token and no
  forward pass runs after it said yes (Stop lands between two tokens). The reply is cut to the
  room the context has left, and ``last_stats`` says so (``stop_reason == "length"``): a prompt
  is never truncated silently, a reply never slides out of the window.
- :meth:`ChatBackend.count_tokens` counts a rendered prompt exactly as :meth:`stream` will
  tokenise it (the context policy's budget is the model's real budget).
- :attr:`ChatBackend.info` names the backend and the model (never a path) with its context
  length and any note the user should read ("slower: dequantised through transformers...").
- :meth:`ChatBackend.template_info` is the model's own chat template (tokenizer config or GGUF
  metadata), or None.

A backend is used by one generation at a time: callers hold :attr:`ChatBackend.lock` (the API
server serves requests from several threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from plugins.common.lm.generation import GenerationStats
from plugins.common.lm.sampling import SamplingSettings
from studio.errors import UserError

from ..templates import TemplateInfo

Cancel = Callable[[], bool]

#: what ``BackendInfo.kind`` may be
TRANSFORMERS, LLAMA_CPP, TRANSFORMERS_GGUF = "transformers", "llama.cpp", "transformers-gguf"
DEQUANTISED_NOTE = ("slower: dequantised through transformers; install the gguf extra for "
                    "llama.cpp (pip install .[gguf])")


@dataclass(frozen=True)
class BackendInfo:
    """Which backend runs which model, said in words the chat view shows."""

    kind: str                     # transformers, llama.cpp, transformers-gguf
    label: str                    # "llama.cpp (F16 copy)", "transformers (float32, cpu)"
    model: str                    # the model's name: a folder or file name, never a path
    context_length: int           # tokens of prompt + reply the model takes
    notes: tuple[str, ...] = ()   # things the user should know about this choice

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "model": self.model,
                "context_length": self.context_length, "notes": list(self.notes)}


@runtime_checkable
class ChatBackend(Protocol):
    info: BackendInfo
    last_stats: GenerationStats
    lock: threading.Lock

    def count_tokens(self, text: str) -> int: ...

    def template_info(self) -> TemplateInfo | None: ...

    def stream(self, prompt: str, settings: SamplingSettings,
               cancel: Cancel | None = None) -> Iterator[str]: ...

    def close(self) -> None: ...


def room_for_reply(prompt_tokens: int, context: int, model: str) -> int:
    """Tokens the reply may take; a prompt that leaves none is refused, never cut."""
    room = context - prompt_tokens
    if room < 1:
        raise UserError(f"the prompt takes {prompt_tokens:,} tokens and {model} takes "
                        f"{context:,}: there is no room for a reply. Choose a context policy "
                        "that leaves out or summarises older turns, or start a new chat.")
    return room


def model_label(path: Any) -> str:
    """A model's name without its location."""
    from pathlib import Path

    p = Path(str(path))
    return p.name if p.name not in ("model", "adapter") else f"{p.parent.name}/{p.name}"
