"""Typed job parameters: one dataclass per job, read by the CLI, the forms and the runner.

A job is ``def train(ctx, p: TrainParams) -> str`` where ``TrainParams`` is a dataclass whose
fields carry their own limits and hints::

    @dataclass(kw_only=True)
    class TrainParams:
        data: Annotated[Path | None, Label("Images"), Widget("folder"), Help("...")] = None
        steps: Annotated[int, Range(1, 1_000_000), Help("training steps")] = 3000
        arch: Annotated[Literal["dcgan", "sngan"], Choices(dcgan="DCGAN", sngan="SNGAN")] = "dcgan"

From that one declaration come the command line (``--data DIR --steps 10 --arch sngan``, its
``--help``), validation with messages that name the field, the panels' widgets (``Form`` in
``studio.widgets.form`` builds a spin box with the range, a combo with the labels), the values a
panel remembers between sessions and the ``params`` a run manifest records. A panel submits the
object itself, never a dict, so a newcomer can follow a value from its widget to the engine by
name.

In-memory values (a level being edited, an image, a latent) are fields too, typed as what they
are and given a :class:`Codec`: from the window they pass as objects, from the command line as a
file the codec reads. Nothing goes through scratch files.

This module never imports Qt or torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from studio.errors import UserError

__all__ = [
    "Annotated", "Choices", "Codec", "Group", "Help", "Label", "Param", "ParamError", "Range",
    "Special", "Unit", "Widget", "blank", "describe", "from_cli", "from_json", "job_params",
    "prepare", "prepare_unread", "read_objects", "to_json", "usage", "validate",
]

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}
_NONE = {"none", "null", ""}


# ----------------------------------------------------------------------------------------------
# What a field may carry
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """Inclusive limits (``None``: open) and the step a spin box or slider moves by."""

    lo: float | None = None
    hi: float | None = None
    step: float | None = None


@dataclass(frozen=True)
class Help:
    """One or two sentences: the tooltip in the window, the text under the flag in ``--help``."""

    text: str


@dataclass(frozen=True)
class Label:
    """The words the window shows before the widget (default: the field name, capitalised)."""

    text: str


@dataclass(frozen=True)
class Group:
    """A heading forms group fields under ("Sampling", "Advanced")."""

    name: str


@dataclass(frozen=True)
class Unit:
    """A suffix shown in spin boxes (" px", " steps")."""

    text: str


@dataclass(frozen=True)
class Special:
    """What the lowest value of a spin box means ("auto", "the preset's"). For an optional
    number (``int | None``) the value one step below the range stands for ``None``."""

    text: str


class Choices:
    """Readable labels for a ``Literal`` field's values: ``Choices(wfc="WFC (from an example)")``
    or ``Choices({1: "as is", 2: "mirrored"})`` for values that are not names."""

    def __init__(self, labels: Mapping[Any, str] | None = None, /, **named: str) -> None:
        self.labels: dict[Any, str] = {**dict(labels or {}), **named}

    def __repr__(self) -> str:
        return f"Choices({self.labels!r})"


@dataclass(frozen=True)
class Widget:
    """A hint for the form builder.

    ``kind`` is one of: ``folder``, ``file`` (open), ``save`` (a file to write), ``seed``,
    ``slider``, ``text`` (several lines), ``model`` (the model library's picker), ``hidden``
    (the panel supplies the value: never drawn by a generic form). ``filter`` is a file-dialog
    filter; ``kinds`` the model kinds a picker lists; ``suggestions`` the values a text field
    offers in a drop-down while still taking any text.
    """

    kind: str = ""
    filter: str = ""
    kinds: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Codec:
    """How an in-memory value travels on the command line: as a file.

    ``load`` is ``"module:function"`` (imported when first used, so declaring it costs nothing)
    or a callable ``load(path, params, warn) -> object``: it may read other fields of the
    params (a legend beside a level). ``describe(obj) -> dict`` says what the object was in a
    run manifest (default: its type name). ``what`` names the file in ``--help``. With
    ``inline``, a value that names no file is handed to the loader as text.
    """

    load: str | Callable[..., Any]
    what: str = "a file"
    describe: str | Callable[[Any], dict[str, Any]] | None = None
    inline: bool = False  # the value may also be written out ("3,4,#;5,6,-"): the loader
    #                       gets the text when it names no file

    def loader(self) -> Callable[..., Any]:
        return _resolve(self.load)

    def summary(self, obj: Any) -> dict[str, Any]:
        if self.describe is None:
            return {"object": type(obj).__name__}
        return dict(_resolve(self.describe)(obj))


def _resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return typing.cast(Callable[..., Any], getattr(importlib.import_module(module), attr))


class ParamError(UserError):
    """A value that does not fit its field. ``str()`` names the command-line flag; ``.gui``
    names the field as the window labels it."""

    def __init__(self, param: Param, problem: str) -> None:
        self.param = param
        self.problem = problem
        super().__init__(f"{param.flag} {problem}")

    @property
    def gui(self) -> str:
        return f"{self.param.label}: {self.problem}"


# ----------------------------------------------------------------------------------------------
# A field, described
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str  # python name, e.g. "max_new_tokens"
    kind: type  # int, float, str, bool, Path, list, or the object type of a codec field
    default: Any
    required: bool
    choices: tuple[Any, ...] | None = None
    optional: bool = False  # None is a valid value
    help: str = ""
    label: str = ""
    group: str = ""
    widget: Widget | None = None
    range: Range | None = None
    special: str = ""
    unit: str = ""
    choice_labels: Mapping[Any, str] | None = None
    codec: Codec | None = None
    item: type = str  # element type of a list field
    sequence: type = list  # a list field's container: list, or tuple for a tuple[...] hint

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def hidden(self) -> bool:
        return self.widget is not None and self.widget.kind == "hidden"

    def choice_label(self, value: Any) -> str:
        if self.choice_labels and value in self.choice_labels:
            return self.choice_labels[value]
        return str(value)


def job_params(func: Callable[..., Any]) -> type | None:
    """The params dataclass a job function takes as its second argument (None: it takes
    none)."""
    return _job_params(func)


_job_cache: dict[Callable[..., Any], type | None] = {}
_class_cache: dict[type, tuple[Param, ...]] = {}


def _job_params(func: Callable[..., Any]) -> type | None:
    if func not in _job_cache:
        _job_cache[func] = _find_job_params(func)
    return _job_cache[func]


def _find_job_params(func: Callable[..., Any]) -> type | None:
    sig = inspect.signature(func)
    names = list(sig.parameters)
    if len(names) < 2:
        return None
    hints = typing.get_type_hints(func)
    cls = hints.get(names[1])
    return cls if isinstance(cls, type) and dataclasses.is_dataclass(cls) else None


def describe(target: type | Callable[..., Any]) -> list[Param]:
    """The parameters of a params dataclass, or of a job function (its dataclass)."""
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        return list(_describe_class(target))
    return list(_describe_class(params_of(target)))


@dataclass
class NoParams:
    """The params of a job that takes none: ``def job(ctx)``."""


def params_of(func: Callable[..., Any]) -> type:
    """A job's params class (:class:`NoParams` for ``f(ctx)``); a job that takes keyword
    arguments instead is a programming error, said plainly."""
    cls = job_params(func)
    if cls is None and len(inspect.signature(func).parameters) == 1:
        return NoParams
    if cls is None:
        raise TypeError(f"{getattr(func, '__qualname__', func)} must take (ctx, p: SomeParams) "
                        "with SomeParams a dataclass (see DEVELOPERS.md, Parameters)")
    return cls


def _describe_class(cls: type) -> tuple[Param, ...]:
    """The fields of a params class (described once per class)."""
    if cls not in _class_cache:
        _class_cache[cls] = _read_class(cls)
    return _class_cache[cls]


def _read_class(cls: type) -> tuple[Param, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        hint = hints.get(f.name, str)
        meta: list[Any] = []
        if typing.get_origin(hint) is Annotated:
            hint, *meta = typing.get_args(hint)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = (None if required else f.default if f.default is not dataclasses.MISSING
                   else f.default_factory())  # type: ignore[operator]
        kind, choices, optional, item = _analyse(hint)
        info: dict[str, Any] = {}
        if kind is list and _is_tuple(hint):
            info["sequence"] = tuple  # a region (x0, y0, x1, y1) stays a tuple
        for m in meta:
            if isinstance(m, Help):
                info["help"] = m.text
            elif isinstance(m, Label):
                info["label"] = m.text
            elif isinstance(m, Group):
                info["group"] = m.name
            elif isinstance(m, Widget):
                info["widget"] = m
            elif isinstance(m, Range):
                info["range"] = m
            elif isinstance(m, Special):
                info["special"] = m.text
            elif isinstance(m, Unit):
                info["unit"] = m.text
            elif isinstance(m, Choices):
                info["choice_labels"] = m.labels
            elif isinstance(m, Codec):
                info["codec"] = m
        if "codec" not in info and kind not in (int, float, str, bool, Path, list):
            raise TypeError(f"{cls.__name__}.{f.name}: a {kind.__name__} field needs a Codec "
                            "(how the command line gives it as a file)")
        info.setdefault("label", f.name.replace("_", " ").capitalize())
        out.append(Param(f.name, kind, default, required, choices, optional, item=item, **info))
    return tuple(out)


def blank(cls: type) -> Any:
    """An instance with every default, required fields left ``None`` (a form's starting point;
    :func:`validate` says what is still missing)."""
    return cls(**{p.name: None for p in _describe_class(cls) if p.required})


# ----------------------------------------------------------------------------------------------
# Values in
# ----------------------------------------------------------------------------------------------
def from_mapping(cls: type, values: Mapping[str, Any]) -> Any:
    """Build and check an instance from strings (the CLI) or typed values (tests, JSON)."""
    params = {p.name: p for p in _describe_class(cls)}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - set(params))
    if unknown:
        names = ", ".join("--" + u.replace("_", "-") for u in unknown)
        allowed = ", ".join(p.flag for p in params.values()) or "none"
        raise UserError(f"unknown option {names} (this job takes: {allowed})")
    kwargs: dict[str, Any] = {}
    for name, p in params.items():
        if name in values:
            kwargs[name] = values[name] if p.codec is not None else convert(p, values[name])
        elif p.required:
            kwargs[name] = None
    obj = cls(**kwargs)
    return validate(obj)


def convert(p: Param, value: Any) -> Any:
    """One value to the field's type (strings are parsed); raises :class:`ParamError`."""
    if value is None or (isinstance(value, str) and p.kind is not str and p.optional
                         and value.strip().lower() in _NONE):
        return None  # whether None is allowed here is validate's question
    try:
        if p.kind is bool:
            out: Any = _to_bool(value)
        elif p.kind is list:
            items = value if isinstance(value, list | tuple) else [
                s.strip() for s in str(value).split(",") if s.strip()]
            out = [p.item(v) if p.item is not str else str(v) for v in items]
            if p.sequence is tuple:
                out = tuple(out)
        elif p.kind is Path:
            out = Path(value).expanduser()
        elif p.kind in (int, float, str):
            if p.kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError("not a whole number")
            if p.kind is int and isinstance(value, str):
                value = value.strip().replace("_", "")
            out = p.kind(value)
        else:
            out = value
    except (TypeError, ValueError):
        what = {int: "a whole number", float: "a number", bool: "true or false"}.get(
            p.kind, p.kind.__name__)
        if p.kind is list:
            what = {int: "whole numbers", float: "numbers"}.get(p.item, "words")
            what += " separated by commas"
        raise ParamError(p, f"expects {what}, not {value!r}") from None
    if p.choices is not None and out not in p.choices:
        out = _match_choice(p, out)
    return out


def _match_choice(p: Param, value: Any) -> Any:
    for c in p.choices or ():
        if str(c) == str(value):  # "32" for Literal[32, 64] from the command line
            return c
    raise ParamError(p, f"must be one of {', '.join(map(str, p.choices or ()))}, not {value!r}")


def validate(obj: Any) -> Any:
    """Check every field of ``obj`` in place (types converted, limits, choices, required) and
    return it; then the class's own ``rules()`` (rules between fields), if it has one."""
    for p in _describe_class(type(obj)):
        value = getattr(obj, p.name)
        if p.codec is not None:
            if value is None and p.required:
                raise ParamError(p, "is required")
            continue
        value = convert(p, value)
        if value is None:
            if p.required:
                raise ParamError(p, "is required")
            if not p.optional and p.default is not None:
                raise ParamError(p, "needs a value")
        elif p.kind in (int, float) and p.range is not None:
            lo, hi = p.range.lo, p.range.hi
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ParamError(p, _range_text(p))
        setattr(obj, p.name, value)
    rules = getattr(obj, "rules", None)
    if callable(rules):  # rules between fields that the class states itself
        rules()
    return obj


def _decode(p: Param, value: str | Path, obj: Any, warn: Callable[[str], None] | None) -> Any:
    assert p.codec is not None
    path = Path(value).expanduser()
    if not path.exists():
        if p.codec.inline and isinstance(value, str):  # written out on the command line
            return p.codec.loader()(value, obj, warn or (lambda _text: None))
        raise ParamError(p, f"names {path}, which does not exist")
    return p.codec.loader()(path, obj, warn or (lambda _text: None))


def prepare_unread(cls: type, values: Any) -> Any:
    """What the runner checks before a job starts: ``values`` (an instance from a panel, or a
    mapping from a test) as a checked copy; codec fields given as files are not read yet. A
    panel's instance is copied, so a job never changes the object a form is bound to."""
    if isinstance(values, cls):
        obj: Any = dataclasses.replace(typing.cast(Any, values))
    elif isinstance(values, Mapping):
        obj = from_mapping(cls, values)
    else:
        raise TypeError(f"expected {cls.__name__} or a mapping, got {type(values).__name__}")
    return validate(obj)


def read_objects(obj: Any, warn: Callable[[str], None] | None = None) -> Any:
    """Read the codec fields given as files (the command line's levels, images, latents) into
    their objects, in place."""
    for p in _describe_class(type(obj)):
        value = getattr(obj, p.name)
        if p.codec is not None and isinstance(value, str | Path):
            setattr(obj, p.name, _decode(p, value, obj, warn))
    return obj


def prepare(cls: type, values: Any, warn: Callable[[str], None] | None = None) -> Any:
    """:func:`prepare_unread` then :func:`read_objects`: a job's params as it receives them."""
    return read_objects(prepare_unread(cls, values), warn)


def _range_text(p: Param) -> str:
    assert p.range is not None
    lo, hi = p.range.lo, p.range.hi

    def fmt(v: float | None) -> str:
        assert v is not None
        return f"{int(v):,}".replace(",", "_") if p.kind is int else f"{v:g}"

    if lo is not None and hi is not None:
        return f"must be between {fmt(lo)} and {fmt(hi)}"
    if lo is not None:
        return f"must be at least {fmt(lo)}"
    return f"must be at most {fmt(hi)}"


def from_cli(cls: type, argv: Sequence[str]) -> Any:
    """``--key value`` pairs (``--flag`` alone means true, ``--no-flag`` false) into an
    instance; every problem is a :class:`UserError` naming the flag."""
    params = {p.flag: p for p in _describe_class(cls)}
    raw: dict[str, Any] = {}

    def put(key: str, value: str) -> None:
        """A list option given again adds to it (``--lora a --lora b``); others: the last
        one counts."""
        p = params.get(key)
        name = key[2:]
        if p is not None and p.kind is list and name in raw:
            def items(v: Any) -> list[str]:
                return v if isinstance(v, list) else [
                    s.strip() for s in str(v).split(",") if s.strip()]
            raw[name] = items(raw[name]) + items(value)
        else:
            raw[name] = value

    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise UserError(f"unexpected argument {tok!r}: options are written --key value")
        key, eq, inline = tok.partition("=")
        p = params.get(key)
        if p is None and key.startswith("--no-") and ("--" + key[5:]) in params \
                and params["--" + key[5:]].kind is bool:
            raw[key[5:]] = False
            i += 1
            continue
        if eq:
            put(key, inline)
            i += 1
        elif p is not None and p.kind is bool and (
                i + 1 >= len(argv) or argv[i + 1].lower() not in _TRUE | _FALSE):
            raw[key[2:]] = True
            i += 1
        else:
            if i + 1 >= len(argv):
                raise UserError(f"{key} needs a value")
            put(key, argv[i + 1])
            i += 2
    return from_mapping(cls, raw)


def usage(cls: type) -> str:
    """The options part of ``--help``: flag, values, default, limits and help text."""
    lines = []
    for p in _describe_class(cls):
        if p.kind is bool:
            val = ""
        elif p.choices:
            val = " " + "|".join(map(str, p.choices))
        elif p.codec is not None:
            val = " FILE"
        else:
            val = " " + p.name.upper()
        notes = []
        if p.required:
            notes.append("required")
        elif p.default is not None and p.default != [] and p.default != "":
            notes.append(f"default: {_show(p.default)}")
        if p.range is not None and p.kind in (int, float):
            notes.append(_range_text(p).removeprefix("must be "))
        if p.special and p.optional:
            # an optional field's special value is None (the lowest value is a real one)
            notes.append(f"none: {p.special}")
        elif p.special and p.kind in (int, float):  # a plain number's: its lowest value
            notes.append(f"{_show(p.range.lo if p.range and p.range.lo is not None else 0)}: "
                         f"{p.special}")
        elif p.special:  # text: what leaving it empty means
            notes.append(f"empty: {p.special}")
        text = " ".join(t for t in (p.help, f"({p.codec.what})" if p.codec else "") if t)
        head = f"  {p.flag}{val}" + (f"  [{'; '.join(notes)}]" if notes else "")
        lines.append(head + (f"\n      {text}" if text else ""))
    return "\n".join(lines)


def _show(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# ----------------------------------------------------------------------------------------------
# Values out (settings, run manifests) and back
# ----------------------------------------------------------------------------------------------
def to_json(obj: Any) -> dict[str, Any]:
    """The instance as JSON-safe values. Paths become strings; in-memory objects become their
    codec's summary (a manifest says "a level, 64x48", not megabytes of tiles)."""
    out: dict[str, Any] = {}
    for p in _describe_class(type(obj)):
        v = getattr(obj, p.name)
        if v is None or isinstance(v, bool | int | float | str):
            out[p.name] = v
        elif isinstance(v, Path):
            out[p.name] = str(v)
        elif isinstance(v, list | tuple) and all(isinstance(x, int | float | str) for x in v):
            out[p.name] = list(v)
        elif p.codec is not None:
            out[p.name] = {"$object": p.codec.summary(v)}
        else:
            out[p.name] = repr(v)[:200]
    return out


def from_json(cls: type, data: Mapping[str, Any] | None) -> Any:
    """An instance from remembered values, forgiving: unknown names are dropped, values that
    no longer fit (a setting removed, a range tightened) fall back to the default, in-memory
    objects are not restored. For the panel's last values and a reopened run's settings."""
    obj = blank(cls)
    for p in _describe_class(cls):
        if not data or p.name not in data:
            continue
        v = data[p.name]
        if p.codec is not None:
            if isinstance(v, str):
                setattr(obj, p.name, v)
            continue
        try:
            v = convert(p, v)
            if v is not None and p.kind in (int, float) and p.range is not None:
                lo, hi = p.range.lo, p.range.hi
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    continue
        except UserError:
            continue
        setattr(obj, p.name, v)
    return obj


def readable(obj: Any) -> list[tuple[str, str]]:
    """(label, value) pairs a person can read: a job's settings in a tooltip or a report.
    In-memory objects and unset optional values are left out."""
    if isinstance(obj, Mapping):
        return [(str(k).replace("_", " ").capitalize(), _show(v)) for k, v in obj.items()]
    out = []
    for p in _describe_class(type(obj)):
        v = getattr(obj, p.name)
        if p.codec is not None and not isinstance(v, str | Path):
            continue
        if v is None:
            if p.special:
                out.append((p.label, p.special))
            continue
        if isinstance(v, bool):
            text = "yes" if v else "no"
        elif p.choices:
            text = p.choice_label(v)
        elif isinstance(v, Path):
            text = v.name or str(v)
        else:
            text = _show(v) + (p.unit or "")
        if p.special and p.range is not None and p.range.lo is not None and v == p.range.lo:
            text = p.special
        out.append((p.label, text))
    return out


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("expected true or false")


def _is_tuple(hint: Any) -> bool:
    """Whether a list-like hint (optional or not) is a tuple."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    return hint is tuple or typing.get_origin(hint) is tuple


def _analyse(hint: Any) -> tuple[type, tuple[Any, ...] | None, bool, type]:
    """(kind, choices, optional, list item type) of a type hint."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else str
        origin = typing.get_origin(hint)
    if origin is Annotated:
        hint = typing.get_args(hint)[0]
        origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), tuple(choices), optional, str
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        items = typing.get_args(hint)
        item = items[0] if items and items[0] in (int, float, str) else str
        return list, None, optional, item
    if isinstance(hint, type):
        return hint, None, optional, str
    return str, None, optional, str
