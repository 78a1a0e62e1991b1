"""Classic generators: determinism, WFC consistency and pins, region regeneration, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from levels_helpers import knobs, settings

from plugins.levels.engine import agents, classic, files, wfc
from plugins.levels.engine import generate as gen
from plugins.levels.engine.level import Level
from plugins.levels.engine.pins import Pins, parse_pins, read_pins
from plugins.levels.params import GenerateParams
from studio import params as params_mod
from studio.cli import cmd_run
from studio.errors import UserError


@pytest.fixture
def smb(shared_dir: Path) -> Path:
    return shared_dir / "data" / "vglc" / "Super_Mario_Bros"


@pytest.fixture
def mario11(smb: Path) -> Level:
    return files.load_level(smb / "mario-1-1.txt")


@pytest.mark.parametrize(("method", "params"), [
    ("dungeon", {}), ("caves", {}), ("terrain", {}), ("lsystem", {"preset": "trails"}),
    ("lsystem", {"preset": "plants"})])
def test_classic_generators_are_deterministic_per_seed_and_playable(method: str, params: dict
                                                                    ) -> None:
    s = settings(method, **params)
    a = gen.make(s, 0, 0, 11)
    b = gen.make(s, 0, 0, 11)
    c = gen.make(s, 0, 0, 12)
    assert np.array_equal(a.grid, b.grid)
    assert not np.array_equal(a.grid, c.grid)
    assert not a.unknown_chars()
    for seed in range(5):
        lv = gen.make(s, 48, 40 if params.get("preset") != "plants" else 16, seed)
        assert agents.check(lv).playable, (method, seed, agents.check(lv).reason)


def test_dungeon_has_rooms_doors_start_and_exit() -> None:
    lv = classic.dungeon(64, 64, 3, **knobs("dungeon"))
    counts = {c: int((lv.grid == ord(c)).sum()) for c in "<>+."}
    assert counts["<"] == 1 and counts[">"] == 1 and counts["+"] > 0 and counts["."] > 200
    assert lv.meta["rooms"] >= 4
    assert (lv.grid[0] == ord("#")).all() and (lv.grid[:, -1] == ord("#")).all()


def test_caves_parameters_change_the_map_and_bad_values_are_refused() -> None:
    sparse = classic.caves(64, 64, 1, **knobs("caves", fill=0.40))
    dense = classic.caves(64, 64, 1, **knobs("caves", fill=0.52))
    assert sparse.mask("walkable").sum() > dense.mask("walkable").sum()
    with pytest.raises(UserError):
        classic.caves(64, 64, 1, fill=1.5, steps=5)
    with pytest.raises(UserError, match="between"):
        classic.dungeon(3, 3000, 1, **knobs("dungeon"))
    with pytest.raises(UserError, match="room sizes"):
        gen.make(settings("dungeon", min_room=10, max_room=5), 64, 64, 1)


def test_noise_is_smooth_and_in_range() -> None:
    n = classic.fbm(64, 64, 16, seed=5)
    assert n.min() == 0.0 and n.max() == 1.0
    assert np.abs(np.diff(n, axis=1)).mean() < 0.08  # coherent noise, not white noise


def test_wfc_never_emits_a_contradiction(mario11: Level) -> None:
    model = wfc.learn(mario11.grid, 3)
    stats = wfc.WfcStats()
    for seed in range(8):
        grid = wfc.generate(model, 100, 14, seed, stats=stats)
        assert grid.shape == (14, 100)
        assert wfc.is_consistent(model, grid), seed
        assert (grid[-1] == ord("X")).mean() > 0.5  # rows anchored: ground stays down
    assert stats.attempts == 8  # no restarts were needed


def test_wfc_is_deterministic_and_seed_sensitive(mario11: Level) -> None:
    a = gen.make(settings("wfc"), 100, 14, 3, example=mario11)
    b = gen.make(settings("wfc"), 100, 14, 3, example=mario11)
    c = gen.make(settings("wfc"), 100, 14, 4, example=mario11)
    assert np.array_equal(a.grid, b.grid) and not np.array_equal(a.grid, c.grid)
    assert a.legend == mario11.legend


def test_wfc_keeps_pinned_tiles(mario11: Level) -> None:
    model = wfc.learn(mario11.grid, 3)
    pins = {(40, 9): ord("?"), (41, 9): ord("S"), (70, 12): ord("E")}
    for seed in range(3):
        grid = wfc.generate(model, 100, 14, seed, pins=pins)
        assert wfc.is_consistent(model, grid)
        for (x, y), code in pins.items():
            assert grid[y, x] == code


def test_wfc_refuses_pins_the_example_cannot_explain(mario11: Level) -> None:
    model = wfc.learn(mario11.grid, 3)
    with pytest.raises(wfc.WfcError, match="pinned"):
        wfc.generate(model, 60, 14, 0, pins={(10, 13): ord("E"), (10, 12): ord("X"),
                                             (11, 12): ord("<")})


def test_wfc_backtracks_on_a_tight_top_down_example() -> None:
    from plugins.levels.engine import legends

    ex = classic.dungeon(32, 32, 2, **knobs("dungeon"))
    model = wfc.learn(ex.grid, 3, symmetry=8)
    for seed in range(2):
        grid = wfc.generate(model, 30, 30, seed)
        assert wfc.is_consistent(model, grid)
    assert Level(grid, legends.DUNGEON).unknown_chars() == []


def test_region_regeneration_only_touches_the_region(mario11: Level) -> None:
    base = gen.make(settings("wfc"), 100, 14, 3, example=mario11)
    out = gen.regenerate(base, settings("wfc"), (30, 0, 50, 14), 9, example=mario11)
    changed = out.grid != base.grid
    assert changed.any()
    assert not changed[:, :30].any() and not changed[:, 50:].any()
    model = wfc.learn(mario11.grid, 3)
    assert wfc.is_consistent(model, out.grid)  # the seams agree with the surroundings
    caves = classic.caves(64, 64, 1, **knobs("caves"))
    regrown = gen.regenerate(caves, settings("caves"), (10, 10, 30, 30), 5)
    diff = regrown.grid != caves.grid
    assert not diff[:10].any() and not diff[30:].any() and not diff[:, 30:].any()
    dungeon = classic.dungeon(64, 64, 1, **knobs("dungeon"))
    moved = gen.regenerate(dungeon, settings("dungeon"), (0, 0, 32, 64), 8)
    assert int((moved.grid == ord("<")).sum()) == 1 and int((moved.grid == ord(">")).sum()) == 1
    with pytest.raises(UserError, match="other tiles"):
        gen.regenerate(mario11, settings("dungeon"), (0, 0, 5, 5), 1)


def test_parse_pins_and_region(tmp_path: Path) -> None:
    assert parse_pins("1,2,X;3,4,,") == {(1, 2): ord("X"), (3, 4): ord(",")}
    f = tmp_path / "pins.json"
    f.write_text(json.dumps({"pins": [[5, 6, "E"]]}))
    assert read_pins(f) == {(5, 6): ord("E")}
    # on the command line: the region and pins become objects before the job starts
    level = tmp_path / "l.txt"  # the editor's level, as a file on the command line
    level.write_text("----\n-XX-\n")
    p = params_mod.from_cli(GenerateParams, ["--region", "1, 2,3,4", "--pins", "1,2,X;3,4,,",
                                             "--base", str(level)])
    p.base = None  # its legend is beside no test file: the pins are what is tested here
    assert p.region == (1, 2, 3, 4) and isinstance(p.region, tuple)
    p = params_mod.read_objects(p)
    assert isinstance(p.pins, Pins) and p.pins == {(1, 2): ord("X"), (3, 4): ord(",")}
    p = params_mod.prepare(GenerateParams, {"pins": str(f)})
    assert isinstance(p.pins, Pins) and p.pins == {(5, 6): ord("E")}
    with pytest.raises(UserError):
        params_mod.from_cli(GenerateParams, ["--region", "1,2,3"])
    with pytest.raises(UserError):
        parse_pins("1,2")
    with pytest.raises(UserError):
        params_mod.prepare(GenerateParams, {"pins": "1,2"})


def test_cli_generate_wfc_exact_form(smb: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "wfc"
    rc = cmd_run("levels", "generate", ["--method", "wfc", "--example",
                                        str(smb / "mario-1-1.txt"), "--width", "100",
                                        "--height", "14", "--seed", "3", "--out", str(out)])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(out)
    for name in ("wfc-3.tmj", "wfc-3.txt", "wfc-3.png", "levels.json"):
        assert (out / name).exists(), name
    lv = files.load_level(out / "wfc-3.txt")
    assert (lv.width, lv.height) == (100, 14)
    back = files.load_level(out / "wfc-3.tmj")
    assert np.array_equal(back.grid, lv.grid)


def test_cli_generate_dungeon_and_check_exact_forms(smb: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dun"
    assert cmd_run("levels", "generate", ["--method", "dungeon", "--width", "64", "--height",
                                          "64", "--seed", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cmd_run("levels", "check", ["--level", str(out / "dungeon-3.txt"), "--legend",
                                       str(out / "dungeon.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["playable"] == "yes" and report["mode"] == "topdown"
    assert cmd_run("levels", "check", ["--level", str(smb / "mario-1-1.txt"), "--legend",
                                       str(smb / "smb.json"), "--data", str(smb)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["playable"] == "yes" and report["novelty"] == 0.0
    assert 0.0 <= report["tile_js"] < 0.05 and report["features"]["enemies"] > 5


def test_cli_reports_bad_input_without_a_traceback(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "ragged.txt"
    bad.write_text("---\n--\n", encoding="utf-8")
    (tmp_path / "l.json").write_text(json.dumps({"tiles": {"-": ["passable"]}}))
    assert cmd_run("levels", "check", ["--level", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "ragged" in err and "Traceback" not in err
    assert cmd_run("levels", "generate", ["--method", "wfc", "--width", "10"]) == 1
    assert "example" in capsys.readouterr().err


def test_cli_check_repair_writes_a_playable_copy(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    legend = {"tiles": {"X": ["solid", "ground"], "-": ["passable", "empty"]}}
    (tmp_path / "smb.json").write_text(json.dumps(legend))
    rows = ["-" * 40] * 13 + ["X" * 12 + "-" * 12 + "X" * 16]
    (tmp_path / "gap.txt").write_text("\n".join(rows) + "\n")
    assert cmd_run("levels", "check", ["--level", str(tmp_path / "gap.txt"), "--repair"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["playable"] == "no" and report["repair"]["playable_after"] == "yes"
    fixed = files.load_level(report["repair"]["file"])
    assert agents.check(fixed).playable
    assert (tmp_path / "gap.txt").read_text().splitlines() == rows  # source untouched


def test_cli_refuses_values_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    for job, argv, message in (
            ("generate", ["--count", "0"], "--count must be between 1 and 10_000"),
            ("generate", ["--width", "-1"], "--width must be between 0 and 2_048"),
            ("generate", ["--pattern", "9"], "--pattern must be between 2 and 5"),
            ("generate", ["--fill", "1.5"], "--fill must be between 0.01 and 0.99"),
            ("generate", ["--symmetry", "3"], "--symmetry must be one of 1, 2, 8"),
            ("generate", ["--method", "maze"], "--method must be one of"),
            ("generate", ["--formats", "tmj,gif"], "--formats: unknown 'gif'"),
            ("generate", ["--region", "1,2,3"], "--region must be four whole numbers"),
            ("check", ["--level", "x.txt", "--jump", "0"], "--jump must be between 1 and"),
            ("export", ["--level", "x.txt", "--to", "y.png", "--tile", "0"],
             "--tile must be between 1 and 256"),
            ("check", [], "--level is required")):
        assert cmd_run("levels", job, argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_cli_regenerates_a_region_of_a_level_file_with_pins(smb: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    """--base, --region and --pins reach the engine as a Level, a tuple and a Pins object."""
    base = tmp_path / "base"
    assert cmd_run("levels", "generate", ["--method", "wfc", "--example",
                                          str(smb / "mario-1-1.txt"), "--width", "60",
                                          "--height", "14", "--seed", "2",
                                          "--formats", "txt", "--out", str(base)]) == 0
    before = files.load_level(base / "wfc-2.txt")
    out = tmp_path / "region"
    assert cmd_run("levels", "generate", ["--method", "wfc", "--base", str(base / "wfc-2.txt"),
                                          "--legend", str(base / "super_mario_bros.json"),
                                          "--region", "20,0,40,14", "--pins", "25,5,-",
                                          "--seed", "9", "--formats", "txt",
                                          "--out", str(out)]) == 0, capsys.readouterr().err
    after = files.load_level(out / "wfc-2-wfc-9.txt")
    changed = after.grid != before.grid
    assert not changed[:, :20].any() and not changed[:, 40:].any()
    assert after.grid[5, 25] == ord("-")
    saved = json.loads((out / "levels.json").read_text())
    assert saved["params"]["region"] == [20, 0, 40, 14]
    assert saved["params"]["base"] == {"$object": {
        "level": "wfc-2", "size": "60x14", "game": before.legend.name,
        "source": "wfc-2.txt"}}  # the file's name, never the user's folders
    assert cmd_run("levels", "generate", ["--method", "wfc", "--region", "0,0,4,4"]) == 2
    assert "--region needs --base" in capsys.readouterr().err
