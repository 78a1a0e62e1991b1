"""Streaming text generation: a :class:`Generator` whose ``stream()`` yields text chunks.

Why our own decoding loop instead of ``model.generate`` + a streamer thread: a plain Python
generator (no thread, no queue) is what both the writer's Continue and a chat loop want; cancel
lands between two tokens; stop sequences are cut exactly (text that might be the start of a stop
sequence is held back, so a stop string is never shown and then taken back); and the loop is as
fast as ``generate`` (same KV cache, same transformers logits processors; see
``bench/writer_speed.py``).

Usage from a chat loop::

    gen = Generator.from_folder("models/SmolLM2-135M-Instruct")
    ids = gen.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    for chunk in gen.stream(ids, SamplingSettings(temperature=0.7, stop=("<|im_end|>",))):
        print(chunk, end="", flush=True)
    print(gen.last_stats.tokens_per_s)

Long texts: the prompt keeps its last tokens that fit the context window; when generation
reaches the window, the most recent half-window is re-read and generation goes on, so a
``max_new_tokens`` beyond the context length works (GPT-2's learned positions would otherwise
break).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import UserError

STOP_LENGTH, STOP_EOS, STOP_SEQUENCE, STOP_CANCELLED = "length", "eos", "stop", "cancelled"


@dataclass
class SamplingSettings:
    """How to pick each next token.

    Attributes:
        max_new_tokens: tokens to generate at most (per continuation).
        temperature: 0 means greedy (always the most likely token); higher is more adventurous.
        top_k: sample only among the k most likely tokens (0: no limit).
        top_p: nucleus sampling: the smallest set of tokens whose probabilities reach p (1: off).
        repetition_penalty: >1 discourages repeating tokens already in the text (1: off).
        seed: the same seed, prompt and settings give the same text; None draws a fresh seed
            (reported in :class:`GenerationStats` so a good result can be reproduced).
        stop: stop when any of these strings appears (it is not included in the output).
        min_new_tokens: do not end on the end-of-text token before this many tokens.
        stop_at_eos: end at the model's end-of-text token(s).
    """

    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    min_new_tokens: int = 0
    stop_at_eos: bool = True

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError("max new tokens must be at least 1")
        if self.temperature < 0:
            raise UserError("temperature cannot be negative")
        if self.top_k < 0:
            raise UserError("top-k cannot be negative (0 switches it off)")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError("top-p must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise UserError("repetition penalty must be positive (1 switches it off)")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass
class GenerationStats:
    """What the last ``stream()`` did (read ``Generator.last_stats``)."""

    prompt_tokens: int = 0
    new_tokens: int = 0  # per continuation (steps)
    sequences: int = 1
    seconds: float = 0.0  # prompt reading + decoding
    first_token_s: float = 0.0  # latency until the first token
    seed: int = 0
    stop_reasons: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens * self.sequences / self.seconds if self.seconds > 0 else 0.0

    @property
    def stop_reason(self) -> str:
        return self.stop_reasons[0] if self.stop_reasons else ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens_per_s"] = self.tokens_per_s
        return d


def parse_stop_sequences(items: Sequence[str] | str | None) -> list[str]:
    """Stop strings from user input: ``\\n``, ``\\t`` and ``\\\\`` escapes are understood so
    "stop at a blank line" can be typed as ``\\n\\n``; empty entries are dropped."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out: list[str] = []
    for item in items:
        text, i = [], 0
        while i < len(item):
            ch = item[i]
            if ch == "\\" and i + 1 < len(item) and item[i + 1] in "nt\\":
                text.append({"n": "\n", "t": "\t", "\\": "\\"}[item[i + 1]])
                i += 2
            else:
                text.append(ch)
                i += 1
        s = "".join(text)
        if s:
            out.append(s)
    return out


