"""How many files of a folk-tune collection the music plugin learns from, by metre.

Issue 18 measured 169 of 250 folk tunes skipped: every 2/4 polka and march, every 6/8 jig and
9/8 slip jig. This bench rebuilds such a set from music21's corpus (Ryan's Mammoth Collection:
reels, hornpipes, jigs, slip jigs, polkas, strathspeys, in ABC), writes each tune as MIDI the
way the built-in Bach chorales are written, and counts, for 2-bar phrases:

* the rule before metres (bars of exactly 16 steps, what the old code did: ``strict``),
* ``--metre auto`` (the metre most files are in: 4/4, with 2/4 and 2/2 bars joined into it),
* a model of each other metre the files are in (6/8, 9/8, ...),
* the files no model of any metre can learn from.

    .venv/bin/python bench/music_metres.py [--n 250] [--seed 0] [--data FOLDER]

With ``--data`` it counts a folder of your own instead. It prints counts, no timing.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.music.engine.bach import chorale_to_midi
from plugins.music.engine.data import load_midi_folder
from studio.errors import UserError


def folk_set(target: Path, n: int, seed: int) -> Path:
    """``n`` tunes of Ryan's Mammoth Collection (a seeded sample) as MIDI files in ``target``."""
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.corpora.CoreCorpus().getPaths()
                   if "ryansMammoth" in str(p))
    random.Random(seed).shuffle(paths)
    target.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in paths[:n]:
        out = target / (Path(p).stem + ".mid")
        if not out.exists():
            chorale_to_midi(p, out)
    print(f"{n} tunes of Ryan's Mammoth Collection as MIDI in {target} "
          f"({time.perf_counter() - t0:.0f} s)")
    return target


def count(root: Path, metre: str, strict: bool = False) -> tuple[int, int, int, set[str], str]:
    """(files, skipped, phrases, names of the files used, the metre chosen)."""
    try:
        ps = load_midi_folder(root, bars=2, metre=metre, strict=strict)
    except UserError:
        files = [p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi")]
        return len(files), len(files), 0, set(), metre
    used = {r.path.name for r in ps.reports if not r.reason}
    return len(ps.reports), len(ps.skipped), len(ps), used, ps.metre


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=250, help="tunes in the folk set")
    ap.add_argument("--seed", type=int, default=0, help="which tunes (a seeded sample)")
    ap.add_argument("--data", type=Path, help="count this folder of MIDI files instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or folk_set(Path(tmp) / "folk", args.n, args.seed)
        files, skipped, phrases, _, _ = count(root, "4/4", strict=True)
        print(f"\n{'metre':<28}{'files used':>12}{'skipped':>10}{'phrases':>10}")
        print(f"{'before metres (4/4, exact)':<28}{files - skipped:>12}{skipped:>10}"
              f"{phrases:>10}")
        files, skipped, phrases, used, chosen = count(root, "auto")
        print(f"{'auto (' + chosen + ')':<28}{files - skipped:>12}{skipped:>10}{phrases:>10}")
        # the metres the skipped files would need, most files first
        ps = load_midi_folder(root, bars=2, metre="auto")
        needed = collections.Counter(r.reason.split("--metre ")[1].split()[0]
                                     for r in ps.skipped if "--metre " in r.reason)
        everything = set(used)
        for metre, _ in needed.most_common():
            _, skipped_m, phrases_m, used_m, _ = count(root, metre)
            everything |= used_m
            print(f"{metre:<28}{len(used_m):>12}{skipped_m:>10}{phrases_m:>10}")
        left = files - len(everything)
        print(f"\nfiles some metre's model learns from: {len(everything)} of {files}; "
              f"none: {left}")
        reasons = collections.Counter(r.reason for r in ps.skipped)
        print("\nwhy auto skipped files:")
        for reason, n in reasons.most_common(8):
            print(f"  {n:>4}  {reason}")


if __name__ == "__main__":
    main()
