"""Typed job parameters: one dataclass gives the CLI, --help, validation and remembered values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pytest

from studio import params
from studio.errors import UserError
from studio.params import Choices, Codec, Help, Label, ParamError, Range, Special, Unit, Widget


@dataclass
class Blob:
    """An in-memory value a panel passes as an object."""

    text: str


def read_blob(path: Path, p: object, warn) -> Blob:
    warn(f"read {path.name}")
    return Blob(path.read_text())


@dataclass(kw_only=True)
class TrainParams:
    data: Annotated[Path | None, Label("Images"), Widget("folder"), Help("folder of images")]
    size: Annotated[Literal[32, 64], Choices({32: "32 px", 64: "64 px"})] = 32
    steps: Annotated[int, Range(1, 1000), Unit(" steps"), Help("training steps")] = 100
    lr: Annotated[float, Range(1e-6, 1.0)] = 1e-3
    batch: Annotated[int | None, Range(2, 512), Special("the preset's")] = None
    width: Annotated[int, Range(0, 256), Special("auto")] = 0
    resume: bool = False
    tags: list[str] | None = None
    edits: list[float] = None  # type: ignore[assignment]
    blob: Annotated[Blob | None, Codec(read_blob, what="a text file")] = None

    def rules(self) -> None:
        if self.resume and self.batch is not None:
            raise UserError("a resumed run keeps its batch size: leave Batch empty")


def job(ctx, p: TrainParams) -> None:
    """A job."""


def test_describe_reads_limits_labels_and_hints() -> None:
    ps = {x.name: x for x in params.describe(job)}
    assert ps["data"].required and ps["data"].label == "Images"
    assert ps["data"].widget == Widget("folder") and ps["data"].help == "folder of images"
    assert ps["size"].choices == (32, 64) and ps["size"].choice_label(64) == "64 px"
    assert ps["steps"].range == Range(1, 1000) and ps["steps"].unit == " steps"
    assert ps["batch"].optional and ps["batch"].special == "the preset's"
    assert ps["tags"].kind is list and ps["edits"].item is float
    assert ps["blob"].codec is not None and ps["lr"].label == "Lr"


def test_cli_builds_the_object() -> None:
    p = params.from_cli(TrainParams, ["--data", "x", "--size", "64", "--lr=0.5", "--resume",
                                      "--tags", "a,b", "--edits", "1.5,0,-2", "--width", "7"])
    assert isinstance(p, TrainParams)
    assert (p.data, p.size, p.lr, p.resume, p.tags, p.edits, p.width) == (
        Path("x"), 64, 0.5, True, ["a", "b"], [1.5, 0.0, -2.0], 7)
    assert params.from_cli(TrainParams, ["--data", "x", "--no-resume"]).resume is False
    assert params.from_cli(TrainParams, ["--data", "x", "--batch", "none"]).batch is None


def test_cli_list_option_given_again_adds_to_it() -> None:
    """``--lora a --lora b`` (as A1111 users write several LoRAs); other options: the last one
    counts."""
    p = params.from_cli(TrainParams, ["--data", "x", "--tags", "a,b", "--tags", "c",
                                      "--edits=1", "--edits", "2", "--steps", "5", "--steps", "6"])
    assert (p.tags, p.edits, p.steps) == (["a", "b", "c"], [1.0, 2.0], 6)


@pytest.mark.parametrize("argv, message", [
    (["--size", "64"], "--data is required"),
    (["--data", "x", "--size", "48"], "--size must be one of 32, 64"),
    (["--data", "x", "--lr", "fast"], "--lr expects a number, not 'fast'"),
    (["--data", "x", "--steps", "0"], "--steps must be between 1 and 1_000"),
    (["--data", "x", "--steps", "-1"], "--steps must be between 1 and 1_000"),
    (["--data", "x", "--steps", "2.5"], "--steps expects a whole number"),
    (["--data", "x", "--colour", "red"], "unknown option --colour"),
    (["--data"], "--data needs a value"),
    (["data"], "unexpected argument"),
    (["--data", "x", "--resume", "--batch", "8"], "a resumed run keeps its batch size"),
])
def test_bad_cli_input_is_named(argv: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        params.from_cli(TrainParams, argv)


def test_gui_message_names_the_label() -> None:
    p = params.blank(TrainParams)
    p.data, p.steps = Path("x"), 5000
    with pytest.raises(ParamError) as err:
        params.validate(p)
    assert err.value.gui == "Steps: must be between 1 and 1_000"


def test_codec_reads_a_file_on_the_cli_and_passes_objects_from_panels(tmp_path: Path) -> None:
    f = tmp_path / "b.txt"
    f.write_text("hello")
    warnings: list[str] = []
    p = params.prepare(TrainParams, {"data": "x", "blob": str(f)}, warnings.append)
    assert p.blob == Blob("hello") and warnings == ["read b.txt"]
    panel = TrainParams(data=Path("x"), blob=Blob("in memory"))
    got = params.prepare(TrainParams, panel)
    assert got.blob is panel.blob and got is not panel  # a copy: the form's object is untouched
    with pytest.raises(UserError, match=r"--blob names .* which does not exist"):
        params.prepare(TrainParams, {"data": "x", "blob": str(tmp_path / "nope.txt")})


def test_json_round_trip_is_forgiving() -> None:
    p = TrainParams(data=Path("imgs"), steps=7, tags=["a"], blob=Blob("x"))
    data = params.to_json(p)
    assert data["data"] == "imgs" and data["steps"] == 7
    assert data["blob"] == {"$object": {"object": "Blob"}}
    back = params.from_json(TrainParams, data)
    assert back.data == Path("imgs") and back.steps == 7 and back.blob is None
    # values that no longer fit fall back to the defaults; unknown names are dropped
    old = params.from_json(TrainParams, {"steps": 99999, "size": 48, "gone": 1, "lr": "x"})
    assert (old.steps, old.size, old.lr) == (100, 32, 1e-3)


def test_usage_and_readable() -> None:
    text = params.usage(TrainParams)
    assert "--data DIR" not in text and "--data DATA  [required]" in text
    assert "--size 32|64  [default: 32]" in text
    assert "--steps STEPS  [default: 100; between 1 and 1_000]" in text
    assert "--blob FILE" in text and "(a text file)" in text
    # an optional number's special value is None, not its lowest (valid) value
    assert "--batch BATCH  [between 2 and 512; none: the preset's]" in text
    assert "--width WIDTH  [default: 0; between 0 and 256; 0: auto]" in text
    p = TrainParams(data=Path("/home/someone/cats"), size=64)
    shown = dict(params.readable(p))
    assert shown["Images"] == "cats" and shown["Size"] == "64 px"
    assert shown["Batch"] == "the preset's" and shown["Width"] == "auto"
    assert shown["Steps"] == "100 steps" and shown["Resume"] == "no"


def test_a_field_of_an_unknown_type_needs_a_codec() -> None:
    @dataclass
    class Bad:
        blob: Blob | None = None

    with pytest.raises(TypeError, match="needs a Codec"):
        params.describe(Bad)


def test_a_tuple_field_stays_a_tuple() -> None:
    """A region ``tuple[int, int, int, int]`` is parsed from "x0,y0,x1,y1" and stays a tuple
    through validation and remembered JSON (it used to come back as a list)."""

    @dataclass(kw_only=True)
    class Region:
        region: tuple[int, int, int, int] | None = None
        sizes: list[int] | None = None

    p = params.from_cli(Region, ["--region", "1,2,3,4", "--sizes", "5,6"])
    assert p.region == (1, 2, 3, 4) and isinstance(p.region, tuple)
    assert p.sizes == [5, 6] and isinstance(p.sizes, list)
    assert params.validate(Region(region=(0, 0, 2, 2))).region == (0, 0, 2, 2)
    back = params.from_json(Region, params.to_json(p))
    assert back.region == (1, 2, 3, 4) and isinstance(back.region, tuple)


def read_pins(value: Path | str, p: object, warn) -> list[str]:
    return (value.read_text() if isinstance(value, Path) else value).split(";")


@dataclass(kw_only=True)
class Edit:
    pins: Annotated[list[str] | None, Codec(read_pins, inline=True)] = None
    name: Annotated[str, Special("the level's own name")] = ""


def test_list_messages_inline_codecs_and_text_specials(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--edits expects numbers separated by commas"):
        params.from_cli(TrainParams, ["--data", "x", "--edits", "1,abc"])

    assert params.prepare(Edit, {"pins": "1,2,#;3,4,-"}).pins == ["1,2,#", "3,4,-"]
    f = tmp_path / "pins.txt"
    f.write_text("5,6,#")
    assert params.prepare(Edit, {"pins": str(f)}).pins == ["5,6,#"]
    assert "[empty: the level's own name]" in params.usage(Edit)
