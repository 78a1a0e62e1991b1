"""Job parameters from signatures: the CLI and the window share one description."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from studio import params
from studio.errors import UserError


def job(ctx, data: str, size: Literal[32, 64] = 32, lr: float = 1e-3, resume: bool = False,
        tags: list[str] | None = None, model: Path | None = None, seed: int | None = None) -> None:
    """A job.

    Args:
        data: folder of images
        size: image size
    """


def test_describe_reads_types_choices_and_docs() -> None:
    p = {x.name: x for x in params.describe(job)}
    assert p["data"].required and p["data"].help == "folder of images"
    assert p["size"].choices == (32, 64) and p["size"].kind is int
    assert p["resume"].kind is bool and p["tags"].kind is list and p["model"].kind is Path
    assert p["seed"].optional


def test_parse_cli_converts_and_validates() -> None:
    got = params.parse_cli(job, ["--data", "x", "--size", "64", "--lr=0.5", "--resume",
                                 "--tags", "a,b", "--seed", "3"])
    assert got == {"data": "x", "size": 64, "lr": 0.5, "resume": True, "tags": ["a", "b"],
                   "seed": 3}
    assert params.parse_cli(job, ["--data", "x", "--resume", "false"])["resume"] is False
    assert params.parse_cli(job, ["--data", "x", "--no-resume"])["resume"] is False


@pytest.mark.parametrize("argv, message", [
    (["--size", "64"], "missing required option --data"),
    (["--data", "x", "--size", "48"], "--size must be one of 32, 64"),
    (["--data", "x", "--lr", "fast"], "--lr: cannot read 'fast' as float"),
    (["--data", "x", "--colour", "red"], "unknown option --colour"),
    (["--data"], "--data needs a value"),
    (["data"], "unexpected argument"),
])
def test_bad_cli_input_is_named(argv: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        params.parse_cli(job, argv)


def test_bind_accepts_typed_values_from_panels() -> None:
    assert params.bind(job, {"data": "x", "size": 64, "resume": True}) == {
        "data": "x", "size": 64, "resume": True}
