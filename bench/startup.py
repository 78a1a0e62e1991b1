"""Start-up time: until the main window is shown, against a bare ``python -c "import torch"``.

The window must not import torch (jobs import it on the worker), so it should open in a fraction
of the time torch alone takes to import. Each figure is the median of several cold-ish runs in
fresh processes on the same machine, so the ratio is what to read, not the absolute seconds.

    python bench/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

WINDOW = """
import time, sys
t0 = float(sys.argv[1])
from PySide6.QtWidgets import QApplication
from studio.app import _make_app
app = _make_app()
from studio.window import MainWindow
win = MainWindow()
win.show()
app.processEvents()
shown = time.time()
print(f"SHOWN {shown - t0:.4f} torch_loaded={'torch' in sys.modules}")
win._force_close = True
win.shutdown(2)
"""


def _time_import_torch() -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.time() - t0


def _time_window(env: dict[str, str]) -> tuple[float, str]:
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", WINDOW, repr(t0)], capture_output=True,
                          text=True, env=env, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("SHOWN"))
    return float(line.split()[1]), line.split()[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               STUDIO_HOME=tempfile.mkdtemp(prefix="studio-bench-"))
    _time_import_torch()  # warm the file cache for both
    _time_window(env)
    torch_times, window_times, flags = [], [], set()
    for _ in range(args.repeat):
        torch_times.append(_time_import_torch())
        t, flag = _time_window(env)
        window_times.append(t)
        flags.add(flag)
    t_torch = statistics.median(torch_times)
    t_window = statistics.median(window_times)
    print(f"bare 'import torch':        {t_torch:.3f} s (median of {args.repeat})")
    print(f"studio window shown:        {t_window:.3f} s "
          f"(median of {args.repeat}; {', '.join(flags)})")
    print(f"ratio window / import torch: {t_window / t_torch:.2f}  (target: < 1, torch not loaded)")


if __name__ == "__main__":
    main()
