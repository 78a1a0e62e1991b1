"""Start-up: ``studio`` opens the window; ``studio plugins|run|screenshot`` work headless.

Only the standard library is imported before the command is known, so ``studio run`` never pays
for Qt and the window never pays for torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

USAGE = """usage:
  studio                                   open the window
  studio plugins                           list plugins: id, name, ok | disabled: reason
  studio jobs                              list every plugin's jobs
  studio runs [--plugin ID] [--json]       list every run: job, state, data (trained / held out)
  studio run PLUGIN JOB [--key value ...]  run a job headless (--events jsonl for JSON lines;
                                           studio run PLUGIN JOB --help lists its options)
                                           --nproc-per-node N: N data-parallel
                                           processes (torchrun); it also runs under torchrun
  studio export-job PLUGIN JOB [--key value ...] --to FOLDER [--copy-data]
                                           a folder that runs the job elsewhere (torchrun,
                                           SLURM): parameters, data hashes, scripts
  studio runs import FOLDER                bring a run finished elsewhere into the workspace
  studio screenshot [--plugin ID] [--size 1400x900] [--theme light|dark] --out FILE.png
  studio selftest [--plugin ID ...]        check this installation: a tiny job of every plugin,
                                           the window, audio, writable folders
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from studio.device import configure_allocator

    configure_allocator()  # before any tensor exists: see its docstring
    if not args:
        return gui()
    cmd, rest = args[0], args[1:]
    if cmd in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if cmd in ("--version", "version"):
        from studio import __version__

        print(__version__)
        return 0
    if cmd == "plugins":
        from studio.cli import cmd_plugins

        return cmd_plugins()
    if cmd == "jobs":
        from studio.cli import list_jobs

        return list_jobs()
    if cmd == "runs":
        from studio.cli import cmd_runs

        return cmd_runs(rest)
    if cmd == "run":
        if len(rest) < 2:
            sys.stderr.write("usage: studio run PLUGIN JOB [--key value ...]\n")
            return 2
        from studio.cli import cmd_run

        return cmd_run(rest[0], rest[1], rest[2:])
    if cmd == "export-job":
        from studio.cli import cmd_export_job

        return cmd_export_job(rest)
    if cmd == "screenshot":
        return screenshot_cmd(rest)
    if cmd == "selftest":
        from studio.selftest import main as selftest

        return selftest(rest)
    sys.stderr.write(f"unknown command {cmd!r}\n{USAGE}")
    return 2


def _make_app(argv: list[str] | None = None):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv or ["studio"])
        app.setApplicationName("Generative Studio")
        app.setOrganizationName("Generative Studio")
        app.setDesktopFileName("generative-studio")
    return app


def gui() -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = _make_app(sys.argv[:1])
    from studio.window import MainWindow

    win = MainWindow()
    sys.excepthook = win.report_exception
    _end_session_on_signals(app, win)
    win.show()
    win.detect_device()
    return app.exec()


def _end_session_on_signals(app: Any, win: Any) -> None:
    """Logout, shutdown and ``kill`` reach the window as a session end: training jobs save a
    checkpoint and their runs are marked interrupted instead of being lost.

    Qt's session manager asks the application to commit its data (also Windows' end-session);
    SIGTERM and SIGHUP (Linux and macOS logout, systemd, ``kill``) are Python signal handlers,
    which only run when Python does: a timer gives them a moment every half second."""
    import signal

    from PySide6.QtCore import QTimer

    def ended(*_args: object) -> None:
        QTimer.singleShot(0, lambda: win.end_session("the system asked the studio to quit"))

    app.commitDataRequest.connect(
        lambda _mgr: win.end_session("the desktop session is ending", close=False))
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), ended)
    tick = QTimer(app)
    tick.setInterval(500)
    tick.timeout.connect(lambda: None)
    tick.start()
    app._studio_signal_tick = tick  # keep it alive with the application


def screenshot_cmd(argv: Sequence[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="studio screenshot")
    ap.add_argument("--plugin", default=None)
    ap.add_argument("--size", default="1400x900")
    ap.add_argument("--theme", choices=("light", "dark"), default=None)
    ap.add_argument("--out", required=True)
    ns = ap.parse_args(list(argv))
    try:
        w, h = (int(v) for v in ns.size.lower().split("x"))
    except ValueError:
        sys.stderr.write(f"error: --size must look like 1400x900, not {ns.size!r}\n")
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        path = screenshot(ns.out, plugin=ns.plugin, size=(w, h), theme=ns.theme)
    except KeyError:
        sys.stderr.write(f"error: no plugin {ns.plugin!r} (see: studio plugins)\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    print(path)
    return 0


def screenshot(out: str, plugin: str | None = None, size: tuple[int, int] = (1400, 900),
               theme: str | None = None) -> str:
    """Render the window offscreen with ``plugin`` selected and save a PNG."""
    app = _make_app()
    from PySide6.QtCore import QCoreApplication

    from studio import settings as settings_mod
    from studio.window import MainWindow

    s = settings_mod.load()
    if theme:
        s.theme = theme
    win = MainWindow(settings=s)
    try:
        if plugin:
            win.select_plugin(plugin)
        win.resize(*size)
        win.show()
        win.detect_device(sync=True)
        for _ in range(5):
            QCoreApplication.processEvents()
        win.plots_widget._force_redraw()
        QCoreApplication.processEvents()
        pix = win.grab()
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        if not pix.save(out, "PNG"):
            raise OSError(f"could not write {out}")
    finally:
        win._force_close = True
        win.shutdown(timeout=5.0)
        win.close()
        app.processEvents()
    return out
