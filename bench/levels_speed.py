"""Classic level generators: levels per second, and WFC reliability.

Times 64x64 BSP dungeons, 64x64 cellular-automata caves and 100x14 Wave Function Collapse levels
learned from mario-1-1, and counts failed WFC runs over 100 seeds (every output is also checked
for consistency: each 3x3 window must be a pattern of the example). The reference run in the same
process is the playability agent on the same outputs, so the generator figures can be read
against a fixed, generator-independent workload on this machine.

Bars (issue 5): >= 100 dungeons/s, >= 5 WFC levels/s, zero failed WFC runs out of 100 seeds.
CPU time (time.process_time) is printed next to wall time: on a busy shared machine it is the
better estimate of what a quiet one achieves.

    python bench/levels_speed.py [--seeds 100] [--n 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugins.levels.engine import agents, classic, files, wfc  # noqa: E402
from plugins.levels.engine.level import Level  # noqa: E402
from plugins.levels.params import GenerateParams  # noqa: E402


def knobs(method: str) -> dict[str, object]:
    """A method's settings at the generate job's defaults (the one place they live)."""
    return asdict(GenerateParams(method=method).settings())  # type: ignore[arg-type]


def rate(name: str, make: Callable[[int], Level], n: int) -> tuple[float, float, list[Level]]:
    make(0)  # warm caches (WFC model, imports)
    out = []
    w0, c0 = time.perf_counter(), time.process_time()
    for seed in range(n):
        out.append(make(seed))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(f"{name:<34} {n / wall:8.1f} levels/s wall   {n / cpu:8.1f} levels/s CPU")
    return n / wall, n / cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="dungeons and caves to time")
    ap.add_argument("--seeds", type=int, default=100, help="WFC seeds")
    ap.add_argument("--example", default=str(ROOT.parent / "shared" / "data" / "vglc" /
                                             "Super_Mario_Bros" / "mario-1-1.txt"))
    args = ap.parse_args()

    dk, ck, tk = knobs("dungeon"), knobs("caves"), knobs("terrain")
    dun, dun_cpu, dungeons = rate("BSP dungeon 64x64",
                                  lambda s: classic.dungeon(64, 64, s, **dk),  # type: ignore[arg-type]
                                  args.n)
    _cav, _cav_cpu, caves = rate("CA caves 64x64",
                                 lambda s: classic.caves(64, 64, s, **ck),  # type: ignore[arg-type]
                                 args.n)
    rate("noise terrain 96x64", lambda s: classic.terrain(96, 64, s, **tk),  # type: ignore[arg-type]
         max(1, args.n // 4))

    example = files.load_level(args.example)
    model = wfc.learn(example.grid, 3)
    stats = wfc.WfcStats()
    failures: list[tuple[int, str]] = []
    made: list[Level] = []
    w0, c0 = time.perf_counter(), time.process_time()
    for seed in range(args.seeds):
        try:
            grid = wfc.generate(model, 100, 14, seed, stats=stats)
        except wfc.WfcError as exc:
            failures.append((seed, str(exc)))
            continue
        made.append(Level(grid, example.legend))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    bad = [i for i, lv in enumerate(made) if not wfc.is_consistent(model, lv.grid)]
    wfc_rate, wfc_cpu = args.seeds / wall, args.seeds / cpu
    print(f"{'WFC 100x14 from ' + Path(args.example).stem:<34} {wfc_rate:8.1f} levels/s wall   "
          f"{wfc_cpu:8.1f} levels/s CPU   ({model.count} patterns; {stats.attempts} attempts, "
          f"{stats.backtracks} backtracks)")

    # reference workload: the agent on the same outputs
    sample = dungeons[:50] + caves[:50]
    c0 = time.process_time()
    for lv in sample:
        agents.check(lv)
    for lv in made[:50]:
        agents.check(lv)
    ref = (len(sample) + len(made[:50])) / (time.process_time() - c0)
    playable = sum(agents.check(lv).playable for lv in made) / max(1, len(made))
    print(f"{'reference: playability agent':<34} {ref:8.1f} checks/s CPU")
    print()
    print(f"dungeons/s: {dun:.0f} wall, {dun_cpu:.0f} CPU (bar >= 100; ratio {dun / 100:.2f}) "
          f"{'PASS' if dun >= 100 else 'FAIL'}; {dun_cpu / ref:.2f}x the agent's rate")
    print(f"WFC levels/s: {wfc_rate:.1f} wall, {wfc_cpu:.1f} CPU (bar >= 5; ratio "
          f"{wfc_rate / 5:.2f}) {'PASS' if wfc_rate >= 5 else 'FAIL'}")
    print(f"WFC failed runs: {len(failures)} of {args.seeds} "
          f"{'PASS' if not failures else 'FAIL'}; inconsistent outputs: {len(bad)}; "
          f"playable by the agent: {playable:.0%}")
    for seed, msg in failures[:5]:
        print(f"  seed {seed}: {msg}")


if __name__ == "__main__":
    main()
