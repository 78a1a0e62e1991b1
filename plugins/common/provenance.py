"""Where an exported file came from: a provenance manifest inside the file, and verifying it.

Every file the studio writes for the user to share (PNG, GIF, MIDI, WAV, Tiled maps, Markdown,
text) carries a small manifest in the format's own metadata: the studio's version, the plugin
and job, the model's *name* and run id, the seed, the job's parameters and a hash of the
content (the pixels, the audio samples, the notes, the tiles, the text). :func:`verify`
recomputes that hash, so it tells an untouched file from one edited since, and says so in
words. PNGs also carry XMP with IPTC's ``DigitalSourceType`` (``trainedAlgorithmicMedia`` for
a trained model's output), the field image hosts and photo tools read for "made by AI".

Nothing personal travels: :func:`make` reduces every path it is given to a bare file or folder
name (a home folder names its user), so exported files never hold an absolute path.

Where the manifest lives in each format is in :mod:`plugins.common.provformats`. No Qt, no
torch.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

SCHEMA = 1
SOFTWARE = "Generative Studio"

# IPTC NewsCodes digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/)
IPTC_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = "trainedAlgorithmicMedia"  # made by a model trained on sampled content
ALGORITHMIC = "algorithmicMedia"  # made by an algorithm with no training data (WFC levels)
ENHANCED = "algorithmicallyEnhanced"  # a person's work, minor changes by an algorithm
COMPOSITE_TRAINED = "compositeWithTrainedAlgorithmicMedia"  # a picture with inpainted parts
COMPOSITE = "composite"  # a person's work with a part made by an algorithm
SOURCE_TYPES = (TRAINED, ALGORITHMIC, ENHANCED, COMPOSITE_TRAINED, COMPOSITE, "")

_WORDS = {TRAINED: "made by a trained model", ALGORITHMIC: "made by an algorithm",
          ENHANCED: "changed by an algorithm",
          COMPOSITE_TRAINED: "partly made by a trained model",
          COMPOSITE: "partly made by an algorithm"}


@dataclass
class Provenance:
    """The manifest an exported file carries (JSON in the file's metadata)."""

    plugin: str  # "gan", "music", ...
    job: str  # the job that made the file ("sample", "export", ...)
    model: str = ""  # the model's name: its run folder's or file's name, never a path
    model_id: str = ""  # a short hash of the model's weights, when the plugin has one
    run: str = ""  # the training run's id (its folder name)
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # the job's typed params, paths reduced
    source_type: str = TRAINED  # IPTC digital source type code ("" when not a generation)
    studio: str = ""  # the studio's version
    created: str = ""  # ISO 8601, UTC
    content: str = ""  # what the hash covers ("pixels", "audio samples", ...)
    content_sha256: str = ""
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def dumps(self) -> str:
        """Compact ASCII JSON (every format's metadata takes ASCII)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Provenance:
        known = {f.name for f in fields(cls)}
        if not isinstance(data.get("plugin"), str) or not isinstance(data.get("job"), str):
            raise ValueError("not a studio provenance manifest")
        out = cls(**{k: v for k, v in data.items() if k in known})
        if not isinstance(out.params, dict):
            out.params = {}
        return out

    @classmethod
    def loads(cls, text: str) -> Provenance:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a studio provenance manifest")
        return cls.from_json(data)

    @property
    def iptc_uri(self) -> str:
        return IPTC_BASE + self.source_type if self.source_type else ""


# ----------------------------------------------------------------------------------------------
# Building a manifest without personal data
# ----------------------------------------------------------------------------------------------
def _looks_like_path(text: str) -> bool:
    """An absolute or home-relative path on any system (a prompt with a slash is not one)."""
    return "\n" not in text and len(text) < 4096 and (
        text.startswith(("/", "~", "\\\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", text))
        or text.startswith("file:"))


def bare_name(value: str | os.PathLike[str]) -> str:
    """The last part of a path, whichever system wrote it ("" for a root)."""
    text = str(value).rstrip("/\\")
    if "\\" in text:
        return PureWindowsPath(text).name
    return PurePosixPath(text).name


def scrub(value: Any) -> Any:
    """``value`` with every path reduced to its bare name, recursively (dicts, lists).

    Strings holding an absolute or home-relative path are reduced too (a path passed as text);
    other text (a prompt, a relative name) stays as it is, except that the user's home folder
    and name are taken out of it wherever they appear."""
    if isinstance(value, os.PathLike):
        return bare_name(value)
    if isinstance(value, str):
        if _looks_like_path(value):
            return bare_name(value)
        return _strip_personal(value)
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _strip_personal(repr(value)[:200])


def _strip_personal(text: str) -> str:
    home = str(Path.home())
    if len(home) > 1:
        text = text.replace(home, "~")
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name here: the home folder still goes
        user = ""
    if len(user) >= 3:  # a one- or two-letter name would eat ordinary words
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(user)}(?![A-Za-z0-9])", "~", text)
    return text


def params_json(params: Any) -> dict[str, Any]:
    """A job's typed params (a dataclass) or a dict, as JSON with paths reduced to names.

    In-memory values (a level, an image) are their codec's summary, never their content; the
    output location (``out``) is dropped: where the user saved a file says nothing about how
    it was made, and it is a path."""
    if params is None:
        return {}
    if is_dataclass(params) and not isinstance(params, type):
        from studio import params as params_mod

        try:
            data: dict[str, Any] = params_mod.to_json(params)
        except (TypeError, ValueError):  # not a studio params class: its fields, reduced below
            data = {f.name: getattr(params, f.name) for f in fields(params)}
    elif isinstance(params, Mapping):
        data = dict(params)
    else:
        raise TypeError(f"params must be a dataclass or a mapping, not {type(params).__name__}")
    data.pop("out", None)
    return {k: scrub(v) for k, v in data.items() if not _is_bulk(v)}


def _is_bulk(value: Any) -> bool:
    """Arrays and long lists (latents, notes) are content, not settings."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return True
    return isinstance(value, list | tuple) and len(value) > 64


def make(plugin: str, job: str, *, model: str | os.PathLike[str] | None = None,
         run: str | os.PathLike[str] | None = None, model_id: str = "",
         seed: int | None = None, params: Any = None, source_type: str = TRAINED) -> Provenance:
    """A manifest for a file a job is about to export.

    ``model`` and ``run`` may be paths (the job's model folder, a run folder): only their names
    are kept. ``run`` defaults to ``model``'s run folder when the model lives in one (a
    ``model/`` folder or a weights file inside a run)."""
    from studio import __version__

    if source_type not in SOURCE_TYPES:
        raise ValueError(f"unknown IPTC digital source type {source_type!r}")
    model_name = run_name = ""
    if model is not None and str(model):
        model_name, run_name = _model_and_run(Path(model))
    if run is not None and str(run):
        run_name = bare_name(run)
    return Provenance(
        plugin=plugin, job=job, model=model_name, model_id=str(model_id or ""), run=run_name,
        seed=None if seed is None else int(seed), params=params_json(params),
        source_type=source_type, studio=__version__,
        created=_dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace(
            "+00:00", "Z"))


def _model_and_run(path: Path) -> tuple[str, str]:
    """(model name, run id) for a model path: a run folder, a folder inside one (the
    diffusion ``model/`` pipeline, a writer's ``final/``) or a weights file inside one."""
    from studio import manifest

    try:
        here = path.expanduser()
        for folder in [here, *here.parents][:3]:
            if folder.is_dir() and (folder / manifest.FILE).exists():
                name = folder.name if folder == here else f"{folder.name}/{bare_name(path)}"
                return name, folder.name
    except OSError:
        pass
    return bare_name(path), ""


# ----------------------------------------------------------------------------------------------
# Stamping, reading, verifying
# ----------------------------------------------------------------------------------------------
def stamp(path: str | os.PathLike[str], prov: Provenance) -> Path:
    """Embed ``prov`` in the file at ``path`` (rewritten atomically), with the hash of its
    content as it is now. The file's content is not touched: PNG chunks, MIDI events and WAV
    chunks are inserted beside it."""
    from plugins.common import provformats

    path = Path(path)
    fmt = provformats.format_of(path)
    prov.content = fmt.content
    prov.content_sha256 = fmt.content_hash(path)
    fmt.embed(path, prov)
    return path


def stamp_all(paths: list[Path], prov: Provenance) -> list[Path]:
    """Stamp every file a format can carry a manifest in (sheets and legends beside a level are
    skipped: they are not what the job made); returns the files stamped."""
    from plugins.common import provformats

    done = []
    for p in paths:
        if provformats.supports(p):
            stamp(p, Provenance(**prov.to_json()))
            done.append(p)
    return done


def read(path: str | os.PathLike[str]) -> Provenance | None:
    """The manifest a file carries, or None (no studio provenance, or an unknown format)."""
    from plugins.common import provformats

    path = Path(path)
    if not provformats.supports(path):
        return None
    try:
        return provformats.format_of(path).extract(path)
    except (OSError, ValueError):
        return None


@dataclass
class Verdict:
    """What :func:`verify` found: the manifest, whether the content still matches, words."""

    file: str  # the file's name
    provenance: Provenance | None
    unchanged: bool | None  # None: nothing to compare
    content_sha256: str = ""  # the content's hash now
    c2pa: dict[str, Any] | None = None  # a C2PA manifest's summary, when the file has one
    words: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "unchanged": self.unchanged,
                "content_sha256": self.content_sha256, "c2pa": self.c2pa, "words": self.words,
                "provenance": self.provenance.to_json() if self.provenance else None}


