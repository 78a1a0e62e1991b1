"""Audit probes: how the privacy and bias audit reads, scores and samples any plugin's models.

The audit plugin never imports another plugin's engine. Each plugin that wants its runs audited
names a probe class on its plugin object (``Plugin.audit_probe = "plugins.foo.audit:FooProbe"``,
imported only when an audit asks), and the audit talks to that class through the protocol below.
One probe object is one loaded model: the audit loads the model it audits, then, for the
reference-model attacks, each reference model in turn (one at a time, :meth:`AuditProbe.close`
between them).

What a probe must provide (the :class:`AuditProbe` protocol; subclass :class:`ProbeBase`, which
implements the manifest parts, and write the rest):

``item_kind``  ``"image" | "text" | "music" | "level"``: what one item is (see *Items* below).
``load(run_dir, device)``  classmethod: load the run's model (its ``model`` artifact, or its last
    checkpoint) on ``device`` ("cpu", "cuda:0", "mps") and return the probe. Raise ``UserError``
    when the run has no usable model yet.
``examples()``  the run's training examples as :class:`ProbeExample` (id, path, part, split),
    read from the run manifest: ``ProbeBase`` does this.
``read(example)``  the item an example is, as the model saw it *before augmentation*
    (an image centre-cropped and resized to the model's size, the text of a character range,
    the notes of a phrase, the grid of a level). Raise ``UserError`` if its file is gone.
``per_example_loss(items)``  one float per item, lower = more familiar to the model. It must be
    deterministic (same items, same numbers: seed every noise draw) and comparable across models
    of the same plugin (the reference models use it too). Prefer a *per-unit negative
    log-likelihood* (mean over tokens, pixels, notes): the attacks turn ``exp(-loss)`` into a
    likelihood (RMIA) and fit Gaussians to it (LiRA). Examples: writer/chat, mean token
    cross-entropy; music VAE, reconstruction NLL per note + KL; diffusion, the denoising MSE
    averaged over a fixed set of (timestep, noise) draws; GAN, ``-log D(x)`` of the
    discriminator or the reconstruction error after latent inversion; levels, mean tile NLL.
    Called with up to :data:`BATCH` items at a time.
``sample(n, seed)``  ``n`` generated items, the same ones for the same seed.
``embed(items)``  ``(len(items), d)`` float features in the plugin's own feature space (the
    domain feature network for images, mean hidden state for text, the VAE latent for music,
    tile histograms for levels); used for nearest neighbours, so Euclidean/cosine distance should
    mean "looks alike".
``reference_job(holdout, seed)``  ``(job name, params)`` of this plugin's own train job that
    trains a *reference model*: the same settings and data as the audited run, holding out
    ``holdout`` of the examples chosen by ``plugins.common.splits.held_out(ids, holdout, seed)``.
    ``params`` is the job's params object or a mapping of its fields. ``ProbeBase`` returns the
    run's own job with ``holdout`` and ``seed`` replaced, which is right for most plugins.
``close()``  free the model (GPU memory) before the next one is loaded.

Optional, for text models (canary exposure, :class:`TextProbe`):
``log_perplexity(texts)``  ``-log2 P(text)`` in bits per text, summed over its tokens (the
    measure of "The Secret Sharer", Carlini et al. 2019).
``corpus_job(corpus, preset, steps)``  classmethod: ``(job name, params)`` that trains this
    plugin's model on a text file or folder (the canary audit trains on a copy of a corpus).

Optional, for representation audits (all three optional; without them the audit labels
examples by their first folder and classifies samples by their nearest training examples in
``embed`` space):
``labels(examples)``  the class name of each example (default: its first folder), for data
    whose classes are not folders.
``classify(items)``  the class name of each item, by the plugin's own classifier
    (:class:`ClassProbe`).
``sample_with_labels(n, seed)``  ``(items, classes asked for)``: a conditional model's samples
    with the class each was asked for, so the audit can say how often it delivers each class.

Optional, for bias probes of language models (:class:`LanguageProbe`):
``continuation_logprob(prompts, continuations)``  ``log P(continuation | prompt)`` in nats for
    each pair (the continuation's tokens summed), as a float array.
``generate(prompt, n, seed)``  ``n`` short continuations of ``prompt`` (a sentence or so), the
    same ones for the same seed; a chat model answers the prompt as a user's message.

Items (what :meth:`AuditProbe.read` and :meth:`AuditProbe.sample` return; :func:`check_item`
validates them):

- ``image``: a ``uint8`` numpy array ``(H, W, C)`` with C in 1, 3, 4 (or ``(H, W)`` grey);
- ``text``: a ``str``;
- ``music``: a ``list[Note]`` (pitch as a MIDI number, start and duration in beats);
- ``level``: a ``list[str]``, the rows of a tile grid, all of one length (VGLC characters).

Check a probe with :func:`check_probe` in the plugin's tests: it loads nothing itself and
returns a list of problems (empty when the probe keeps the contract).

No Qt, no torch (a probe imports torch inside its own methods).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from studio import manifest as manifest_mod
from studio.errors import UserError

ItemKind = Literal["image", "text", "music", "level"]
ITEM_KINDS: tuple[str, ...] = ("image", "text", "music", "level")
#: the most items the audit hands to ``per_example_loss`` or ``embed`` in one call
BATCH = 64


class Note(NamedTuple):
    """One note of a music item: MIDI pitch (0-127), start and duration in beats."""

    pitch: int
    start: float
    duration: float


@dataclass(frozen=True)
class ProbeExample:
    """One training example of the audited run, as its manifest records it."""

    id: str  # stable across runs: "<path>@<sha256[:16]>[#part]"
    path: str  # inside the dataset's location, "/"-separated ("" when the location is a file)
    sha256: str  # of the whole file
    part: str  # which piece of the file ("phrase 3", "chars 0-90000"), "" for all of it
    split: str  # "train" (the model learnt from it) or "held_out"

    @property
    def member(self) -> bool:
        return self.split == manifest_mod.TRAIN


@runtime_checkable
class AuditProbe(Protocol):
    """What the audit needs from a plugin's model (see the module docstring for each method)."""

    item_kind: ClassVar[str]
    run_dir: Path

    @classmethod
    def load(cls, run_dir: Path, device: str) -> AuditProbe: ...

    def examples(self) -> list[ProbeExample]: ...

    def read(self, example: ProbeExample) -> Any: ...

    def per_example_loss(self, items: Sequence[Any]) -> np.ndarray: ...

    def sample(self, n: int, seed: int) -> list[Any]: ...

    def embed(self, items: Sequence[Any]) -> np.ndarray: ...

    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class TextProbe(AuditProbe, Protocol):
    """A text model's probe, which the canary audit needs as well."""

    def log_perplexity(self, texts: Sequence[str]) -> np.ndarray: ...

    @classmethod
    def corpus_job(cls, corpus: Path, preset: str, steps: int) -> tuple[str, Any]: ...


