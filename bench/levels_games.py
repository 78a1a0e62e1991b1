"""The level checker on every game in the shared VGLC data: verdicts, calibration, speed.

For each game: how many real levels pass with the defaults (a 4-tile jump, nothing pushed or
crossed) and with the physics chosen for the game (its profile), what calibration on the real
levels finds and how long it takes, and the agent's time per level. The reference run in the
same process is a plain flood fill (scipy's connected-component labelling of the walkable
cells) on the same levels, so the agent's figure reads as a ratio on any machine. A vertical
tower (climbed from the bottom) and a far-jumping Mario-like game are measured the same way.

    python bench/levels_games.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "levels"))

from plugins.levels.engine import agents, files, physics  # noqa: E402
from plugins.levels.engine.level import Legend, Level  # noqa: E402

VGLC = ROOT.parent / "shared" / "data" / "vglc"


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in CPU seconds (a busy machine slows wall time)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def flood(levels: Sequence[Level]) -> None:
    from scipy import ndimage

    for lv in levels:
        ndimage.label(lv.mask("walkable"))


def measure(name: str, levels: list[Level], repeat: int) -> None:
    legend = levels[0].legend
    mode = legend.guess_view()
    chosen = physics.resolve(legend, levels)
    default = physics.Physics()
    plain = sum(agents.check(lv, mode, default).playable for lv in levels)
    ok = sum(agents.check(lv, mode, chosen).playable for lv in levels)
    t = time.process_time()
    cal = physics.calibrate(levels)
    cal_s = time.process_time() - t
    agent = best_cpu(lambda: [agents.check(lv, mode, chosen) for lv in levels], repeat)
    ref = best_cpu(lambda: flood(levels), repeat)
    calibrated = sum(agents.check(lv, mode, cal).playable for lv in levels)
    print(f"\n{name}: {len(levels)} levels, agent {mode}, direction {chosen.direction}")
    print(f"  before (left to right, 4-tile jump, nothing pushed)  {plain:4d} / {len(levels)}")
    print(f"  chosen physics                                       {ok:4d} / {len(levels)}"
          f"   {chosen.origin()}: {chosen.movement(mode)}")
    limits = (f"jump {cal.jump}, run {cal.run}" if mode == "platformer" else
              f"push {cal.push}, wade {cal.wade}" if mode == "topdown" else "no limits")
    print(f"  calibrated on these levels                           {calibrated:4d} / "
          f"{len(levels)}   {limits}; {len(cal.unfinished)} unfinishable; {cal_s:.2f} s CPU")
    print(f"  agent {1000 * agent / len(levels):7.2f} ms/level   flood fill "
          f"{1000 * ref / len(levels):6.3f} ms/level   ratio {agent / max(ref, 1e-9):6.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for game in sorted(p.name for p in VGLC.iterdir() if p.is_dir()):
        measure(game.replace("_", " "), files.load_folder(VGLC / game), args.repeat)

    from test_levels_games import MARIO_LIKE, TOWER, far_gap_level, tower_rows

    tower = Legend.from_mapping(TOWER, "Tower")
    measure("Hand-made towers (climbable, sealed)",
            [Level.from_lines(tower_rows(s), tower, f"tower-{s}") for s in (False, True)],
            args.repeat)
    far = Legend.from_mapping(MARIO_LIKE, "Far Jumper")
    measure("Far-jumping Mario-like game (12-tile gaps)",
            [Level.from_lines(far_gap_level(i), far, f"far-{i}") for i in range(5)],
            args.repeat)


if __name__ == "__main__":
    main()
