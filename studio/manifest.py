"""The run manifest (``run.json``): one typed, versioned record of what a run did and with what.

Everything that reads runs (the run index, ``studio runs``, Open run, the model library, the
audit panel) reads it through :func:`read`, which also upgrades files older studios wrote. Only
the host writes it (``studio.runs.RunDir``); jobs add to it through their context
(``ctx.record_data``, ``ctx.add_artifact``).

What a training run records about its data is what makes a model auditable: each dataset's
location, a content hash per example and a fingerprint over them, and which examples were
trained on and which held out. The per-example list can be long (a folder of 50,000 images), so
it lives beside the manifest in ``examples-<role>.jsonl``; ``run.json`` keeps the counts and the
fingerprint.

An example's id is stable across runs and machines: ``<path inside the dataset>@<first 16 hex
of its SHA-256>``, plus ``#<part>`` for a piece of a file (a phrase of a MIDI file, a range of
characters of a text). Two runs trained on the same file share its id; an edited file gets a new
one.

No Qt, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from studio import storage

SCHEMA = 2
FILE = "run.json"
TRAIN, HELD_OUT = "train", "held_out"
Split = Literal["train", "held_out"]
STATES = ("running", "done", "failed", "cancelled", "interrupted")


# ----------------------------------------------------------------------------------------------
# Examples and datasets
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """One training example: a file of the dataset, or a part of one."""

    path: str  # inside the dataset's location, "/"-separated ("" when the location is a file)
    sha256: str  # of the whole file's bytes
    part: str = ""  # which piece of the file ("phrase 3", "chars 0-90000"), "" for all of it

    @property
    def id(self) -> str:
        return f"{self.path}@{self.sha256[:16]}" + (f"#{self.part}" if self.part else "")

    def with_part(self, part: str) -> Example:
        return Example(self.path, self.sha256, part)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_examples(root: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]], *,
                  check: Callable[[], None] | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  hashes: Sequence[str] | None = None) -> list[Example]:
    """An :class:`Example` for each file (content hashed), named relative to ``root``.
    ``hashes``: the files' sha256 when the caller has them already (a cached image folder)."""
    root = Path(root)
    paths = [Path(f) for f in files]
    if hashes is not None:
        if len(hashes) != len(paths):
            raise ValueError("one hash per file")
        return [Example(_relative(f, root), h) for f, h in zip(paths, hashes, strict=True)]
    out = []
    for i, f in enumerate(paths):
        if check is not None:
            check()
        out.append(Example(_relative(f, root), sha256_file(f)))
        if progress is not None and (i % 256 == 0 or i == len(paths) - 1):
            progress(i + 1, len(paths))
    return out


def _relative(f: Path, root: Path) -> str:
    try:
        return f.relative_to(root).as_posix() if f != root else ""
    except ValueError:
        return f.name