@runtime_checkable
class ClassProbe(AuditProbe, Protocol):
    """A probe that can say which class a generated item belongs to (representation audits)."""

    def classify(self, items: Sequence[Any]) -> list[str]: ...


@runtime_checkable
class LanguageProbe(AuditProbe, Protocol):
    """A language model's probe that can score and continue prompts (bias probes)."""

    def continuation_logprob(self, prompts: Sequence[str],
                             continuations: Sequence[str]) -> np.ndarray: ...

    def generate(self, prompt: str, n: int, seed: int) -> list[str]: ...


class ProbeBase:
    """The parts of a probe every plugin shares: the run, its manifest and its examples.

    Subclasses set ``item_kind``, override :meth:`open` (load the model) and implement ``read``,
    ``per_example_loss``, ``sample`` and ``embed``; ``reference_job`` and ``close`` have
    defaults.
    """

    item_kind: ClassVar[str] = ""

    def __init__(self, run_dir: Path, device: str = "cpu") -> None:
        self.run_dir = Path(run_dir)
        self.device = device
        m = manifest_mod.read(self.run_dir)
        if m is None:
            raise UserError(f"{self.run_dir.name} is not a studio run (it has no readable "
                            "run.json): choose a run folder made by a training job")
        self.manifest = m

    @classmethod
    def load(cls, run_dir: Path, device: str = "cpu") -> Any:
        probe = cls(run_dir, device)
        probe.open()
        return probe

    def open(self) -> None:
        """Load the model (called by :meth:`load`); the default loads nothing."""

    def close(self) -> None:
        """Free the model; the default does nothing."""

    # -- the data --------------------------------------------------------------------------------
    @property
    def dataset(self) -> manifest_mod.Dataset:
        ds = self.manifest.dataset(manifest_mod.TRAIN)
        if ds is None:
            raise UserError(f"the run {self.run_dir.name} recorded no training data, so it "
                            "cannot be audited: train it again with this version of the studio")
        return ds

    def examples(self) -> list[ProbeExample]:
        rows = list(manifest_mod.read_examples(self.run_dir, manifest_mod.TRAIN))
        if not rows:
            raise UserError(f"the run {self.run_dir.name} did not record its examples, so it "
                            "cannot be audited: train it again with this version of the studio")
        return [ProbeExample(r.id, r.path, r.sha256, r.part, r.split) for r in rows]

    def example_path(self, example: ProbeExample, *, verify: bool = False) -> Path:
        """The file an example is (or is a part of). ``verify`` checks its content hash, so a
        file edited since training is not mistaken for the one the model saw."""
        root = Path(self.dataset.location)
        path = root / example.path if example.path else root
        if not path.exists():
            raise UserError(f"the training file {example.path or root.name} is gone (the data "
                            f"of {self.run_dir.name} was moved or deleted): put it back to audit")
        if verify and manifest_mod.sha256_file(path) != example.sha256:
            raise UserError(f"the training file {example.path or root.name} changed since the "
                            "run: the audit needs the data as it was")
        return path

    # -- reference models ------------------------------------------------------------------------
    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]:
        """The run's own job and settings, with ``holdout`` and ``seed`` replaced (and never
        resuming): the same model trained on a random ``1 - holdout`` of the same data."""
        params: dict[str, Any] = dict(self.manifest.params)
        params["holdout"] = holdout
        params["seed"] = seed
        if "resume" in params:
            params["resume"] = False
        return self.manifest.job, params


