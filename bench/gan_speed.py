"""Speed bench for the GAN plugin: training steps/s through the studio vs a bare loop.

Both runs train the same model (the default preset on the built-in digits, or ``--preset`` /
``--arch``) with the same batch, in the same process, on the same device:

* **bare**: ``GanTrainer.train_step()`` in a plain ``for`` loop as a job of the studio's runner
  (see ``bare_on_worker``), the GUI thread blocked: no events, no metrics file, no previews, no
  checkpoints;
* **studio**: the ``train`` job submitted from the GAN panel to the studio's worker, with the
  Live plots widget following it (curves redrawn as points arrive) and the panel's preview grid
  refreshed every ``--preview-every`` steps (sampling the EMA generator, collapse check, PNG),
  metrics written to metrics.jsonl, a checkpoint every ``--checkpoint-every`` steps.

Steps/s is measured over the same step window in both (after ``--warmup`` steps), from the
metric timestamps of the job and from the clock around the bare loop. The runs alternate
(bare, studio, bare, studio...) and the medians are compared, which cancels most of the drift of
a shared machine. Bar: studio / bare >= 0.95.

    python bench/gan_speed.py                   # CPU, 2 threads
    python bench/gan_speed.py --device cuda     # on a GPU (autocast as configured)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BAR = 0.95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=300, help="measured steps per run")
    ap.add_argument("--preview-every", type=int, default=100)
    ap.add_argument("--checkpoint-every", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from studio.device import configure_allocator

    configure_allocator()  # as the studio's entry point does; both sides share it
    import torch

    torch.set_num_threads(args.threads)
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from plugins.common.images import builtin_digits
    from plugins.gan.engine import data as data_mod
    from plugins.gan.engine.config import make_config
    from plugins.gan.engine.trainer import GanTrainer
    from plugins.gan.plugin import GanPlugin
    from studio import device as device_mod
    from studio.host import PanelHost
    from studio.plots import PlotsWidget
    from studio.qtjobs import JobManager
    from studio.settings import Settings

    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)
    tmp = Path(tempfile.mkdtemp(prefix="gan_speed_"))
    settings = Settings(device=args.device, cpu_threads=args.threads,
                        workspace=str(tmp / "workspace"))
    dev = device_mod.resolve(args.device, args.threads).torch_device
    builtin_digits(tmp / "workspace")
    ds = data_mod.load_dataset("digits", tmp / "workspace", 32)  # PIL and numpy: no torch
    total = args.warmup + args.steps

    def sync() -> None:
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    def bare() -> float:
        # on the worker, as in the job: torch work on the main thread would leave an OpenMP
        # pool there that slows every later loop on 2 cores (bench/lane_pools.py)
        native = data_mod.native_size(ds.images, 32)
        cfg = make_config(args.arch, args.preset, size=32, channels=ds.channels,
                          num_classes=len(ds.classes), class_names=list(ds.classes),
                          train_size=native if native != 32 else 0)
        images = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous()
        t = GanTrainer(cfg, images, torch.from_numpy(ds.labels), dev)
        for _ in range(args.warmup):
            t.train_step()
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            t.train_step()
        sync()
        return args.steps / (time.perf_counter() - t0)

    manager = JobManager(settings)
    plugin = GanPlugin()
    plots = PlotsWidget(manager.metrics)
    plots.resize(900, 600)
    plots.show()
    host = PanelHost(manager, plugin, show_plots=lambda job_id: plots.add_job(job_id, "train"))
    panel = plugin.create_panel(host)
    panel.resize(1300, 850)
    panel.show()

    gui_busy: list[float] = []  # GUI thread CPU time / wall time of each studio run

    def studio(i: int) -> float:
        t = panel.train  # its form is bound to the train job's params (TrainParams)
        t.form.set_value("data", "digits")
        t.form.set_value("steps", total)
        t.form.set_value("preview_every", args.preview_every)
        t.form.set_value("checkpoint_every", args.checkpoint_every)
        t.form.set_value("arch", args.arch)  # None: the preset's
        t.form.set_value("preset", args.preset)
        t.out.setText(str(tmp / f"run{i}"))
        times: dict[int, float] = {}

        def on_event(ev) -> None:
            for name, step, _value, t in ev.points:
                if name == "loss/D":
                    times[int(step)] = t

        manager.event.connect(on_event)
        handle = t.start()
        assert handle is not None
        loop = QEventLoop()  # the GUI thread idles in Qt's event loop, as in the window
        handle.finished.connect(loop.quit)
        gui0, wall0 = time.thread_time(), time.perf_counter()
        loop.exec()  # finished is delivered by the manager's drain timer, so it cannot be missed
        gui_busy.append((time.thread_time() - gui0) / (time.perf_counter() - wall0))
        manager.drain()
        manager.event.disconnect(on_event)
        if handle.record.state != "done":
            raise SystemExit(f"studio run {handle.record.state}: {handle.record.error}")
        steps = sorted(times)
        first = min((s for s in steps if s >= args.warmup), default=None)
        if first is None or steps[-1] <= first:
            raise SystemExit("not enough metric points to time the studio run")
        return (steps[-1] - first) / (times[steps[-1]] - times[first])

    from studio.plugin import JobSpec

    bare_spec = JobSpec("bare", "gan_speed:bare", "bare loop")

    def bare_job(ctx: object) -> float:
        return bare()

    def bare_on_worker() -> float:
        """bare() as a job of the studio's runner (its own worker thread), the GUI thread
        blocked. Not on the main thread: torch's OpenMP keeps a thread pool for every thread
        that ran parallel work while that thread lives, and with two pools on two cores libgomp
        stops spinning, which slowed every later loop by a quarter (bench/lane_pools.py). In the
        window the GUI thread never runs torch."""
        rec = manager.runner.submit("gan", bare_spec, {}, func=bare_job)
        manager.runner.wait(rec.id)
        if rec.state != "done":
            raise SystemExit(f"bare run {rec.state}: {rec.error}")
        return float(rec.result)

    bares: list[float] = []
    studios: list[float] = []
    for i in range(args.repeats):
        bares.append(bare_on_worker())
        print(f"bare   #{i + 1}: {bares[-1]:.2f} steps/s", flush=True)
        studios.append(studio(i))
        print(f"studio #{i + 1}: {studios[-1]:.2f} steps/s (plots redrawn "
              f"{plots.redraws} times so far; GUI thread busy {gui_busy[-1]:.1%})", flush=True)
    b, s = statistics.median(bares), statistics.median(studios)
    ratio = s / b
    print(f"device {dev}, preset {args.preset}, {args.steps} measured steps, previews every "
          f"{args.preview_every}, checkpoints every {args.checkpoint_every}")
    print(f"{'PASS' if ratio >= BAR else 'FAIL'}: studio {s:.2f} steps/s / bare {b:.2f} steps/s "
          f"= {ratio:.3f} (bar {BAR})")
    manager.shutdown()
    return 0 if ratio >= BAR else 1


if __name__ == "__main__":
    raise SystemExit(main())
