"""The level checker on games it was not tuned on: vertical platformers, solid-top platforms,
per-game physics (profiles, the legend's own, calibration on real levels), segments stitched
along the game's direction, and a report that says in words what judged the level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plugins.levels.engine import agents, files, learned, physics
from plugins.levels.engine.level import Legend, Level
from plugins.levels.engine.report import LevelReport
from studio.cli import cmd_run

#: a Kid-Icarus-like legend: ground, sky, a door, solid-top platforms, spikes
TOWER = {"X": ["solid", "ground"], "-": ["passable", "empty"],
         "D": ["solid", "openable", "door"], "T": ["passable", "solidtop", "platform"],
         "H": ["damaging", "hazard"]}
W, H = 16, 40


def tower_rows(sealed: bool = False) -> list[str]:
    """A 16x40 tower: ground, then solid ledges every 3 rows alternating sides, a door at the
    top. ``sealed``: five full rows of solid tiles half way up."""
    rows = ["-" * W for _ in range(H)]
    rows[-1] = "X" * W
    for k, y in enumerate(range(H - 4, 1, -3)):
        rows[y] = "X" * 10 + "-" * 6 if k % 2 == 0 else "-" * 6 + "X" * 10
    rows[0] = "-" * 7 + "D" + "-" * 8
    if sealed:
        for y in range(18, 23):
            rows[y] = "X" * W
    return rows


def _write_game(folder: Path, legend: dict, levels: dict[str, list[str]], **keys: object
                ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "game.json").write_text(json.dumps({"tiles": legend, **keys}), encoding="utf-8")
    for name, rows in levels.items():
        (folder / f"{name}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def _check(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    rc = cmd_run("levels", "check", args)
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


# ----------------------------------------------------------------------------------------------
# Vertical platformers
# ----------------------------------------------------------------------------------------------
def test_a_levels_check_of_hand_made_towers_gives_the_right_verdicts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write_game(tmp_path / "Tower_Game", TOWER,
                         {"climbable": tower_rows(), "sealed": tower_rows(sealed=True)})
    report = _check(["--level", str(folder)], capsys)
    by_name = {r["level"]: r for r in report["levels"]}
    ok, sealed = by_name["climbable"], by_name["sealed"]
    assert ok["playable"] == "yes" and ok["mode"] == "platformer"
    assert sealed["playable"] == "no"
    assert ok["physics"]["direction"] == "up" and ok["physics"]["direction_from"] == "shape"
    assert ok["furthest"] == H - 1  # climbed every row
    assert "rows below the top" in sealed["reason"] and sealed["furthest"] < H // 2
    path = [tuple(c) for c in json.loads(json.dumps(ok.get("path", [])))] or None
    del path  # the JSON report carries the length, the editor the cells
    assert ok["path_length"] > H


def test_the_climb_path_goes_from_the_bottom_to_the_top() -> None:
    lv = Level.from_lines(tower_rows(), Legend.from_mapping(TOWER, "Tower"), "t")
    res = agents.check(lv)
    assert res.playable and res.path[0][1] >= H - 3 and res.path[-1][1] == 0
    walk = lv.mask("walkable")
    assert all(walk[y, x] for x, y in res.path)


def test_a_legend_with_a_door_is_still_a_platformer_when_it_has_ground_and_sky() -> None:
    assert Legend.from_mapping(TOWER).guess_view() == "platformer"
    zelda_like = Legend.from_mapping({"W": ["solid", "wall"], "F": ["passable", "floor"],
                                      "D": ["passable", "door"]})
    assert zelda_like.guess_view() == "topdown"
    assert Legend.from_mapping({"#": ["solid"], ".": ["passable"], "D": ["door"]}
                               ).guess_view() == "topdown"  # nothing else to go by


def test_the_legend_or_the_user_can_say_the_direction(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    wide = ["-" * 30] * 6 + ["X" * 30]  # wide and low, but the legend says it is climbed
    folder = _write_game(tmp_path / "g", TOWER, {"wide": wide}, direction="up")
    rep = _check(["--level", str(folder / "wide.txt")], capsys)
    assert rep["physics"]["direction"] == "up" and rep["physics"]["direction_from"] == "legend"
    rep = _check(["--level", str(folder / "wide.txt"), "--direction", "right"], capsys)
    assert rep["physics"]["direction"] == "right" and rep["playable"] == "yes"


# ----------------------------------------------------------------------------------------------
# Solid-top platforms
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("props", [["passable", "solidtop", "platform"], ["solid", "solidtop"]])
def test_solid_top_platforms_are_stood_on_and_jumped_through(props: list[str]) -> None:
    lg = Legend.from_mapping({**TOWER, "T": props})
    assert lg["T"].solidtop and not lg["T"].solid and lg["T"].walkable
    shaft = ["-" * 6] * 30
    shaft[-1] = "X" * 6
    for y in range(26, 0, -3):  # full-width platforms: the only way up is through them
        shaft[y] = "T" * 6
    assert agents.check(Level.from_lines(shaft, lg, "shaft")).playable
    walled = [row.replace("T", "X") for row in shaft]  # the same, solid: sealed
    assert not agents.check(Level.from_lines(walled, lg, "walled")).playable


def test_a_solid_top_platform_holds_a_player_who_lands_on_it() -> None:
    lg = Legend.from_mapping(TOWER)
    rows = ["-" * 40] * 13 + ["X" * 12 + "-" * 16 + "X" * 12]  # a 16-tile pit
    assert not agents.check(Level.from_lines(rows, lg, "pit"), "platformer").playable
    rows[11] = "-" * 17 + "TTTTTT" + "-" * 17  # a platform over its middle
    ph = physics.Physics(direction="right")
    res = agents.check(Level.from_lines(rows, lg, "pit"), "platformer", ph)
    assert res.playable
    assert any(rows[y + 1][x] == "T" for x, y in res.path)  # it stood on the platform


# ----------------------------------------------------------------------------------------------
# Physics per game
# ----------------------------------------------------------------------------------------------
MARIO_LIKE = {"X": ["solid", "ground"], "-": ["passable", "empty"], "E": ["enemy", "hazard"]}


def far_gap_level(seed: int) -> list[str]:
    """A Mario-like level with a 12-tile gap and a 4-tile wall, as in a game with a longer
    run-up than Super Mario Bros."""
    rng = np.random.default_rng(seed)
    w = 70
    rows = [["-"] * w for _ in range(14)]
    for x in range(w):
        rows[13][x] = "X"
    start = 20 + int(rng.integers(0, 10))
    for x in range(start, start + 12):
        rows[13][x] = "-"
    for y in range(9, 13):
        rows[y][50] = "X"
    return ["".join(r) for r in rows]


def test_the_default_jump_fails_a_game_with_longer_gaps_and_calibration_fixes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = _write_game(tmp_path / "Far_Jumper", MARIO_LIKE,
                       {f"real-{i}": far_gap_level(i) for i in range(3)})
    plain = _check(["--level", str(real)], capsys)
    assert plain["summary"]["playable_fraction"] == 0.0  # the 4-tile default cannot
    cal = _check(["--level", str(real), "--calibrate", str(real)], capsys)
    assert cal["summary"]["playable_fraction"] == 1.0
    ph = cal["levels"][0]["physics"]
    assert ph["source"] == "calibrated" and ph["basis"] == "3 real levels of Far Jumper"
    assert (ph["jump"], ph["run"]) == (4, 2)  # the wall needs 4 up, the gap 2 across
    # the smallest limits: one less of either and a real level fails
    levels = files.load_folder(real)
    for smaller in (physics.Physics(jump=3, run=2), physics.Physics(jump=4, run=1)):
        assert not all(agents.check(lv, "platformer", smaller).playable for lv in levels)


def test_the_legend_can_carry_the_game_physics(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    real = _write_game(tmp_path / "Far_Jumper", MARIO_LIKE, {"real-0": far_gap_level(0)},
                       physics={"jump": 5, "run": 2})
    rep = _check(["--level", str(real / "real-0.txt")], capsys)
    assert rep["playable"] == "yes" and rep["physics"]["source"] == "legend"
    assert (rep["physics"]["jump"], rep["physics"]["run"]) == (5, 2)
    chosen = _check(["--level", str(real / "real-0.txt"), "--jump", "4", "--run", "1"], capsys)
    assert chosen["playable"] == "no" and chosen["physics"]["source"] == "chosen"


def test_bad_physics_in_a_legend_is_a_clear_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    real = _write_game(tmp_path / "g", MARIO_LIKE, {"a": far_gap_level(0)},
                       physics={"jump": "high"})
    assert cmd_run("levels", "check", ["--level", str(real / "a.txt")]) != 0
    assert 'physics "jump" must be a whole number' in capsys.readouterr().err


def test_every_real_super_mario_level_passes_with_its_profile_and_calibration_agrees(
        shared_dir: Path) -> None:
    levels = files.load_folder(shared_dir / "data" / "vglc" / "Super_Mario_Bros")
    ph = physics.resolve(levels[0].legend, levels)
    assert ph.source == "profile" and (ph.jump, ph.run, ph.direction) == (4, 1, "right")
    assert all(agents.check(lv, physics=ph).playable for lv in levels)
    cal = physics.calibrate(levels)
    assert (cal.jump, cal.run) == (4, 1) and not cal.unfinished


def test_calibration_names_the_real_levels_no_limit_can_finish(shared_dir: Path) -> None:
    levels = files.load_folder(shared_dir / "data" / "vglc" / "Lode_Runner")
    cal = physics.calibrate(levels)
    failing = {lv.name for lv in levels if not agents.check(lv, physics=cal).playable}
    assert set(cal.unfinished) == failing and len(failing) < len(levels) // 10
    assert "cannot be finished with any limits" in cal.origin()


def test_zelda_profile_pushes_blocks_and_crosses_one_tile_of_water(shared_dir: Path) -> None:
    lv = files.load_level(shared_dir / "data" / "vglc" / "The_Legend_of_Zelda" / "tloz1_1.txt")
    ph = physics.resolve(lv.legend, [lv])
    assert ph.source == "profile" and ph.push and ph.wade == 1
    assert agents.check(lv, physics=ph).playable  # the stairs behind a pushable block
    assert not agents.check(lv, physics=physics.Physics()).playable
    o = lv.legend["O"]  # ELEMENT + FLOOR: walked on (a whole room of it has doors)
    assert o.walkable and not lv.legend["P"].walkable


# ----------------------------------------------------------------------------------------------
# The report, in words
# ----------------------------------------------------------------------------------------------
def test_the_report_says_which_agent_direction_and_physics_judged() -> None:
    lv = Level.from_lines(tower_rows(), Legend.from_mapping(TOWER, "Tower"), "t")
    rows = dict(LevelReport.of(lv, agents.check(lv)).readable())
    assert rows["Agent"] == "platformer (jumps)"
    assert rows["Direction"] == "from the bottom to the top (detected: the level is tall and " \
                                "narrow)"
    assert rows["Physics"] == ("jumps up to 4 tiles high, 1 tile sideways per tile of flight "
                               "(gaps up to 9 tiles wide)")
    assert rows["Physics from"].startswith("the default, not tuned for this game")
    assert rows["Rows climbed"] == str(H - 1)
    mario = Level.from_lines(["----", "XXXX"], Legend.from_mapping(MARIO_LIKE,
                                                                   "Super Mario Bros"))
    words = dict(LevelReport.of(mario, agents.check(mario)).readable())
    assert words["Physics from"] == "the profile for Super Mario Bros"
    assert words["Direction"] == "left to right (as its profile says)"


# ----------------------------------------------------------------------------------------------
# The learned sampler stitches along the game's direction
# ----------------------------------------------------------------------------------------------
def test_stitching_follows_the_direction() -> None:
    a, b = np.full((2, 3), 1), np.full((2, 3), 2)
    assert learned.stitch([a, b], "right").shape == (2, 6)
    up = learned.stitch([a, b], "up")
    assert up.shape == (4, 3) and (up[-2:] == 1).all() and (up[:2] == 2).all()  # a at the bottom


def test_a_model_of_a_climbed_game_samples_tall_levels(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    import torch

    torch.set_num_threads(1)
    folder = _write_game(tmp_path / "Tower_Game", TOWER,
                         {f"t{i}": tower_rows() for i in range(2)})
    run = tmp_path / "run"
    assert cmd_run("levels", "train", ["--data", str(folder), "--steps", "2", "--batch", "4",
                                       "--base", "4", "--width", "16", "--height", "12",
                                       "--eval-every", "2", "--out", str(run)]) == 0, \
        capsys.readouterr().err
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert cfg["direction"] == "up" and cfg["physics"]["direction"] == "up"
    model = learned.LevelModel(run)
    lv = model.generate(1, seed=3, segments=3)[0]
    assert (lv.width, lv.height) == (16, 36) and lv.meta["direction"] == "up"
    res = agents.check(lv, physics=model.physics)
    assert res.physics is not None and res.physics.direction == "up"
