"""``studio selftest``: does this installation work? Every plugin loads and runs a tiny job of
each kind it has (a few training steps and one generation), the window renders offscreen, audio
output plays (or the report says why not), and the workspace, settings and model folders are
writable. A pass/fail table; exit status 0 only when nothing failed.

It runs the same from a source checkout and from the frozen bundle, with no network: the data
are made here (a few images, a text, four shipped Bach chorales) and the jobs run in a temporary
workspace, so a user's own runs and recent-runs list are untouched. The jobs go through the
registry and the job runner exactly as the window and ``studio run`` start them; the steps are
command lines (``studio run`` argument lists), so this module imports no plugin.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from studio.errors import UserError

PASS, FAIL, SKIP = "pass", "FAIL", "skipped"

#: per plugin, its steps in order: (what, job, arguments). ``{images}``, ``{text}``,
#: ``{midi}``, ``{run:NAME}`` (a run folder made by an earlier step) and ``{out}`` (a file in
#: the scratch folder) are filled in. Plugins not named here are checked by loading alone.
STEPS: dict[str, list[tuple[str, str, list[str]]]] = {
    "gan": [
        ("train 2 steps", "train", ["--data", "{images}", "--steps", "2", "--batch-size", "4",
                                    "--out", "{run:gan}"]),
        ("generate", "sample", ["--model", "{run:gan}", "--n", "2", "--out", "{out}gan.png"]),
    ],
    "music": [
        ("train 2 steps", "train", ["--data", "{midi}", "--preset", "tiny", "--steps", "2",
                                    "--out", "{run:music}"]),
        ("generate", "sample", ["--model", "{run:music}", "--n", "2",
                                "--out", "{out}music.mid"]),
    ],
    "diffusion": [
        ("train 2 steps", "train", ["--data", "{images}", "--preset", "tiny", "--steps", "2",
                                    "--batch-size", "4", "--out", "{run:diffusion}"]),
        ("generate", "sample", ["--model", "{run:diffusion}", "--n", "1", "--steps", "2",
                                "--out", "{out}diffusion.png"]),
    ],
    "writer": [
        ("train 2 steps", "train", ["--data", "{text}", "--preset", "tiny", "--steps", "2",
                                    "--batch-size", "2", "--block-size", "16",
                                    "--out", "{run:writer}"]),
        ("generate", "generate", ["--model", "{run:writer}", "--prompt", "Once",
                                  "--max-new-tokens", "4", "--seed", "1"]),
    ],
    "chat": [
        ("train 2 steps", "train", ["--data", "builtin", "--preset", "tiny", "--steps", "2",
                                    "--out", "{run:chat}"]),
        ("reply", "reply", ["--model", "{run:chat}", "--message", "Hello", "--seed", "1",
                            "--max-new-tokens", "4"]),
    ],
    "levels": [
        ("generate a dungeon", "generate", ["--method", "dungeon", "--width", "32",
                                            "--height", "24", "--seed", "1",
                                            "--out", "{out}dungeon.tmj"]),
    ],
    "audit": [
        ("dataset check", "dataset", ["--data", "{images}", "--out", "{run:audit}"]),
    ],
}


@dataclass
class Check:
    """One line of the table."""

    what: str
    result: str
    seconds: float
    detail: str = ""


def run(plugins: Sequence[str] | None = None, window: bool = True, audio: bool = True,
        say: Callable[[Check], None] | None = None) -> list[Check]:
    """Run every check (or only those of ``plugins``); ``say`` hears each as it ends."""
    checks: list[Check] = []

    def record(check: Check) -> None:
        checks.append(check)
        if say is not None:
            say(check)

    record(_timed("workspace, settings and model folders are writable", _writable))
    with tempfile.TemporaryDirectory(prefix="studio-selftest-") as tmp:
        scratch = Path(tmp)
        data = _make_data(scratch)
        from studio import registry

        for rec in registry.discover():
            if plugins and rec.id not in plugins:
                continue
            if not rec.ok:
                record(Check(f"{rec.name}: loads", FAIL, 0.0, rec.error or "failed to load"))
                continue
            record(Check(f"{rec.name}: loads", PASS, 0.0))
            for what, job, argv in STEPS.get(rec.id, []):
                record(_timed(f"{rec.name}: {what}",
                              functools.partial(_job, rec.id, job, argv, scratch, data)))
        if window:
            record(_timed("window renders", lambda: _render(scratch)))
    if audio:
        record(_timed("audio output", _audio))
    return checks


def _timed(what: str, fn: Callable[[], str | None]) -> Check:
    t0 = time.perf_counter()
    try:
        detail = fn() or ""
        result = PASS
    except _Skip as exc:
        result, detail = SKIP, str(exc)
    except UserError as exc:
        result, detail = FAIL, str(exc)
    except Exception as exc:  # a self-test reports every failure; it never stops at one
        result, detail = FAIL, f"{type(exc).__name__}: {exc}"
    return Check(what, result, time.perf_counter() - t0, detail.splitlines()[0] if detail
                 else "")


class _Skip(Exception):
    """A check that cannot run on this machine (no audio device): said, not failed."""


def _writable() -> str:
    from studio import settings as settings_mod
    from studio import storage

    s = settings_mod.load()
    places = [("workspace", s.workspace_path()), ("settings", storage.config_dir())]
    places += [(f"model folder {Path(f).name}", Path(f).expanduser()) for f in s.model_folders]
    for name, folder in places:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            storage.atomic_write_text(folder / ".studio-selftest", "ok\n")
            (folder / ".studio-selftest").unlink()
        except OSError as exc:
            raise UserError(f"the {name} folder cannot be written ({exc.strerror or exc})"
                            ) from None
    return f"{len(places)} folders"


def _make_data(scratch: Path) -> dict[str, str]:
    """A few images, a short text and four shipped Bach chorales, made without the network."""
    import numpy as np
    from PIL import Image

    from studio.shipped import resource

    images = scratch / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        img = np.full((32, 32, 3), 30, np.uint8)
        img[4 + i:20 + i, 6:26] = rng.integers(80, 255, 3)
        Image.fromarray(img).save(images / f"picture {i}.png")
    text = scratch / "story.txt"
    text.write_text("Once upon a time a fox sang to the moon, and the moon sang back.\n" * 40,
                    encoding="utf-8")
    midi = scratch / "tunes"
    midi.mkdir()
    chorales = resource("music", "bach-chorales")
    if chorales is not None:
        for f in sorted(chorales.glob("*.mid"))[:4]:
            shutil.copy(f, midi / f.name)
    return {"images": str(images), "text": str(text), "midi": str(midi)}


def _job(plugin_id: str, job: str, argv: list[str], scratch: Path,
         data: dict[str, str]) -> str:
    from studio import params as params_mod
    from studio import registry
    from studio import settings as settings_mod
    from studio.jobs import DONE, JobRunner

    args = [_fill(a, scratch, data) for a in argv]
    if "{midi}" in argv and not any(Path(data["midi"]).iterdir()):
        raise UserError("the shipped Bach chorales are missing (resources/music)")
    spec = registry.get(plugin_id).job(job)
    fn = spec.load()
    out = None
    if spec.makes_run and "--out" in args:
        i = args.index("--out")
        out = args[i + 1]
        args = args[:i] + args[i + 2:]
    values = params_mod.from_cli(params_mod.params_of(fn), args)
    settings = settings_mod.load()
    settings.workspace = str(scratch / "workspace")
    runner = JobRunner(None, settings=settings)
    try:
        rec = runner.submit(plugin_id, spec, values, func=fn, out=out)
        runner.wait(rec.id, timeout=600)
        if rec.state != DONE:
            raise UserError(rec.error or f"the job ended {rec.state}")
    finally:
        runner.shutdown(timeout=5.0)
    return ""


def _fill(arg: str, scratch: Path, data: dict[str, str]) -> str:
    if arg.startswith("{run:"):
        return str(scratch / "runs" / arg[5:-1])
    if arg.startswith("{out}"):
        return str(scratch / arg[5:])
    if arg.startswith("{") and arg.endswith("}") and arg[1:-1] in data:
        return data[arg[1:-1]]
    return arg


def _render(scratch: Path) -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.app import screenshot

    out = scratch / "window.png"
    screenshot(str(out), size=(1280, 720))
    if out.stat().st_size < 1000:
        raise UserError("the window rendered an empty picture")
    return "1280x720"


def _audio() -> str:
    try:
        import numpy as np
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # PortAudio missing: OSError from sounddevice
        raise _Skip(f"no audio library ({exc})") from None
    try:
        device = sd.query_devices(kind="output")
    except Exception as exc:  # no output device at all
        raise _Skip(f"no audio output device ({exc})") from None
    try:
        sd.play(np.zeros(2205, np.float32), 22050, blocking=True)
    except Exception as exc:
        raise UserError(f"the output device {device['name']} did not play: {exc}") from None
    return str(device["name"])


def main(argv: Sequence[str]) -> int:
    """``studio selftest [--plugin ID ...] [--no-window] [--no-audio]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="studio selftest",
                                 description="check that this installation works")
    ap.add_argument("--plugin", action="append", help="only this plugin (repeatable)")
    ap.add_argument("--no-window", action="store_true", help="skip the window check")
    ap.add_argument("--no-audio", action="store_true", help="skip the audio check")
    ns = ap.parse_args(list(argv))

    def say(c: Check) -> None:
        print(f"{c.result:<8} {c.what:<44} {c.seconds:6.1f} s  {c.detail}"[:160], flush=True)

    print(f"{'result':<8} {'check':<44} {'time':>8}  detail")
    checks = run(ns.plugin, window=not ns.no_window, audio=not ns.no_audio, say=say)
    failed = [c for c in checks if c.result == FAIL]
    skipped = [c for c in checks if c.result == SKIP]
    print(f"{len(checks) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
          f"{len(skipped)} skipped")
    return 1 if failed else 0
