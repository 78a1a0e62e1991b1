"""Job parameters described once, by the job function's own signature.

A job is ``def train(ctx, data: str, size: int = 32, arch: Literal["dcgan", "sngan"] = "dcgan")``.
From that signature the command line builds ``--data DIR --size 32 --arch sngan`` and the window
validates what a panel submits. Nothing is declared twice, so the CLI and the GUI cannot drift.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@dataclass(frozen=True)
class Param:
    name: str  # python name, e.g. "max_new_tokens"
    kind: type  # int, float, str, bool, Path, list
    default: Any
    required: bool
    choices: tuple[Any, ...] | None
    optional: bool  # None allowed
    help: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def describe(func: Callable[..., Any]) -> list[Param]:
    """The parameters of a job function (everything after ``ctx``)."""
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func)
    docs = _param_docs(func)
    out: list[Param] = []
    for i, (name, p) in enumerate(sig.parameters.items()):
        if i == 0 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue  # ctx, *args, **kwargs
        kind, choices, optional = _analyse(hints.get(name, str))
        required = p.default is inspect.Parameter.empty
        out.append(
            Param(name, kind, None if required else p.default, required, choices, optional,
                  docs.get(name, ""))
        )
    return out


def bind(func: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert ``values`` (strings from the CLI or typed values from a panel).

    Unknown names, missing required values and unconvertible values raise :class:`UserError`
    naming the parameter, so a typo never silently falls back to a default.
    """
    params = {p.name: p for p in describe(func)}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - set(params))
    if unknown:
        names = ", ".join("--" + u.replace("_", "-") for u in unknown)
        allowed = ", ".join(p.flag for p in params.values()) or "none"
        raise UserError(f"unknown option {names} (this job takes: {allowed})")
    bound: dict[str, Any] = {}
    for name, p in params.items():
        if name in values:
            bound[name] = convert(p, values[name])
        elif p.required:
            raise UserError(f"missing required option {p.flag}")
    return bound


def convert(p: Param, value: Any) -> Any:
    if value is None:
        if p.optional or not p.required:
            return None
        raise UserError(f"{p.flag} needs a value")
    try:
        if p.kind is bool:
            out = _to_bool(value)
        elif p.kind is list:
            out = value if isinstance(value, list | tuple) else [
                s.strip() for s in str(value).split(",") if s.strip()]
            out = list(out)
        elif p.kind is Path:
            out = Path(value).expanduser()
        elif p.kind in (int, float, str):
            if isinstance(value, str) and p.kind is not str and value.strip().lower() == "none" \
                    and p.optional:
                return None
            if p.kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError("not a whole number")
            out = p.kind(value)
        else:
            out = value
    except (TypeError, ValueError) as exc:
        raise UserError(f"{p.flag}: cannot read {value!r} as {p.kind.__name__} ({exc})") from None
    if p.choices is not None and out not in p.choices:
        raise UserError(f"{p.flag} must be one of {', '.join(map(str, p.choices))}, not {value!r}")
    return out


def parse_cli(func: Callable[..., Any], argv: Sequence[str]) -> dict[str, Any]:
    """``--key value`` pairs (``--flag`` alone means true for booleans) into bound values."""
    params = {p.flag: p for p in describe(func)}
    raw: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise UserError(f"unexpected argument {tok!r}: options are written --key value")
        key, eq, inline = tok.partition("=")
        p = params.get(key)
        if p is None and key.startswith("--no-") and ("--" + key[5:]) in params:
            raw[key[5:]] = False
            i += 1
            continue
        if eq:
            raw[key[2:]] = inline
            i += 1
        elif p is not None and p.kind is bool and (
            i + 1 >= len(argv) or argv[i + 1].lower() not in _TRUE | _FALSE
        ):
            raw[key[2:]] = True
            i += 1
        else:
            if i + 1 >= len(argv):
                raise UserError(f"{key} needs a value")
            raw[key[2:]] = argv[i + 1]
            i += 2
    return bind(func, raw)


def usage(func: Callable[..., Any]) -> str:
    lines = []
    for p in describe(func):
        if p.kind is bool:
            val = ""
        elif p.choices:
            val = " " + "|".join(map(str, p.choices))
        else:
            val = " " + p.name.upper()
        default = "" if p.required else f" (default: {p.default})"
        req = " (required)" if p.required else ""
        lines.append(f"  {p.flag}{val}{req}{default}" + (f"\n      {p.help}" if p.help else ""))
    return "\n".join(lines)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("expected true or false")


def _analyse(hint: Any) -> tuple[type, tuple[Any, ...] | None, bool]:
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else str
        origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), tuple(choices), optional
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        return list, None, optional
    if hint in (int, float, str, bool, Path):
        return hint, None, optional
    return str, None, optional


def _param_docs(func: Callable[..., Any]) -> dict[str, str]:
    """Pick ``name: text`` lines out of an ``Args:`` section of the docstring."""
    doc = inspect.getdoc(func) or ""
    out: dict[str, str] = {}
    in_args = False
    current = None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if not in_args:
            continue
        if not stripped:
            current = None
            continue
        head, sep, text = stripped.partition(":")
        if sep and head.replace("_", "").isalnum() and " " not in head and line.startswith(
                ("    ", "  ")) and not line.startswith("        "):
            current = head
            out[current] = text.strip()
        elif current:
            out[current] += " " + stripped
    return out
