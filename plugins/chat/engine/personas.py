"""Personas: who the assistant is (system prompt, greeting, tone) and how it samples.

A persona travels as JSON so users can share them; everything read from a file is validated
field by field, because a hand-edited persona with ``"temperature": "hot"`` should say which field
is wrong instead of failing later inside the sampler.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from studio.errors import UserError
from studio.storage import atomic_write_json

Tone = Literal["none", "formal", "casual", "friendly"]
TONES: tuple[str, ...] = get_args(Tone)

#: The line each tone preset adds to the system prompt (``none`` adds nothing).
TONE_LINES: dict[str, str] = {
    "none": "",
    "formal": "Answer in a formal, precise and courteous tone; avoid slang and jokes.",
    "casual": "Answer in a relaxed, casual tone, as if talking to a colleague; keep it short.",
    "friendly": "Answer in a warm, friendly and encouraging tone.",
}

FORMAT = "studio-chat-personas"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Sampler:
    """Sampling settings saved with a persona. ``top_k=0``, ``top_p=1`` and ``min_p=0`` turn
    those filters off; ``seed=None`` means a fresh seed for every reply."""

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repetition_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 512

    def validate(self) -> Sampler:
        """Return self, or raise UserError naming the first setting out of range."""
        _number("temperature", self.temperature, 0.0, 5.0)
        _integer("top_k", self.top_k, 0, 100_000)
        _number("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _number("min_p", self.min_p, 0.0, 1.0)
        _number("repetition_penalty", self.repetition_penalty, 0.5, 3.0)
        if self.seed is not None:
            _integer("seed", self.seed, 0, 2**63 - 1)
        _integer("max_new_tokens", self.max_new_tokens, 1, 1_000_000)
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) and s
                                                        for s in self.stop):
            raise UserError("Stop strings must be a list of non-empty texts.")
        return self


@dataclass(frozen=True)
class Persona:
    """A named assistant: its instructions, first words, tone and sampling."""

    name: str
    system_prompt: str = ""
    greeting: str = ""
    tone: Tone = "none"
    sampler: Sampler = field(default_factory=Sampler)

    def validate(self) -> Persona:
        if not isinstance(self.name, str) or not self.name.strip():
            raise UserError("A persona needs a name.")
        if len(self.name) > 80:
            raise UserError(f"The persona name '{self.name[:40]}…' is too long (80 characters "
                            "at most).")
        for key in ("system_prompt", "greeting"):
            if not isinstance(getattr(self, key), str):
                raise UserError(f"Persona '{self.name}': {key.replace('_', ' ')} must be text.")
        if self.tone not in TONES:
            raise UserError(f"Persona '{self.name}': unknown tone '{self.tone}' "
                            f"(choose one of {', '.join(TONES)}).")
        try:
            self.sampler.validate()
        except UserError as e:
            raise UserError(f"Persona '{self.name}': {e}") from None
        return self

    def full_system_prompt(self) -> str:
        """The system prompt the model sees: the persona's own text, then its tone line."""
        parts = [self.system_prompt.strip(), TONE_LINES[self.tone]]
        return "\n\n".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sampler"]["stop"] = list(self.sampler.stop)
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str = "the persona") -> Persona:
        """Build and validate a persona from JSON data; unknown keys are an error (a typo in a
        key would otherwise be silently ignored)."""
        if not isinstance(data, Mapping):
            raise UserError(f"{where} is not a JSON object.")
        known = {"name", "system_prompt", "greeting", "tone", "sampler"}
        extra = sorted(set(data) - known)
        if extra:
            raise UserError(f"{where}: unknown field(s) {', '.join(extra)} "
                            f"(known: {', '.join(sorted(known))}).")
        if "name" not in data:
            raise UserError(f"{where} has no name.")
        s = data.get("sampler", {})
        if not isinstance(s, Mapping):
            raise UserError(f"{where}: 'sampler' must be a JSON object.")
        s_known = {f for f in Sampler.__dataclass_fields__}
        s_extra = sorted(set(s) - s_known)
        if s_extra:
            raise UserError(f"{where}: unknown sampler setting(s) {', '.join(s_extra)} "
                            f"(known: {', '.join(sorted(s_known))}).")
        s = dict(s)
        if "stop" in s:
            stop = s["stop"]
            if isinstance(stop, str) or not isinstance(stop, list | tuple):
                raise UserError(f"{where}: 'stop' must be a list of texts.")
            s["stop"] = tuple(stop)
        try:
            p = cls(name=data["name"], system_prompt=data.get("system_prompt", ""),
                    greeting=data.get("greeting", ""), tone=data.get("tone", "none"),
                    sampler=Sampler(**s))
            return p.validate()
        except UserError as e:
            raise UserError(f"{where}: {e}") from None


DEFAULT_PERSONA = Persona(name="Assistant",
                          system_prompt="You are a helpful assistant. Answer clearly and "
                                        "say so when you do not know.")


def with_sampler(p: Persona, **changes: Any) -> Persona:
    """A copy of ``p`` with some sampler settings changed (validated)."""
    return replace(p, sampler=replace(p.sampler, **changes)).validate()


def export_personas(personas: Iterable[Persona], path: str | Path) -> Path:
    """Write personas as one versioned JSON file (atomic)."""
    data = {"format": FORMAT, "version": FORMAT_VERSION,
            "personas": [p.validate().to_dict() for p in personas]}
    return atomic_write_json(path, data)


def parse_personas(data: Any, where: str = "the file") -> list[Persona]:
    """Personas from parsed JSON: our own file, a list of personas, or a single persona."""
    if isinstance(data, Mapping) and "format" in data:
        if data.get("format") != FORMAT:
            raise UserError(f"{where} is not a personas file (format '{data.get('format')}').")
        version = data.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UserError(f"{where} was written by a newer version of the studio "
                            f"(personas format {version}); update the studio to read it.")
        items = data.get("personas")
    elif isinstance(data, list):
        items = data
    elif isinstance(data, Mapping):
        items = [data]
    else:
        raise UserError(f"{where} holds no persona (expected a JSON object or list).")
    if not isinstance(items, list) or not items:
        raise UserError(f"{where} holds no persona.")
    out = [Persona.from_dict(item, f"{where}, persona {i + 1}") for i, item in enumerate(items)]
    names = [p.name for p in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"{where} has two personas named {', '.join(dupes)}.")
    return out


def import_personas(path: str | Path) -> list[Persona]:
    """Read and validate a personas JSON file; errors name the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"No persona file named {path.name}.") from None
    except UnicodeDecodeError:
        raise UserError(f"{path.name} is not a text file (expected persona JSON).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path.name} is not valid JSON (line {e.lineno}: {e.msg}).") from None
    return parse_personas(data, path.name)


def _number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{name.replace('_', ' ')} must be a number, not {value!r}.")
    if value < low or value > high or (low_open and value == low):
        bound = f"above {low}" if low_open else f"at least {low}"
        raise UserError(f"{name.replace('_', ' ')} must be {bound} and at most {high} "
                        f"(got {value}).")


def _integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name.replace('_', ' ')} must be a whole number, not {value!r}.")
    if not low <= value <= high:
        raise UserError(f"{name.replace('_', ' ')} must be between {low} and {high} "
                        f"(got {value}).")