class _Detokenizer:
    """Incremental decoding that never emits half a character.

    Byte-level BPE can split one character over several tokens; decoding tokens one by one would
    show replacement characters. We decode a small sliding window (a few tokens of context, so
    SentencePiece's leading spaces come out right) and emit only the new, complete text.
    """

    def __init__(self, tokenizer: Any, prompt_ids: Sequence[int]) -> None:
        self.tok = tokenizer
        self.ids: list[int] = list(prompt_ids[-6:])
        self.prefix = 0
        self.read = len(self.ids)
        self.prefix_text = self._decode(self.prefix, self.read)

    def _decode(self, start: int, end: int | None = None) -> str:
        return self.tok.decode(self.ids[start:end], skip_special_tokens=True)

    def push(self, token: int) -> str:
        self.ids.append(token)
        new_text = self._decode(self.prefix)
        if len(new_text) > len(self.prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(self.prefix_text):]
            self.prefix, self.read = self.read, len(self.ids)
            if self.prefix > 64:  # keep the window short
                cut = self.prefix - 6
                self.ids = self.ids[cut:]
                self.prefix -= cut
                self.read -= cut
            self.prefix_text = self._decode(self.prefix, self.read)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back when the text ends (bytes that never completed a
        character decode as replacement characters, exactly as ``tokenizer.decode`` shows)."""
        new_text = self._decode(self.prefix)
        out = new_text[len(self.prefix_text):]
        self.prefix = self.read = len(self.ids)
        self.prefix_text = ""
        return out


class _StopScanner:
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


def context_length(config: Any) -> int:
    """The model's context window in tokens (2048 when the config does not say)."""
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every end-of-text id the model or tokenizer declares (chat models often have several)."""
    ids: set[int] = set()
    gen_cfg = getattr(model, "generation_config", None)
    for source in (getattr(gen_cfg, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return ids


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
        self._keep_kw = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._torch = torch

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], device: str = "cpu",
                    dtype: str = "auto") -> Generator:
        """Load a model folder (see :func:`~.loading.load_causal_lm`) for generation."""
        from plugins.writer.engine.loading import load_causal_lm

        model, tokenizer, _ = load_causal_lm(Path(folder), device=device, dtype=dtype)
        return cls(model, tokenizer)

    # -- prompts --------------------------------------------------------------------------------
    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        """Prompt token ids; an empty prompt starts from the bos/eos token ("a new document")."""
        if isinstance(prompt, str):
            ids = list(self.tokenizer(prompt, add_special_tokens=bool(prompt))["input_ids"]) \
                if prompt else []
        else:
            ids = [int(i) for i in prompt]
        if not ids:
            start = self.tokenizer.bos_token_id
            if start is None:
                start = self.tokenizer.eos_token_id
            if start is None:
                raise UserError("this model's tokenizer has no start token: type a few words "
                                "for it to continue")
            ids = [int(start)]
        return ids

    # -- generation -----------------------------------------------------------------------------
    def stream(self, prompt: str | Sequence[int], settings: SamplingSettings | None = None,
               cancel: Callable[[], bool] | None = None) -> Iterator[str]:
        """Yield the continuation of ``prompt`` chunk by chunk (text or token ids).

        Stops at ``max_new_tokens``, an end-of-text token, a stop sequence or when ``cancel()``
        returns True (between two tokens). ``last_stats`` is filled in as it goes.
        """
        for _, chunk in self.stream_many(prompt, 1, settings, cancel):
            yield chunk

    def stream_many(self, prompt: str | Sequence[int], n: int,
                    settings: SamplingSettings | None = None,
                    cancel: Callable[[], bool] | None = None) -> Iterator[tuple[int, str]]:
        """``n`` different continuations of one prompt, decoded together in one batch (about as
        fast as one on a CPU); yields ``(index, chunk)``."""
        torch = self._torch
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
        processors = self._processors(s)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        detok = [_Detokenizer(self.tokenizer, ids) for _ in range(n)]
        scanners = [_StopScanner(list(s.stop)) for _ in range(n)]
        done = [False] * n
        history = torch.tensor([ids] * n, dtype=torch.long, device=self.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            cache, logits = self._prefill(history)
            in_cache = history.shape[1]
            for step in range(s.max_new_tokens):
                if cancel is not None and cancel():
                    for i in range(n):
                        if not done[i]:
                            stats.stop_reasons[i] = STOP_CANCELLED
                            done[i] = True
                            tail = scanners[i].feed(detok[i].flush()) + scanners[i].flush()
                            if tail:
                                yield i, tail
                    break
                scores = logits.float()
                if s.stop_at_eos and step < s.min_new_tokens and self.eos:
                    scores[:, list(self.eos)] = -float("inf")
                scores = processors(history, scores) if processors else scores
                if s.temperature == 0:
                    nxt = scores.argmax(dim=-1)
                else:
                    probs = torch.softmax(scores, dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
                history = torch.cat([history, nxt[:, None]], dim=1)
                stats.new_tokens = step + 1
                if step == 0:
                    stats.first_token_s = time.perf_counter() - t0
                for i, tok in enumerate(nxt.tolist()):
                    if done[i]:
                        continue
                    if s.stop_at_eos and tok in self.eos:
                        done[i] = True
                        stats.stop_reasons[i] = STOP_EOS
                        tail = scanners[i].feed(detok[i].flush()) + scanners[i].flush()
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
                if all(done) or step == s.max_new_tokens - 1:
                    break
                if in_cache >= window:  # slide: re-read the most recent half window
                    keep = max(1, self.context // 2)
                    cache, logits = self._prefill(history[:, -keep:])
                    in_cache = keep
                else:
                    logits = self._step(nxt[:, None], cache)
                    in_cache += 1
        for i in range(n):
            if not done[i]:
                stats.stop_reasons[i] = STOP_LENGTH
                tail = scanners[i].feed(detok[i].flush()) + scanners[i].flush()
                if tail:
                    yield i, tail
        stats.seconds = time.perf_counter() - t0

    def generate(self, prompt: str | Sequence[int], settings: SamplingSettings | None = None,
                 cancel: Callable[[], bool] | None = None) -> str:
        """The whole continuation as one string."""
        return "".join(self.stream(prompt, settings, cancel))

    def generate_many(self, prompt: str | Sequence[int], n: int,
                      settings: SamplingSettings | None = None,
                      cancel: Callable[[], bool] | None = None) -> list[str]:
        texts = [""] * n
        for i, chunk in self.stream_many(prompt, n, settings, cancel):
            texts[i] += chunk
        return texts

    # -- internals ------------------------------------------------------------------------------
    def _processors(self, s: SamplingSettings) -> Any:
        from transformers import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        procs = LogitsProcessorList()
        if s.repetition_penalty != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(s.repetition_penalty))
        if s.temperature > 0:
            if s.temperature != 1.0:
                procs.append(TemperatureLogitsWarper(s.temperature))
            if s.top_k > 0:
                procs.append(TopKLogitsWarper(s.top_k))
            if s.top_p < 1.0:
                procs.append(TopPLogitsWarper(s.top_p))
        return procs

    def _forward(self, input_ids: Any, cache: Any) -> Any:
        kw: dict[str, Any] = {"past_key_values": cache, "use_cache": True}
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
