"""What the Live plots cost the GUI thread, against plain pyqtgraph drawing the same curves.

On a small machine every millisecond the GUI thread spends painting is taken from the training
job's torch threads (bench/gan_speed.py, bench/ui_latency.py), so the plots are measured here on
their own:

* **per redraw**: GUI-thread CPU time of one update (``setData`` on every curve and the paint that
  follows) of the studio's ``PlotsWidget`` with the GAN's six metrics on four plots, against a
  plain ``GraphicsLayoutWidget`` built the straightforward way (``showGrid``, legend, default
  pens, the same peak downsampling and clip-to-view), same size, same points. Bar: studio /
  plain <= 1.0.
* **streaming**: points arrive at ``--rate`` steps/s for ``--seconds`` while the widget's own timer
  decides when to redraw; the GUI thread's CPU share, less that of the same loop with the plots
  hidden, must stay near ``PLOT_CPU_BUDGET`` (bar: at most 1.5 times it, the budget being a
  target not a hard cap), and the redraws per second show how live the plots look at that cost.

    python bench/plot_cost.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NAMES = ("loss/D", "loss/G", "D/real", "D/fake", "gp", "diversity")  # what the GAN job logs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redraws", type=int, default=60, help="measured redraws per side")
    ap.add_argument("--points", type=int, default=2000, help="steps already on the curves")
    ap.add_argument("--seconds", type=float, default=10.0, help="streaming test length")
    ap.add_argument("--rate", type=float, default=30.0, help="streamed steps per second")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from studio import theme
    from studio.plots import PLOT_CPU_BUDGET, PlotsWidget, group_of
    from studio.qtjobs import MetricStore

    app = QApplication.instance() or QApplication([])
    theme.apply(app, "dark")
    rng = np.random.default_rng(0)
    store = MetricStore()
    step = 0

    def add(n: int) -> None:
        nonlocal step
        for _ in range(n):
            step += 1
            for name in NAMES:
                if name != "diversity" or step % 100 == 0:
                    store.add(1, name, step, float(rng.normal()) + step * 1e-3)

    add(args.points)

    def settle() -> None:
        for _ in range(3):
            app.processEvents()

    studio = PlotsWidget(store)
    studio.resize(900, 600)
    studio.show()
    studio.add_job(1, "train")

    plain = pg.GraphicsLayoutWidget()
    plain.resize(900, 568)  # the studio widget's graphics area (its toolbar takes the rest)
    plain.show()
    curves: dict[str, pg.PlotDataItem] = {}
    plots: dict[str, pg.PlotItem] = {}
    for name in sorted(NAMES):
        group = group_of(name)
        if group not in plots:
            n = len(plots)
            plots[group] = plain.addPlot(row=n // 2, col=n % 2, title=group)
            plots[group].showGrid(x=True, y=True, alpha=0.25)
            plots[group].setDownsampling(auto=True, mode="peak")
            plots[group].setClipToView(True)
            plots[group].setLabel("bottom", "step")
            plots[group].addLegend()
        curves[name] = plots[group].plot(pen="#4C9BE8", name=name)

    def plain_update() -> None:
        for name, (xs, ys) in store.of(1).items():
            curves[name].setData(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))

    plain_update()
    settle()

    def timed(update: object) -> float:
        t = time.thread_time()
        update()  # type: ignore[operator]
        settle()
        return time.thread_time() - t

    studio_costs, plain_costs = [], []
    for _ in range(args.redraws):  # alternating, on the same points
        add(10)
        studio_costs.append(timed(studio._redraw))
        plain_costs.append(timed(plain_update))
    studio_cost, plain_cost = statistics.median(studio_costs), statistics.median(plain_costs)
    plain.hide()
    studio.hide()

    def stream() -> tuple[float, float]:
        """GUI-thread CPU share and wall time of streaming points for ``--seconds``."""
        cpu0, t0 = time.thread_time(), time.perf_counter()
        next_point = t0
        while time.perf_counter() - t0 < args.seconds:
            now = time.perf_counter()
            while next_point <= now:
                add(1)
                next_point += 1.0 / args.rate
            app.processEvents()
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        return (time.thread_time() - cpu0) / wall, wall

    base_share, _ = stream()  # the loop itself, plots hidden (hidden plots skip redraws)
    studio.show()  # now the widget's own 50 ms timer decides when to redraw
    settle()
    redraws0 = studio.redraws
    total_share, wall = stream()
    share = max(total_share - base_share, 0.0)
    rate = (studio.redraws - redraws0) / wall

    ratio = studio_cost / plain_cost
    ok_cost = ratio <= 1.0
    ok_share = share <= 1.5 * PLOT_CPU_BUDGET
    print(f"per redraw ({len(NAMES)} curves, {step} steps): studio {studio_cost * 1e3:.1f} ms, "
          f"plain pyqtgraph {plain_cost * 1e3:.1f} ms")
    print(f"{'PASS' if ok_cost else 'FAIL'}: studio / plain = {ratio:.2f} (bar 1.0)")
    print(f"{'PASS' if ok_share else 'FAIL'}: streaming {args.rate:.0f} steps/s for {wall:.0f} s: "
          f"plots {share:.1%} of the GUI thread (loop alone {base_share:.1%}; budget "
          f"{PLOT_CPU_BUDGET:.0%}, bar {1.5 * PLOT_CPU_BUDGET:.0%}), {rate:.1f} redraws/s")
    return 0 if ok_cost and ok_share else 1


if __name__ == "__main__":
    raise SystemExit(main())
