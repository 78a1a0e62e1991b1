"""Streaming text generation: a :class:`Generator` whose ``stream()`` yields text chunks.

Why our own decoding loop instead of ``model.generate`` + a streamer thread: a plain Python
generator (no thread, no queue) is what both the writer's Continue and a chat loop want; Stop
lands between two tokens (``cancel()`` is asked before every token, and no forward pass runs
after it said yes); stop sequences are cut exactly (text that might be the start of a stop
sequence is held back, so a stop string is never shown and then taken back); and the loop is as
fast as ``generate`` (same KV cache, same ``transformers`` logits processors; see
``bench/writer_speed.py``).

Usage from a chat loop::

    gen = load_generator("models/SmolLM2-135M-Instruct", device="cpu")
    ids = chat_ids(gen.tokenizer, messages)             # plugins.common.lm.tokens
    settings = SamplingSettings(max_new_tokens=300).with_preset("balanced")
    done = gen.complete(ids, settings, cancel=lambda: ctx.cancelled,
                        on_text=lambda i, chunk: ctx.preview("text", chunk, replace=False))
    done.text, done.stats.first_token_s, done.stats.tokens_per_s

Every run measures itself (:class:`GenerationStats`): time to first token (prompt reading
included), decoding speed in tokens per second, why each continuation stopped, and the seed.

Long texts: the prompt keeps its last tokens that fit the context window; when generation
reaches the window, the most recent half-window is re-read and generation goes on, so a
``max_new_tokens`` beyond the context length works (GPT-2's learned positions would otherwise
break).
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plugins.common.lm.loading import context_length
from plugins.common.lm.sampling import Sampler, SamplingSettings
from plugins.common.lm.tokens import Detokenizer, encode_prompt, eos_ids
from studio.errors import UserError

STOP_LENGTH, STOP_EOS, STOP_SEQUENCE, STOP_CANCELLED = "length", "eos", "stop", "cancelled"


@dataclass
class GenerationStats:
    """What one generation did (``Generator.last_stats``, and :attr:`Completion.stats`).

    ``first_token_s`` is the time to first token: from the call until the first new token
    exists (tokenising and reading the prompt included), what a person waits before text
    appears. :attr:`tokens_per_s` is the decoding speed after it.
    """

    prompt_tokens: int = 0
    new_tokens: int = 0  # per continuation (decoding steps)
    sequences: int = 1
    seconds: float = 0.0  # the whole call: prompt + decoding
    first_token_s: float = 0.0  # time to first token
    seed: int = 0
    stop_reasons: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        """Tokens per second while decoding (all continuations together): the tokens after the
        first over the time after the first, so a long prompt does not hide the speed; with
        a single token, that token over the whole call."""
        decode_s = self.seconds - self.first_token_s
        if self.new_tokens > 1 and decode_s > 0:
            return (self.new_tokens - 1) * self.sequences / decode_s
        return self.new_tokens * self.sequences / self.seconds if self.seconds > 0 else 0.0

    @property
    def stop_reason(self) -> str:
        return self.stop_reasons[0] if self.stop_reasons else ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens_per_s"] = self.tokens_per_s
        return d

    def summary(self) -> str:
        """One line for a log or a status bar."""
        reasons = ", ".join(sorted(set(self.stop_reasons))) or "-"
        return (f"{self.new_tokens * self.sequences} tokens at {self.tokens_per_s:.1f} tokens/s,"
                f" first after {self.first_token_s:.2f} s (seed {self.seed}; stopped: "
                f"{reasons})")


@dataclass
class Completion:
    """A finished generation: the texts and how it went."""

    texts: list[str]
    stats: GenerationStats

    @property
    def text(self) -> str:
        return self.texts[0]


class StopScanner:
    """Cuts text at the first stop sequence; holds back a tail that could begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.pending += text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self.pending = self.pending[:min(hits)], ""
            return out
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out


