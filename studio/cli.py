"""Headless commands: ``studio plugins`` and ``studio run PLUGIN JOB [--key value ...]``.

``run`` drives the very same :class:`~studio.jobs.JobRunner` the window uses: the job runs on a
worker thread while the main thread shows a progress bar on stderr (or prints JSON-lines events
with ``--events jsonl``) and turns Ctrl-C into a clean cancel. No Qt here.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from studio import params as params_mod
from studio import registry
from studio.errors import UserError
from studio.jobs import CANCELLED, DONE, FINAL_STATES, Event, JobRunner

HOST_FLAGS = ("--events", "--device", "--threads")
# what the system sends to stop a program (timeout, systemd, logout): handled like Ctrl-C
_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def cmd_plugins(out: TextIO = sys.stdout) -> int:
    for rec in registry.discover():
        out.write(f"{rec.id}\t{rec.name}\t{rec.status()}\n")
    return 0


def _split_host_flags(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    host: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        key, eq, val = tok.partition("=")
        if key in HOST_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UserError(f"{key} needs a value")
                val = argv[i + 1]
                i += 1
            host[key[2:]] = val
        else:
            rest.append(tok)
        i += 1
    return host, rest


def jsonable(obj: Any, depth: int = 0) -> Any:
    """Events as JSON: arrays and tensors become a shape summary, not megabytes of numbers."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return {"array": {"shape": list(obj.shape), "dtype": str(obj.dtype)}}
    if isinstance(obj, dict) and depth < 4:
        return {str(k): jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple) and depth < 4:
        if len(obj) > 64:
            return {"list": {"length": len(obj)}}
        return [jsonable(v, depth + 1) for v in obj]
    return repr(obj)[:200]


class _Printer:
    """Turns events into a tqdm bar (stderr) or JSON lines (stdout)."""

    def __init__(self, mode: str, title: str, verbose: bool = False) -> None:
        self.mode = mode
        self.title = title
        self.verbose = verbose
        self.bar: Any = None
        self.lock = threading.Lock()
        self.broken_pipe = threading.Event()  # the reader went away (``| head``): cancel

    def __call__(self, ev: Event) -> None:
        with self.lock:
            if self.mode == "jsonl":
                if self.broken_pipe.is_set():
                    return
                rec = {"job": ev.job_id, "event": ev.kind, "time": round(ev.time, 3),
                       **jsonable(ev.data)}
                try:
                    sys.stdout.write(json.dumps(rec) + "\n")
                    sys.stdout.flush()
                except (BrokenPipeError, ValueError):
                    self.broken_pipe.set()
                return
            if ev.kind == "progress":
                self._bar(ev.data)
            elif ev.kind == "log" and ev.data.get("failure") and not self.verbose:
                return  # the final "error: ..." line says it; tracebacks with STUDIO_DEBUG=1
            elif ev.kind == "log" and ev.data.get("level") in ("warning", "error"):
                self._write(f"{ev.data['level']}: {ev.data['text']}")
            elif ev.kind == "log":
                self._write(ev.data["text"])

    def _bar(self, data: dict[str, Any]) -> None:
        """One bar per phase of the job: a count that starts again (reading 210 images, then
        training 2 steps) gets a fresh bar, and the finished phase's bar is cleared, so no bar
        reads "210step" for two training steps. Bars carry no unit: a job counts images,
        files or steps, and the message says which."""
        from tqdm import tqdm

        total = _whole(data.get("total"))
        done = _whole(data["done"])
        if self.bar is not None and (done < self.bar.n or (total is not None
                                                           and self.bar.total is None)):
            self.bar.leave = False
            self.bar.close()
            self.bar = None
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.title, file=sys.stderr, dynamic_ncols=True,
                            unit="", leave=True, mininterval=0.5)
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(max(0, done - self.bar.n))
        if data.get("message"):
            self.bar.set_postfix_str(data["message"][:60], refresh=False)
        self.bar.refresh()

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            sys.stderr.write(text + "\n")

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.close()