def fingerprint(ids: Iterable[str]) -> str:
    """A hash over the sorted example ids: the same data gives the same fingerprint, in any
    order and in any folder."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:32]


@dataclass
class Dataset:
    """A dataset as ``run.json`` records it."""

    role: str  # "train" (the data the model learnt from), or "eval", "reference", ...
    name: str  # what the user calls it: the folder's name, "digits", "bach"
    location: str  # absolute path of the folder or file (resume finds the data from anywhere)
    fingerprint: str
    examples: int
    train: int
    held_out: int
    unit: str = "file"  # what one example is: file, phrase, image, window, text range
    examples_file: str = ""  # beside run.json: one JSON line per example with its split
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExampleRow:
    """One line of an examples file."""

    id: str
    path: str
    sha256: str
    part: str
    split: str


# ----------------------------------------------------------------------------------------------
# Artifacts, sessions, the manifest
# ----------------------------------------------------------------------------------------------
@dataclass
class Artifact:
    path: str  # relative to the run folder when inside it
    kind: str  # "model", "checkpoint", "samples", ...
    model_kind: str = ""  # for the model library: gan, music-vae, diffusers-pipeline, ...
    sha256: str = ""  # files only (a folder model hashes its weight files in ``info``)
    bytes: int = 0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    """One start of the job in this folder (a resumed run has several)."""

    job: str
    params: dict[str, Any]
    state: str
    started: float
    finished: float | None = None
    error: str | None = None
    device: str = ""
    code: dict[str, str] = field(default_factory=dict)


@dataclass
class Manifest:
    plugin: str
    job: str
    params: dict[str, Any]
    title: str = ""
    schema: int = SCHEMA
    state: str = "running"
    started: float = field(default_factory=time.time)
    finished: float | None = None
    seconds: float = 0.0  # time spent running, over every session
    result: str | None = None
    error: str | None = None
    device: str = ""
    code: dict[str, str] = field(default_factory=dict)
    pid: int = 0  # the process writing it while "running" (a dead one: interrupted)
    datasets: list[Dataset] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)  # earlier sessions, oldest first

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        data = upgrade(data)
        known = {f.name for f in fields(cls)}
        m = cls(**{k: v for k, v in data.items() if k in known
                   and k not in ("datasets", "artifacts", "sessions")})
        _check_types(m, exclude=("datasets", "artifacts", "sessions"))
        m.datasets = [_build(Dataset, d) for d in _list(data.get("datasets"))]
        m.artifacts = [_build(Artifact, a) for a in _list(data.get("artifacts"))]
        m.sessions = [_build(Session, s) for s in _list(data.get("sessions"))]
        return m

    # -- questions the audit and the library ask ------------------------------------------------
    def dataset(self, role: str = TRAIN) -> Dataset | None:
        return next((d for d in self.datasets if d.role == role), None)

    def models(self) -> list[Artifact]:
        return [a for a in self.artifacts if a.kind == "model"]


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"a {cls.__name__.lower()} entry is not an object")
    known = {f.name for f in fields(cls)}
    extra = {k: v for k, v in data.items() if k not in known}
    obj = cls(**{k: v for k, v in data.items() if k in known})
    _check_types(obj)
    if extra and hasattr(obj, "info"):
        obj.info = {**extra, **obj.info}
    return obj


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def _check_types(obj: Any, exclude: tuple[str, ...] = ()) -> None:
    """Refuse a field of the wrong JSON type (``"title": 5``, ``"params": []``), so a damaged
    or hand-edited ``run.json`` is "unreadable" here rather than a crash wherever the field is
    used later (found by fuzzing)."""
    import typing

    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        if f.name in exclude:
            continue
        value = getattr(obj, f.name)
        hint = hints[f.name]
        allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union,
                                                                        types.UnionType) \
            else (hint,)
        if not any(_is(value, t) for t in allowed):
            raise ValueError(f"{f.name} has the wrong type")


def _is(value: Any, hint: Any) -> bool:
    import typing

    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin)


# ----------------------------------------------------------------------------------------------
# Reading (with upgrades) and writing
# ----------------------------------------------------------------------------------------------
def upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest of any schema as the current one. Schema 1 (unversioned) had free-form
    ``datasets`` and ``artifacts`` entries (``{"path", **info}``) and ``history``."""
    d = dict(data)
    version = int(d.get("schema", 1) or 1)
    if version > SCHEMA:
        return d  # from a newer studio: read what we know, keep the rest untouched
    if version == 1:
        datasets = []
        for entry in d.get("datasets", []) or []:
            info = {k: v for k, v in entry.items() if k not in ("path", "fingerprint")}
            n = next((int(info[k]) for k in ("files", "images", "phrases", "windows", "levels")
                      if isinstance(info.get(k), int | float)), 0)
            datasets.append({"role": TRAIN, "name": Path(str(entry.get("path", ""))).name,
                             "location": str(entry.get("path", "")),
                             "fingerprint": str(entry.get("fingerprint") or ""),
                             "examples": n, "train": n, "held_out": 0, "unit": "file",
                             "examples_file": "", "info": info})
        artifacts = []
        for entry in d.get("artifacts", []) or []:
            info = {k: v for k, v in entry.items() if k not in ("path", "kind")}
            kind = str(entry.get("kind", "model"))
            model_kind = {"generator": "gan", "diffusers-pipeline": "diffusers-pipeline"}.get(
                kind, "")
            artifacts.append({"path": str(entry.get("path", "")),
                              "kind": "model" if kind in ("generator", "diffusers-pipeline")
                              else kind, "model_kind": model_kind, "info": info})
        sessions = []
        for h in d.get("history", []) or []:
            sessions.append({"job": h.get("job", d.get("job", "")),
                             "params": h.get("params") or {}, "state": h.get("state") or "",
                             "started": h.get("started") or 0.0,
                             "finished": h.get("finished"), "error": h.get("error")})
        d.update(schema=SCHEMA, datasets=datasets, artifacts=artifacts, sessions=sessions)
        d.pop("history", None)
    return d


def read(run_dir: str | os.PathLike[str]) -> Manifest | None:
    """The manifest of a run folder, upgraded; None when there is none or it is unreadable."""
    try:
        data = storage.read_json(Path(run_dir) / FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "plugin" not in data:
        return None
    try:
        return Manifest.from_json(data)
    except (TypeError, ValueError, AttributeError, KeyError):  # a damaged or foreign run.json
        return None


def write(run_dir: str | os.PathLike[str], manifest: Manifest) -> Path:
    return storage.atomic_write_json(Path(run_dir) / FILE, manifest.to_json())


def code_version() -> dict[str, str]:
    """What made the run: the studio's version, Python, and torch's when it is loaded (the
    host never imports torch just to say so)."""
    from studio import __version__

    out = {"studio": __version__, "python": platform.python_version()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = str(getattr(torch, "__version__", ""))
    return out


# ----------------------------------------------------------------------------------------------
# Examples files
# ----------------------------------------------------------------------------------------------
def examples_file(role: str) -> str:
    return f"examples-{role}.jsonl"


def write_examples(run_dir: Path, role: str, examples: Iterable[Example],
                   held_out: set[str]) -> tuple[str, int, int]:
    """Write the per-example list; returns (file name, trained count, held-out count)."""
    lines, n_train, n_held = [], 0, 0
    for ex in examples:
        split = HELD_OUT if ex.id in held_out else TRAIN
        n_held += split == HELD_OUT
        n_train += split == TRAIN
        lines.append(json.dumps({"id": ex.id, "path": ex.path, "sha256": ex.sha256,
                                 "part": ex.part, "split": split}) + "\n")
    name = examples_file(role)
    storage.atomic_write_text(run_dir / name, "".join(lines))
    return name, n_train, n_held


def read_examples(run_dir: str | os.PathLike[str], role: str = TRAIN) -> Iterator[ExampleRow]:
    """Every example of a run's dataset with its split: the audit's "which examples trained
    this model?". Empty for runs that recorded none (older runs, runs without data)."""
    m = read(run_dir)
    ds = m.dataset(role) if m else None
    if ds is None or not ds.examples_file:
        return
    path = Path(run_dir) / ds.examples_file
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                r = json.loads(line)
                yield ExampleRow(r["id"], r["path"], r["sha256"], r.get("part", ""), r["split"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn line after a crash


def membership(run_dir: str | os.PathLike[str], role: str = TRAIN) -> dict[str, str]:
    """``{example id: "train" | "held_out"}`` for a run."""
    return {r.id: r.split for r in read_examples(run_dir, role)}
