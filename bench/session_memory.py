"""Lean long sessions: resident memory of one window session that runs many quick jobs.

A GAN Explore slider move is a quick job whose result is an image; an afternoon of exploring is
a thousand of them. This bench opens the main window offscreen and runs ``--jobs`` quick jobs
one after another through its job manager (each returns a 256x256 RGB image, 192 KB, and logs a
metric, as an Explore move does), delivering every event as the window would. It prints the
resident memory after the first 100 jobs and at the end, and the growth between them.

Bar (issue 17): growth after the first 100 jobs <= 50 MB over 1,000 jobs.

    python bench/session_memory.py [--jobs 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def explore_move(ctx):  # a quick job: an image as its result, a point on a curve
    import numpy as np

    ctx.metric("quality", 1, 0.5)
    return np.full((256, 256, 3), ctx.record.id % 256, np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    a = ap.parse_args()
    import tempfile

    os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="session-memory-"))
    from PySide6.QtWidgets import QApplication

    from studio.plugin import JobSpec
    from studio.window import MainWindow

    app = QApplication.instance() or QApplication(["bench"])
    win = MainWindow()
    win.resize(1280, 720)
    win.show()
    spec = JobSpec("move", "bench:explore_move", "Explore move", lane="interactive")
    manager = win.manager
    first = None
    t0 = time.perf_counter()
    for i in range(a.jobs):
        handle = manager.submit("gan", spec, {}, func=explore_move)
        while not handle.is_finished:
            app.processEvents()
            manager.drain()
            time.sleep(0.0005)
        if i + 1 == 100:
            first = rss_mb()
    end = rss_mb()
    seconds = time.perf_counter() - t0
    growth = end - (first or end)
    print(f"{a.jobs} quick jobs in {seconds:.1f} s ({a.jobs / seconds:.0f} jobs/s); resident "
          f"memory after 100 jobs {first:.0f} MB, after {a.jobs} {end:.0f} MB: growth "
          f"{growth:.1f} MB (bar <= 50 MB: {'PASS' if growth <= 50 else 'FAIL'})")
    print(f"kept: {len(manager.runner.records())} job records, {len(manager.handles)} handles, "
          f"{len(win.jobs_widget.items) if hasattr(win, 'jobs_widget') else '?'} job rows")
    win._force_close = True
    win.shutdown(timeout=5.0)
    win.close()
    return 0 if growth <= 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
