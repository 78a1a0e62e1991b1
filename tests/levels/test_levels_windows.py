"""Training windows: levels too small for the window are listed, every one with its size, with
the --width/--height that would take them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugins.levels.engine import learned
from plugins.levels.engine.level import Legend, Level
from studio.cli import cmd_run
from studio.errors import UserError

LG = Legend.from_mapping({"X": ["solid", "ground"], "-": ["passable", "empty"]}, name="Mini")


def _level(name: str, w: int, h: int) -> Level:
    g = np.full((h, w), ord("-"), dtype=np.uint8)
    g[-1] = ord("X")
    return Level(g, LG, name)


def test_every_small_level_is_listed_with_its_size_and_a_window_that_fits() -> None:
    levels = [_level(f"tiny-{i}", w, h) for i, (w, h) in
              enumerate([(20, 14), (16, 14), (24, 10), (12, 14), (18, 14), (26, 14), (22, 12)])]
    with pytest.raises(UserError) as err:
        learned.make_segments(levels, 14, 28)
    msg = str(err.value)
    assert "28x14 training window" in msg
    for lv in levels:  # all seven, not the first five
        assert f"{lv.name} ({lv.width}x{lv.height})" in msg
    assert "--width 12 --height 10 fits every level" in msg


def test_levels_too_small_for_any_window_are_said_to_be() -> None:
    with pytest.raises(UserError) as err:
        learned.make_segments([_level("a", 6, 14), _level("b", 30, 3)], 14, 28)
    assert "a (6x14)" in str(err.value) and "too small to train on" in str(err.value)


def test_the_train_job_names_them_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    data = tmp_path / "narrow"
    data.mkdir()
    (data / "game.json").write_text(LG.dumps(), encoding="utf-8")
    for i, w in enumerate((16, 17, 18, 19, 20, 21)):
        (data / f"tower-{i}.txt").write_text(_level("", w, 40).text(), encoding="utf-8")
    rc = cmd_run("levels", "train", ["--data", str(data), "--steps", "1", "--out",
                                     str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc != 0
    assert "tower-5 (21x40)" in err and "--width 16 --height 32 fits every level" in err
