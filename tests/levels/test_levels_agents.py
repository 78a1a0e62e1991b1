"""Playability agents, repair and metrics on levels whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugins.levels.engine import agents, files, metrics, repair
from plugins.levels.engine.level import Legend, Level
from studio.errors import UserError

SMB = Legend.from_mapping({"X": ["solid", "ground"], "-": ["passable", "empty"],
                           "E": ["enemy", "damaging", "hazard"], "<": ["solid", "pipe"],
                           ">": ["solid", "pipe"], "[": ["solid", "pipe"],
                           "]": ["solid", "pipe"]}, name="Mini SMB")


def side(rows: list[str]) -> Level:
    return Level.from_lines(rows, SMB, "test")


def flat(width: int = 30, gap: tuple[int, int] | None = None, wall: tuple[int, int] | None = None
         ) -> Level:
    """14 rows of sky over a 1-row floor; optional gap (x, width) and wall (x, height)."""
    g = np.full((14, width), ord("-"), dtype=np.uint8)
    g[-1] = ord("X")
    if gap:
        g[-1, gap[0]:gap[0] + gap[1]] = ord("-")
    if wall:
        g[14 - 1 - wall[1]:13, wall[0]] = ord("X")
    return Level(g, SMB, "flat")


def test_finds_the_path_over_a_known_course() -> None:
    lv = side(["-" * 24] * 8 + [
        "------------------------",
        "-------------<>---------",
        "-------------[]---------",
        "--------E----[]---------",
        "-------------[]---------",
        "XXXXXX---XXXXXXXXXXXXXXX",
    ])
    res = agents.check(lv)
    assert res.playable and res.mode == "platformer"
    assert res.path[0][0] == 0 and res.path[-1][0] == lv.width - 1
    walk = lv.mask("walkable")
    assert all(walk[y, x] for x, y in res.path)
    # consecutive cells are neighbours: the path is a real trajectory
    assert all(abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1
               for a, b in zip(res.path, res.path[1:], strict=False))


def test_fails_on_a_known_gap_and_says_where() -> None:
    res = agents.check(flat(40, gap=(12, 12)))
    assert not res.playable
    assert 11 <= res.furthest < 24
    assert "stuck at column" in res.reason


@pytest.mark.parametrize(("gap", "ok"), [(8, True), (9, True), (10, False)])
def test_jump_length_limit(gap: int, ok: bool) -> None:
    assert agents.check(flat(40, gap=(10, gap))).playable is ok


@pytest.mark.parametrize(("height", "ok"), [(4, True), (5, False)])
def test_jump_height_limit(height: int, ok: bool) -> None:
    assert agents.check(flat(30, wall=(12, height))).playable is ok


def test_every_original_super_mario_level_is_playable(shared_dir: Path) -> None:
    levels = files.load_folder(shared_dir / "data" / "vglc" / "Super_Mario_Bros")
    results = {lv.name: agents.check(lv) for lv in levels}
    assert all(r.playable for r in results.values()), {
        k: r.reason for k, r in results.items() if not r.playable}


def test_lode_runner_gold_reachability(shared_dir: Path) -> None:
    lv = files.load_level(shared_dir / "data" / "vglc" / "Lode_Runner" / "Level 1.txt")
    res = agents.check(lv)
    assert res.mode == "ladder" and res.playable
    assert res.details["gold"] == res.details["gold_reachable"] > 0
    # wall the spawn into a box: no gold is reachable any more
    g = lv.grid.copy()
    (sy, sx), = np.argwhere(g == ord("M"))
    g[sy - 1:sy + 2, sx - 1] = g[sy - 1:sy + 2, sx + 1] = ord("B")
    g[sy - 1, sx] = ord("B")
    assert not agents.check(Level(g, lv.legend)).playable


TOP = Legend.from_mapping({"#": ["solid", "wall"], ".": ["passable", "floor"],
                           "+": ["passable", "door"], "<": ["passable", "start"],
                           ">": ["passable", "exit"]}, view="topdown")


def test_topdown_flood_fill_start_to_exit_and_rooms() -> None:
    rows = ["#########",
            "#<..#...#",
            "#...+.>.#",
            "#####...#",
            "#.#######",
            "#########"]
    res = agents.check(Level.from_lines(rows, TOP))
    assert res.mode == "topdown" and res.playable  # the 1-cell pocket is not a room
    assert res.details["rooms"] == 2 and res.details["rooms_reachable"] == 2
    assert "unreachable" not in res.reason and res.path[-1] == (6, 2)
    rows[2] = "#...#.>.#"
    res = agents.check(Level.from_lines(rows, TOP))
    assert not res.playable and "exit cannot be reached" in res.reason


def test_zelda_doors_lead_through_walls(shared_dir: Path) -> None:
    lv = files.load_level(shared_dir / "data" / "vglc" / "The_Legend_of_Zelda" / "tloz1_1.txt")
    res = agents.check(lv)
    assert res.details["rooms_reachable"] >= 0.9 * res.details["rooms"]


def test_repair_bridges_a_gap_with_few_blocks() -> None:
    lv = flat(40, gap=(12, 12))
    fixed = repair.repair(lv)
    assert fixed.check is not None and fixed.check.playable
    assert 0 < fixed.count <= 4  # a couple of stepping stones, not a filled pit
    assert all(new == "X" for _x, _y, _old, new in fixed.changes)
    assert agents.check(fixed.level).playable
    assert not agents.check(lv).playable  # the input is never modified


def test_repair_opens_a_wall_that_is_too_high() -> None:
    lv = flat(30, wall=(12, 9))
    fixed = repair.repair(lv)
    assert fixed.check is not None and fixed.check.playable
    assert 1 <= fixed.count <= 5


def test_repair_carves_the_thinnest_wall_in_a_dungeon() -> None:
    rows = ["##########",
            "#<..#....#",
            "#...###>.#",
            "##########"]
    fixed = repair.repair(Level.from_lines(rows, TOP))
    assert fixed.check is not None and fixed.check.playable
    assert fixed.count == 1


def test_repair_refuses_what_it_cannot_plan(shared_dir: Path) -> None:
    lv = files.load_level(shared_dir / "data" / "vglc" / "Lode_Runner" / "Level 1.txt")
    g = lv.grid.copy()
    g[g == ord("#")] = ord("B")
    with pytest.raises(UserError, match="Lode Runner"):
        repair.repair(Level(g, lv.legend))


def test_metrics_distances_novelty_diversity(shared_dir: Path) -> None:
    train = files.load_folder(shared_dir / "data" / "vglc" / "Super_Mario_Bros")
    lg = train[0].legend
    h = metrics.histogram(train, lg)
    assert metrics.js_divergence(h, h) == pytest.approx(0.0, abs=1e-12)
    assert metrics.kl_divergence(h, h) == pytest.approx(0.0, abs=1e-9)
    only_ground = metrics.histogram([flat(28)], lg)
    assert 0.01 < metrics.js_divergence(only_ground, h) <= 1.0
    window = train[0].crop(10, 0, 38, 14)
    assert metrics.novelty([window], train, 28) == 0.0
    assert metrics.novelty([flat(28)], train, 28) > 0.0
    assert metrics.diversity([window, window]) == 0.0
    assert metrics.diversity([window, flat(28)]) > 0.0
    feats = metrics.features(flat(40, gap=(12, 3)))
    assert feats["gaps"] == 1 and feats["gap_tiles"] == 3


def test_a_segment_may_be_entered_from_a_runway_but_a_level_may_not() -> None:
    seg = flat(28, gap=(0, 4))  # opens with a gap: the previous segment's floor leads in
    assert not agents.check(seg).playable
    res = agents.check(seg, runway=True)
    assert res.playable and res.details["runway"] and res.path[-1][0] == 27
    assert all(x >= 0 for x, _y in res.path)
    assert not agents.check(flat(28, gap=(0, 12)), runway=True).playable