def _whole(x: float | None) -> Any:
    """1.0 -> 1 so the bar reads 15/15, not 15.0/15.0; fractional progress stays a float."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def cmd_run(plugin_id: str, job: str, argv: Sequence[str]) -> int:
    """Run one job headless; prints the result path on stdout. Exit 0 ok, 1 failed, 130 cancel."""
    from studio import settings as settings_mod

    try:
        host, rest = _split_host_flags(argv)
        if any(a in ("-h", "--help") for a in rest):
            return _job_help(plugin_id, job)
        plugin = registry.get(plugin_id)
        spec = plugin.job(job)
        s = settings_mod.load()
        if "device" in host:
            s.device = host["device"]
        if "threads" in host:
            s.cpu_threads = int(host["threads"])
        mode = host.get("events", "bar")
        if mode not in ("bar", "jsonl"):
            raise UserError("--events takes 'jsonl'")
        fn = spec.load()
        out = None
        if spec.makes_run:
            rest, out = _pop_out(rest)
        values = params_mod.from_cli(params_mod.params_of(fn), rest)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2

    verbose = os.environ.get("STUDIO_DEBUG", "") not in ("", "0")
    printer = _Printer(mode, spec.title or f"{plugin_id} {job}", verbose=verbose)
    if not verbose:  # the printer shows a job's warnings; Python's last-resort logging
        import logging  # handler would print each one a second time

        logging.getLogger("studio").addHandler(logging.NullHandler())
    runner = JobRunner(printer, settings=s)
    rec = runner.submit(plugin_id, spec, values, func=fn, out=out)
    interrupted = 0
    signalled: list[int] = []  # SIGTERM/SIGHUP: the system, not the user, stops the job

    def on_signal(signum: int, _frame: object) -> None:
        if signalled:  # a second one: the system insists
            sys.stderr.write("\nforced exit\n")
            os._exit(128 + signum)
        signalled.append(signum)
        sys.stderr.write(f"\n{signal.Signals(signum).name}: stopping, a training run saves a "
                         "checkpoint to resume from...\n")
        runner.cancel(rec.id, interrupted=True)

    previous = {s_: signal.getsignal(s_) for s_ in _STOP_SIGNALS}
    for s_ in _STOP_SIGNALS:
        signal.signal(s_, on_signal)
    try:
        while rec.state not in FINAL_STATES:
            try:
                runner.wait(rec.id, 0.2)
                if printer.broken_pipe.is_set():
                    runner.cancel(rec.id)
            except KeyboardInterrupt:
                interrupted += 1
                if interrupted > 1:
                    sys.stderr.write("\nforced exit\n")
                    return 130
                sys.stderr.write("\ncancelling (Ctrl-C again to force)...\n")
                runner.cancel(rec.id)
    finally:
        for s_, handler in previous.items():
            signal.signal(s_, handler)
        printer.close()
        runner.shutdown(timeout=5.0)
    if signalled:
        sys.stderr.write("interrupted" + (f"; resume it with --resume --out {rec.run_dir}"
                                          if rec.run_dir else "") + "\n")
        return 128 + signalled[0]
    if rec.state == DONE:
        if rec.result is not None and mode != "jsonl":
            sys.stdout.write(f"{rec.result}\n")
        return 0
    if rec.state == CANCELLED:
        sys.stderr.write("cancelled" + (f"; partial results in {rec.run_dir}" if rec.run_dir
                                        else "") + "\n")
        return 130
    sys.stderr.write(f"error: {rec.error}\n")
    return 1


def _pop_out(argv: list[str]) -> tuple[list[str], str | None]:
    rest: list[str] = []
    out = None
    i = 0
    while i < len(argv):
        key, eq, val = argv[i].partition("=")
        if key == "--out":
            if eq:
                out = val
            elif i + 1 < len(argv):
                out = argv[i + 1]
                i += 1
            else:
                raise UserError("--out needs a value")
        else:
            rest.append(argv[i])
        i += 1
    return rest, out


def _job_help(plugin_id: str, job: str) -> int:
    try:
        return _print_job_help(plugin_id, job)
    except BrokenPipeError:  # `studio run P J --help | head`: the reader left, that's fine
        sys.stderr.close()
        return 0


def _print_job_help(plugin_id: str, job: str) -> int:
    plugin = registry.get(plugin_id)
    spec = plugin.job(job)
    fn = spec.load()
    print(f"studio run {plugin_id} {job} [options]\n")
    if spec.help or fn.__doc__:
        print((spec.help or (fn.__doc__ or "").strip().splitlines()[0]) + "\n")
    print(params_mod.usage(params_mod.params_of(fn)))
    if spec.makes_run:
        print("  --out DIR\n      run folder (default: a new folder under the workspace)")
    print("  --events jsonl\n      print every event as a JSON line instead of a progress bar")
    print("  --device auto|cuda|mps|cpu   --threads N")
    return 0


def list_jobs(out: TextIO = sys.stdout) -> int:
    for rec in registry.discover():
        if rec.plugin is None:
            continue
        for spec in rec.plugin.jobs:
            out.write(f"{rec.id} {spec.name}\t{spec.title}\n")
    return 0


def cmd_runs(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    """``studio runs [--plugin ID] [--json]``: every run of the workspace (and those kept
    elsewhere), newest first, with its data: how many examples trained it, how many were held
    out, and the data's fingerprint."""
    import argparse
    import datetime as dt

    from studio import runindex
    from studio import settings as settings_mod

    ap = argparse.ArgumentParser(prog="studio runs")
    ap.add_argument("--plugin", default=None, help="only this plugin's runs")
    ap.add_argument("--json", action="store_true", help="one JSON document (for scripts)")
    ns = ap.parse_args(list(argv))
    runs = runindex.scan(settings_mod.load().workspace_path(), ns.plugin)
    if ns.json:
        out.write(json.dumps([r.to_json() for r in runs], indent=2) + "\n")
        return 0
    if not runs:
        out.write("no runs yet" + (f" for {ns.plugin}" if ns.plugin else "") + "\n")
        return 0
    for r in runs:
        m = r.manifest
        when = dt.datetime.fromtimestamp(m.started).strftime("%Y-%m-%d %H:%M")
        data = "; ".join(f"{d.name}: {d.train} trained, {d.held_out} held out "
                         f"({d.unit}s, {d.fingerprint[:12] or 'no fingerprint'})"
                         for d in m.datasets) or "no data recorded"
        out.write(f"{when}  {m.plugin:<9} {m.job:<10} {r.state:<11} {r.path}\n"
                  f"    data: {data}\n")
    return 0