class Generator:
    """A loaded model + tokenizer that streams text.

    Args:
        model: a transformers causal LM (eval mode, on its device).
        tokenizer: its tokenizer.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.context = context_length(model.config)
        self.eos = eos_ids(model, tokenizer)
        self.last_stats = GenerationStats()
        accepts = inspect.signature(model.forward).parameters
        self._keep_kw = "logits_to_keep" in accepts
        # transformers >= 5.2x names the KV cache argument "cache" ("past_key_values" before)
        self._cache_kw = "cache" if "cache" in accepts else "past_key_values"
        self._torch = torch

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], device: str = "cpu",
                    dtype: str = "auto") -> Generator:
        """Load a model folder (see :func:`~.loading.load_causal_lm`) for generation."""
        from plugins.common.lm.loading import load_causal_lm

        model, tokenizer, _ = load_causal_lm(Path(folder), device=device, dtype=dtype)
        return cls(model, tokenizer)

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        """Prompt token ids; an empty prompt starts from the bos/eos token ("a new document")."""
        return encode_prompt(self.tokenizer, prompt)

    # -- generation -----------------------------------------------------------------------------
    def stream(self, prompt: str | Sequence[int], settings: SamplingSettings | None = None,
               cancel: Callable[[], bool] | None = None) -> Iterator[str]:
        """Yield the continuation of ``prompt`` chunk by chunk (text or token ids).

        Stops at ``max_new_tokens``, an end-of-text token, a stop sequence or when ``cancel()``
        returns True (asked before every token). ``last_stats`` is filled in as it goes.
        """
        for _, chunk in self.stream_many(prompt, 1, settings, cancel):
            yield chunk

    def stream_many(self, prompt: str | Sequence[int], n: int,
                    settings: SamplingSettings | None = None,
                    cancel: Callable[[], bool] | None = None) -> Iterator[tuple[int, str]]:
        """``n`` different continuations of one prompt, decoded together in one batch (about as
        fast as one on a CPU); yields ``(index, chunk)``."""
        torch = self._torch
        t0 = time.perf_counter()
        s = settings or SamplingSettings()
        s.validate()
        if n < 1:
            raise UserError("ask for at least one continuation")
        seed = s.seed if s.seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
        stats = GenerationStats(sequences=n, seed=seed, stop_reasons=[""] * n)
        self.last_stats = stats
        ids = self.encode(prompt)
        window = max(1, self.context - 1)
        ids = ids[-window:]
        stats.prompt_tokens = len(ids)
        sampler = Sampler(s, torch.Generator(device=self.device).manual_seed(seed))
        detok = [Detokenizer(self.tokenizer, ids) for _ in range(n)]
        scanners = [StopScanner(list(s.stop)) for _ in range(n)]
        done = [False] * n
        history = torch.tensor([ids] * n, dtype=torch.long, device=self.device)
        ban_eos = list(self.eos) if s.stop_at_eos and s.min_new_tokens > 0 else []

        def finish(i: int, reason: str) -> str:
            done[i] = True
            stats.stop_reasons[i] = reason
            return scanners[i].feed(detok[i].flush()) + scanners[i].flush()

        with torch.inference_mode():
            cache, logits = self._prefill(history)
            in_cache = history.shape[1]
            nxt = None
            for step in range(s.max_new_tokens):
                if cancel is not None and cancel():
                    for i in range(n):
                        if not done[i]:
                            tail = finish(i, STOP_CANCELLED)
                            if tail:
                                yield i, tail
                    break
                if nxt is not None:  # the forward pass for this token, only once it is wanted
                    if in_cache >= window:  # slide: re-read the most recent half window
                        keep = max(1, self.context // 2)
                        cache, logits = self._prefill(history[:, -keep:])
                        in_cache = keep
                    else:
                        logits = self._step(nxt[:, None], cache)
                        in_cache += 1
                scores = logits.float()
                if ban_eos and step < s.min_new_tokens:
                    scores[:, ban_eos] = -float("inf")
                nxt = sampler.pick(history, scores)
                history = torch.cat([history, nxt[:, None]], dim=1)
                stats.new_tokens = step + 1
                if step == 0:
                    stats.first_token_s = time.perf_counter() - t0
                for i, tok in enumerate(nxt.tolist()):
                    if done[i]:
                        continue
                    if s.stop_at_eos and tok in self.eos:
                        tail = finish(i, STOP_EOS)
                        if tail:
                            yield i, tail
                        continue
                    text = scanners[i].feed(detok[i].push(tok))
                    if scanners[i].stopped:
                        done[i] = True
                        stats.stop_reasons[i] = STOP_SEQUENCE
                    if text:
                        yield i, text
                stats.seconds = time.perf_counter() - t0
                if all(done):
                    break
        for i in range(n):
            if not done[i]:
                tail = finish(i, STOP_LENGTH)
                if tail:
                    yield i, tail
        stats.seconds = time.perf_counter() - t0

    def complete(self, prompt: str | Sequence[int], settings: SamplingSettings | None = None,
                 cancel: Callable[[], bool] | None = None, n: int = 1,
                 on_text: Callable[[int, str], None] | None = None) -> Completion:
        """Generate to the end; ``on_text(index, chunk)`` sees every chunk as it comes (a UI
        streams it). Returns the texts with their :class:`GenerationStats`; a cancelled run
        returns what it had (``stats.stop_reason == "cancelled"``)."""
        texts = [""] * n
        for i, chunk in self.stream_many(prompt, n, settings, cancel):
            texts[i] += chunk
            if on_text is not None:
                on_text(i, chunk)
        return Completion(texts, self.last_stats)

    def generate(self, prompt: str | Sequence[int], settings: SamplingSettings | None = None,
                 cancel: Callable[[], bool] | None = None) -> str:
        """The whole continuation as one string."""
        return self.complete(prompt, settings, cancel).text

    def generate_many(self, prompt: str | Sequence[int], n: int,
                      settings: SamplingSettings | None = None,
                      cancel: Callable[[], bool] | None = None) -> list[str]:
        return self.complete(prompt, settings, cancel, n=n).texts

    # -- internals ------------------------------------------------------------------------------
    def _forward(self, input_ids: Any, cache: Any) -> Any:
        kw: dict[str, Any] = {self._cache_kw: cache, "use_cache": True}
        if self._keep_kw:
            kw["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, **kw)
        return out.logits[:, -1, :]

    def _prefill(self, ids: Any) -> tuple[Any, Any]:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        return cache, self._forward(ids, cache)

    def _step(self, token: Any, cache: Any) -> Any:
        return self._forward(token, cache)


# ----------------------------------------------------------------------------------------------
# Loaded models, kept between requests
# ----------------------------------------------------------------------------------------------
_CACHE_SIZE = 2
_cache: OrderedDict[tuple[Any, ...], Generator] = OrderedDict()
_cache_lock = threading.Lock()


def load_generator(folder: str | os.PathLike[str], device: str = "cpu",
                   dtype: str = "auto") -> Generator:
    """A :class:`Generator` for ``folder``, kept for the next request (the two most recent
    models stay loaded; a model whose weights changed on disk is loaded again), so pressing
    Continue or sending a chat message again does not reload the model."""
    from plugins.common.lm.loading import inspect_model_dir

    info = inspect_model_dir(folder)
    stamp = tuple(sorted((str(w), w.stat().st_mtime_ns) for w in info.weights))
    key = (str(info.path.resolve()), stamp, str(device), dtype)
    with _cache_lock:
        gen = _cache.get(key)
        if gen is not None:
            _cache.move_to_end(key)
            return gen
    gen = Generator.from_folder(info.path, device=device, dtype=dtype)
    with _cache_lock:
        _cache[key] = gen
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return gen


def clear_generators() -> None:
    """Forget the loaded models (their memory is freed once nothing else holds them)."""
    with _cache_lock:
        _cache.clear()
