"""Every `studio run` command in the README runs, in the order written, so the README cannot
drift from the command line again (its GAN example once named a job that did not exist).

The commands run in-process (`studio.cli.cmd_run`) in a temporary folder with tiny settings:
step and sample counts become 2, the example data folders become small ones the test makes
(the built-in Bach chorales and digits take a while to prepare: small folders stand in; the
built-in sets have their own tests in the plugins' folders).
Flags, jobs and file names are the README's own.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = {"--steps": "2", "--n": "2", "--max-new-tokens": "5", "--reference-models": "2"}
# options the README leaves at their defaults that cost minutes at full size
EXTRA = {("gan", "eval"): ["--classifier-steps", "10", "--n", "10"],
         ("levels", "sample"): ["--budget", "8"]}
PLACEHOLDERS = ("PLUGIN", "JOB", "[", "...")


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            cmd = line.split("  #")[0].strip()
            if cmd.startswith("studio run ") and not any(p in cmd for p in PLACEHOLDERS):
                out.append(shlex.split(cmd)[2:])
    return out


def _data(tmp: Path) -> dict[str, str]:
    """Small stand-ins for the README's example data."""
    import pretty_midi
    from PIL import Image

    rng = np.random.default_rng(0)
    cats = tmp / "cats"
    cats.mkdir()
    for i in range(20):  # the audit's reference GANs learn from random halves: 8 at least
        img = np.zeros((64, 64, 3), np.uint8)
        img[8 * (i % 4):8 * (i % 4) + 30, 10:40] = rng.integers(60, 255, 3)
        Image.fromarray(img).save(cats / f"cat{i}.png")
    stories = tmp / "stories"
    stories.mkdir()
    (stories / "a.txt").write_text("Once upon a time a fox sang to the moon. " * 80)
    (tmp / "held_out.txt").write_text("Once the moon sang back to the fox. " * 20)
    tunes = tmp / "tunes"
    tunes.mkdir()
    for k in range(4):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
        inst = pretty_midi.Instrument(0)
        for i in range(32):
            inst.notes.append(pretty_midi.Note(90, 60 + (i * (k + 3)) % 12, i * 0.5,
                                               i * 0.5 + 0.5))
        pm.instruments.append(inst)
        pm.write(str(tunes / f"tune{k}.mid"))
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp / "in.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(tmp / "mask.png")
    level = (ROOT.parent / "shared" / "data" / "vglc" / "Super_Mario_Bros")
    (tmp / "level.txt").write_text((level / "mario-1-1.txt").read_text())
    (tmp / "smb.json").write_text((level / "smb.json").read_text())
    return {"~/pictures/cats": str(cats), "my_stories/": str(stories), "bach": str(tunes),
            "digits": str(cats), "../shared/data/vglc/Super_Mario_Bros": str(level)}


def _tiny(argv: list[str], data: dict[str, str]) -> list[str]:
    out = []
    for i, tok in enumerate(argv):
        prev = argv[i - 1] if i else ""
        if prev in TINY:
            tok = TINY[prev]
        elif tok in data and (prev == "--data" or tok not in ("bach", "digits")):
            tok = data[tok]
        out.append(tok)
    return [*out, *EXTRA.get((out[0], out[1]), [])]


def test_the_readme_has_commands_for_every_plugin() -> None:
    plugins = {cmd[0] for cmd in readme_commands()}
    assert {"gan", "music", "diffusion", "writer", "levels", "chat", "audit"} <= plugins


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from studio.cli import cmd_run

    threads = torch.get_num_threads()
    data = _data(tmp_path)
    monkeypatch.chdir(tmp_path)
    try:
        for argv in readme_commands():
            plugin, job, *rest = _tiny(argv, data)
            code = cmd_run(plugin, job, rest)
            err = capsys.readouterr().err
            assert code == 0, f"studio run {' '.join(argv)} -> {code}\n{err[-2000:]}"
    finally:
        torch.set_num_threads(threads)
