"""The built-in data set: the 371 Bach chorales of the music21 corpus, written out as MIDI.

The studio ships them ready to use in ``resources/music/bach-chorales/`` (written by this module
at build time: ``python -m plugins.music.engine.bach resources/music/bach-chorales``), so a
first run trains at once: parsing 371 scores with music21 took 75 s to 2.5 minutes before the
first step. Without the shipped copy (a stripped install, or a ``limit`` for tests) they are
written once into ``<workspace>/datasets/bach-chorales/``. Either way the files look exactly like
a user's own folder to the loader. The folder is built under a
temporary name and renamed into place when complete (atomic: a cancelled or crashed export never
leaves a half-written data set that looks finished). Each file has one track per voice, named
after the part (Soprano, Alto, Tenor, Bass, ...), so the default melody choice ("auto") picks the
soprano line. A pickup bar is padded so that bar lines fall on MIDI bar lines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

NAME = "bach-chorales"
ALIASES = ("bach", "bach-chorales", "builtin:bach", "chorales")
TEMPO = 100.0


def is_builtin(data: str | None) -> bool:
    return data is not None and data.strip().lower() in ALIASES


def chorale_names(limit: int | None = None) -> list[str]:
    """Corpus paths of the chorales (music21's Riemenschneider order)."""
    from music21 import corpus

    names = [str(n) for n in corpus.chorales.Iterator(returnType="filename")]
    return names[:limit] if limit else names


def chorale_to_midi(name: str, target: Path) -> None:
    """One chorale (music21 corpus path) as a multi-track MIDI file."""
    import pretty_midi
    from music21 import corpus

    score = corpus.parse(name)
    parts = list(score.parts)
    if not parts:
        raise ValueError(f"{name} has no parts")
    pm = pretty_midi.PrettyMIDI(initial_tempo=TEMPO)
    sec = 60.0 / TEMPO
    first = parts[0].getElementsByClass("Measure").first()
    shift = 0.0
    sigs = list(parts[0].flatten().getElementsByClass("TimeSignature"))
    if first is not None:
        shift = float(first.paddingLeft or 0.0)
        if not shift and sigs and first.number == 0:
            shift = max(0.0, float(sigs[0].barDuration.quarterLength)
                        - float(first.duration.quarterLength))
    for k, ts in enumerate(sigs):
        t = 0.0 if k == 0 else (float(ts.offset) + shift) * sec
        pm.time_signature_changes.append(
            pretty_midi.TimeSignature(int(ts.numerator), int(ts.denominator), t))
    for i, part in enumerate(parts):
        inst = pretty_midi.Instrument(program=52 if i < 4 else 0,  # choir aahs
                                      name=str(part.partName or f"Part {i + 1}"))
        for n in part.stripTies().flatten().notes:
            start = (float(n.offset) + shift) * sec
            end = start + float(n.quarterLength) * sec
            if end <= start:
                continue  # grace notes carry no duration in the score
            for p in n.pitches:
                inst.notes.append(pretty_midi.Note(velocity=80, pitch=int(p.midi), start=start,
                                                   end=end))
        pm.instruments.append(inst)
    pm.write(str(target))


def builtin_bach(
    workspace: Path,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
) -> Path:
    """The chorales as MIDI: the shipped copy, or one written into the workspace on first use
    (``limit`` for tests)."""
    if not limit:
        shipped = resource_folder()
        if shipped is not None:
            return shipped
    return write_chorales(workspace / "datasets", limit, progress, check)


def resource_folder() -> Path | None:
    """The shipped copy of the chorales, when it is there and complete."""
    from studio.shipped import resource

    shipped = resource("music", NAME)
    return shipped if shipped is not None and (shipped / ".complete").exists() else None


def write_chorales(
    base: Path,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
    name: str | None = None,
) -> Path:
    """Write the chorales as MIDI into ``base/<name>`` (atomically; kept when complete)."""
    root = base / (name or (NAME if not limit else f"{NAME}-first{limit}"))
    if (root / ".complete").exists():
        return root
    base.mkdir(parents=True, exist_ok=True)
    names = chorale_names(limit)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=base))
    try:
        for i, name in enumerate(names):
            if check is not None:
                check()
            stem = name.replace("\\", "/").split("/")[-1].rsplit(".", 1)[0] \
                if name.endswith((".mxl", ".xml", ".krn", ".musicxml")) else \
                name.replace("\\", "/").split("/")[-1]
            chorale_to_midi(name, tmp / f"{i + 1:03d}_{stem}.mid")
            if progress is not None:
                progress(i + 1, len(names))
        (tmp / ".complete").write_text(f"music21 corpus: {len(names)} Bach chorales\n",
                                       encoding="utf-8")
        if root.exists():  # an old, incomplete export: replace it
            shutil.rmtree(root, ignore_errors=True)
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first: use its copy
            if not (root / ".complete").exists():
                raise
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                shutil.rmtree(tmp)
    return root


def resolve_data(data: str, workspace: Path, **kwargs: object) -> Path:
    """``bach`` (and aliases) means the built-in chorales; anything else is a path."""
    if is_builtin(data):
        return builtin_bach(workspace, **kwargs)  # type: ignore[arg-type]
    return Path(data).expanduser()


if __name__ == "__main__":  # the build step that makes the shipped copy
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m plugins.music.engine.bach OUT_FOLDER")
    out = Path(sys.argv[1])
    print(write_chorales(out.parent, name=out.name,
                         progress=lambda i, n: print(f"\r{i}/{n}", end="", flush=True)))