# ----------------------------------------------------------------------------------------------
# Checking items and probes
# ----------------------------------------------------------------------------------------------
def check_item(kind: str, item: Any) -> str | None:
    """What is wrong with ``item`` as an item of ``kind`` (None: nothing)."""
    if kind == "image":
        if not isinstance(item, np.ndarray) or item.dtype != np.uint8:
            return f"an image must be a uint8 numpy array, not {type(item).__name__}"
        if item.ndim == 2 or (item.ndim == 3 and item.shape[2] in (1, 3, 4)):
            return None
        return f"an image must be (H, W) or (H, W, C) with C in 1, 3, 4, not {item.shape}"
    if kind == "text":
        return None if isinstance(item, str) else f"a text must be a str, not {type(item)}"
    if kind == "music":
        if not isinstance(item, list | tuple):
            return f"a music item must be a list of Note, not {type(item).__name__}"
        for n in item:
            if not (isinstance(n, tuple) and len(n) == 3):
                return f"a note must be (pitch, start, duration), not {n!r}"
        return None
    if kind == "level":
        if not isinstance(item, list | tuple) or not all(isinstance(r, str) for r in item):
            return "a level must be a list of row strings"
        if item and len({len(r) for r in item}) != 1:
            return "a level's rows must all have the same length"
        return None
    return f"unknown item kind {kind!r} (one of {', '.join(ITEM_KINDS)})"


def as_image(item: np.ndarray) -> np.ndarray:
    """An image item as ``(H, W, C)``."""
    return item[:, :, None] if item.ndim == 2 else item


def as_notes(item: Sequence[Any]) -> list[Note]:
    return [Note(int(p), float(s), float(d)) for p, s, d in item]


def check_probe(probe: Any, *, n_examples: int = 4, n_samples: int = 3,
                warn: Callable[[str], None] | None = None) -> list[str]:
    """Every way ``probe`` (a loaded probe) breaks the contract; empty when it keeps it.

    Checks the item kind, that examples exist on both sides of the split and read as valid
    items, that losses are finite, one per item and deterministic, that sampling is seeded,
    that embeddings have one row per item and one width for examples and samples, and that the
    reference job names a job. Use it in each plugin's probe test."""
    problems: list[str] = []
    kind = getattr(probe, "item_kind", "")
    if kind not in ITEM_KINDS:
        return [f"item_kind must be one of {', '.join(ITEM_KINDS)}, not {kind!r}"]
    examples = probe.examples()
    if not examples:
        return ["examples() is empty"]
    members = [e for e in examples if e.member]
    others = [e for e in examples if not e.member]
    if not members:
        problems.append("no example is marked as trained on")
    if not others and warn is not None:
        warn("no example is held out: membership attacks need a held-out part")
    chosen = (members[: n_examples // 2 or 1] + others[: n_examples // 2])[:n_examples]
    items = [probe.read(e) for e in chosen]
    problems += [f"read({e.id}): {p}" for e, it in zip(chosen, items, strict=True)
                 if (p := check_item(kind, it))]
    if problems:
        return problems
    loss = np.asarray(probe.per_example_loss(items), dtype=np.float64)
    if loss.shape != (len(items),):
        problems.append(f"per_example_loss gave shape {loss.shape}, expected ({len(items)},)")
    elif not np.all(np.isfinite(loss)):
        problems.append("per_example_loss gave a non-finite value")
    else:
        again = np.asarray(probe.per_example_loss(items), dtype=np.float64)
        if not np.allclose(loss, again, rtol=1e-5, atol=1e-6):
            problems.append("per_example_loss is not deterministic (seed its noise)")
    s1 = probe.sample(n_samples, 7)
    s2 = probe.sample(n_samples, 7)
    if len(s1) != n_samples:
        problems.append(f"sample({n_samples}, seed) gave {len(s1)} items")
    problems += [f"sample: {p}" for it in s1 if (p := check_item(kind, it))]
    if not problems and not all(_same(a, b) for a, b in zip(s1, s2, strict=True)):
        problems.append("sample(n, seed) is not reproducible: the same seed gave other items")
    if problems:
        return problems
    e1 = np.asarray(probe.embed(items))
    e2 = np.asarray(probe.embed(s1))
    if e1.ndim != 2 or e1.shape[0] != len(items):
        problems.append(f"embed gave shape {e1.shape} for {len(items)} items")
    elif e2.ndim != 2 or e2.shape[1] != e1.shape[1]:
        problems.append("embed gave different widths for examples and samples")
    elif not (np.all(np.isfinite(e1)) and np.all(np.isfinite(e2))):
        problems.append("embed gave a non-finite value")
    job, params = probe.reference_job(0.5, 1)
    if not isinstance(job, str) or not job:
        problems.append("reference_job must name a job")
    if not (isinstance(params, Mapping) or hasattr(params, "__dataclass_fields__")):
        problems.append("reference_job's params must be a mapping or a params dataclass")
    return problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)
