"""How the next token is chosen: sampling settings, named sampler presets, the sampler.

Light on purpose (torch only inside the functions that use it): the writer's and the chatbot's
params modules import the settings and presets to build their forms and command lines.

The sampler applies, in this order (the order of ``transformers``' ``model.generate``, so a
seed means the same thing on both paths): repetition penalty, temperature, top-k, top-p, min-p,
then draws from what is left (or takes the likeliest token when the temperature is 0).

**min-p** keeps the tokens whose probability is at least ``min_p`` times the likeliest token's
probability (after temperature), whatever the shape of the distribution: when the model is sure
only a few tokens survive, when it hesitates many do. It keeps text coherent at temperatures
where top-p lets nonsense in (Nguyen et al. 2024, "Turning Up the Heat: Min-p Sampling for
Creative and Coherent LLM Outputs").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from studio.errors import UserError


@dataclass
class SamplingSettings:
    """How to pick each next token.

    Attributes:
        max_new_tokens: tokens to generate at most (per continuation).
        temperature: 0 means greedy (always the most likely token); higher is more adventurous.
        top_k: sample only among the k most likely tokens (0: no limit).
        top_p: nucleus sampling: the smallest set of tokens whose probabilities reach p (1: off).
        min_p: keep only tokens at least this fraction as likely as the likeliest one (0: off).
        repetition_penalty: >1 discourages repeating tokens already in the text (1: off).
        seed: the same seed, prompt and settings give the same text; None draws a fresh seed
            (reported in the generation's stats so a good result can be reproduced).
        stop: stop when any of these strings appears (it is not included in the output).
        min_new_tokens: do not end on the end-of-text token before this many tokens.
        stop_at_eos: end at the model's end-of-text token(s).
    """

    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    min_p: float = 0.0
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
        if not 0.0 <= self.min_p < 1.0:
            raise UserError("min-p must be in [0, 1) (0 switches it off)")
        if self.repetition_penalty <= 0:
            raise UserError("repetition penalty must be positive (1 switches it off)")
        if self.min_new_tokens < 0:
            raise UserError("the minimum length cannot be negative")

    def with_preset(self, name: str) -> SamplingSettings:
        """These settings with a named preset's sampler values (length, seed, stops kept)."""
        return replace(self, **sampler_preset(name).values())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


# ----------------------------------------------------------------------------------------------
# Named presets (shared by the writer and the chatbot, so "Creative" means one thing)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplerPreset:
    """A named set of sampler values, for people who do not want to tune five numbers."""

    name: str  # the key ("precise"); what a command line takes
    label: str  # what the window shows ("Precise")
    description: str
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repetition_penalty: float

    def values(self) -> dict[str, Any]:
        """The :class:`SamplingSettings` fields this preset sets."""
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "min_p": self.min_p, "repetition_penalty": self.repetition_penalty}


#: the names a params field offers besides the presets: "use the numbers as they are"
CUSTOM = "custom"

# min-p does the truncating in all three (top-k and top-p off), as its authors advise: the
# threshold follows the model's confidence, so a higher temperature stays coherent.
SAMPLER_PRESETS: dict[str, SamplerPreset] = {
    "precise": SamplerPreset(
        "precise", "Precise", "close to the likeliest words: factual answers, steady prose",
        temperature=0.3, top_k=0, top_p=1.0, min_p=0.2, repetition_penalty=1.1),
    "balanced": SamplerPreset(
        "balanced", "Balanced", "varied but on topic: the everyday choice",
        temperature=0.8, top_k=0, top_p=1.0, min_p=0.05, repetition_penalty=1.0),
    "creative": SamplerPreset(
        "creative", "Creative", "surprising word choices that still hold together",
        temperature=1.2, top_k=0, top_p=1.0, min_p=0.1, repetition_penalty=1.0),
}


def sampler_preset(name: str) -> SamplerPreset:
    try:
        return SAMPLER_PRESETS[name.lower()]
    except KeyError:
        raise UserError(f"unknown sampler preset {name!r}: choose one of "
                        f"{', '.join(SAMPLER_PRESETS)}") from None


def preset_choices() -> dict[str, str]:
    """``{name: label}`` for a params field's ``Choices``: Custom first, then the presets."""
    return {CUSTOM: "Custom", **{n: p.label for n, p in SAMPLER_PRESETS.items()}}


def matching_preset(values: dict[str, Any]) -> str:
    """The preset whose values these are, or :data:`CUSTOM` (a form that shows a preset's
    numbers names the preset)."""
    for name, p in SAMPLER_PRESETS.items():
        if all(_same(values.get(k), v) for k, v in p.values().items()):
            return name
    return CUSTOM


def _same(a: Any, b: Any) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return False


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


# ----------------------------------------------------------------------------------------------
# The sampler
# ----------------------------------------------------------------------------------------------
class Sampler:
    """Turns next-token scores into chosen tokens, as :class:`SamplingSettings` say.

    Built once per generation (the processors are reused every token). ``generator`` is the
    torch generator every draw comes from: one seed, one text.
    """

    def __init__(self, settings: SamplingSettings, generator: Any = None) -> None:
        settings.validate()
        self.settings = settings
        self.generator = generator
        self.processors = logits_processors(settings)

    def filter(self, history: Any, scores: Any) -> Any:
        """Scores after penalty, temperature and truncation (-inf for removed tokens)."""
        return self.processors(history, scores) if self.processors else scores

    def pick(self, history: Any, scores: Any) -> Any:
        """The next token of each row: ``history`` (B, T) token ids, ``scores`` (B, V) float
        logits; returns (B,) ids."""
        import torch

        scores = self.filter(history, scores)
        if self.settings.temperature == 0:
            return scores.argmax(dim=-1)
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)


def logits_processors(s: SamplingSettings) -> Any:
    """The ``transformers`` logits processors for ``s``, in ``model.generate``'s order."""
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
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
        if s.min_p > 0.0:
            procs.append(MinPLogitsWarper(s.min_p))
    return procs