def verify(path: str | os.PathLike[str]) -> Verdict:
    """Read a file's provenance back and check its content against the recorded hash."""
    from plugins.common import provformats
    from studio.errors import UserError

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path.name} does not exist: choose a file the studio exported")
    if path.is_dir():
        raise UserError(f"{path.name} is a folder: choose one file")
    c2pa = _c2pa_summary(path)
    if not provformats.supports(path):
        v = Verdict(path.name, None, None, c2pa=c2pa)
        v.words = (f"{path.name}: the studio exports PNG, GIF, MIDI, WAV, Tiled maps, Markdown "
                   "and text; this kind of file carries no studio provenance.")
        if c2pa:
            v.words += " " + _c2pa_words(c2pa)
        return v
    fmt = provformats.format_of(path)
    try:
        prov = fmt.extract(path)
        now = fmt.content_hash(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path.name} cannot be read as {fmt.name} ({exc})") from None
    unchanged = None if prov is None or not prov.content_sha256 else \
        prov.content_sha256 == now
    v = Verdict(path.name, prov, unchanged, now, c2pa)
    v.words = words(v, fmt.content)
    return v


def words(v: Verdict, content: str = "content") -> str:
    """The verdict in plain words, for the audit panel and the command line."""
    p = v.provenance
    if p is None:
        text = f"{v.file} carries no Generative Studio provenance."
        if v.c2pa:
            return text + " " + _c2pa_words(v.c2pa)
        return text + (" It was not exported by the studio, or its metadata was removed.")
    what = _WORDS.get(p.source_type, "exported")
    by = f"{SOFTWARE} {p.studio}".strip()
    parts = [f"{v.file} was {what} with {by} ({p.plugin} plugin, {p.job} job)"]
    if p.model:
        parts.append(f"model “{p.model}”" + (f" (weights {p.model_id})" if p.model_id else ""))
    if p.run and p.run != p.model:
        parts.append(f"training run {p.run}")
    if p.seed is not None:
        parts.append(f"seed {p.seed}")
    when = _when(p.created)
    text = ", ".join(parts) + (f", on {when}." if when else ".")
    label = p.content or content
    if v.unchanged is True:
        text += f" Its {label} are unchanged since." if label.endswith("s") else \
            f" Its {label} is unchanged since."
    elif v.unchanged is False:
        text += f" Its {label} {'were' if label.endswith('s') else 'was'} edited since it was " \
                "exported (the content no longer matches the recorded hash)."
    else:
        text += " It records no content hash, so edits cannot be detected."
    if v.c2pa:
        text += " " + _c2pa_words(v.c2pa)
    return text


def _when(created: str) -> str:
    try:
        t = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return t.strftime("%d %B %Y at %H:%M UTC").lstrip("0")


def _c2pa_summary(path: Path) -> dict[str, Any] | None:
    try:
        from plugins.common import c2pasign
    except ImportError:
        return None
    return c2pasign.summary(path)


def _c2pa_words(c2pa: dict[str, Any]) -> str:
    from plugins.common import c2pasign

    return c2pasign.words(c2pa)
