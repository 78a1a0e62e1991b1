"""Headless commands: ``studio plugins`` and ``studio run PLUGIN JOB [--key value ...]``.

``run`` drives the very same :class:`~studio.jobs.JobRunner` the window uses: the job runs on a
worker thread while the main thread shows a progress bar on stderr (or prints JSON-lines events
with ``--events jsonl``) and turns Ctrl-C into a clean cancel. No Qt here.

Under ``torchrun`` (``--nproc-per-node N`` launches it locally) every process runs the job as
one rank of a data-parallel run: rank 0 drives the job runner, owns the run folder and prints;
the other ranks run the job quietly with the same run folder (``ctx.run`` None: they write
nothing) and print only their errors. A Stop reaches every rank and they stop together.
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
from studio.errors import Cancelled, UserError, friendly
from studio.jobs import CANCELLED, DONE, FINAL_STATES, Event, JobContext, JobRecord, JobRunner

HOST_FLAGS = ("--events", "--device", "--threads", "--nproc-per-node")
#: a Stop asked of a job that runs under torchrun: the training loop reads it once a step and
#: every rank stops at the same step (cancelling one rank alone would leave the others waiting)
STOP_TOGETHER = threading.Event()
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
                if ev.kind == "metrics":  # one line per point, as a script reads them
                    lines = [json.dumps({"job": ev.job_id, "event": "metric",
                                         "time": round(t, 3), "name": name, "step": step,
                                         "value": value})
                             for name, step, value, t in ev.data["points"]]
                else:
                    lines = [json.dumps({"job": ev.job_id, "event": ev.kind,
                                         "time": round(ev.time, 3), **jsonable(ev.data)})]
                try:
                    sys.stdout.write("".join(f"{line}\n" for line in lines))
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

    env: tuple[int, int, int] | None = None
    try:
        host, rest = _split_host_flags(argv)
        if any(a in ("-h", "--help") for a in rest):
            return _job_help(plugin_id, job)
        if "nproc-per-node" in host:
            return launch_local(plugin_id, job, argv, host["nproc-per-node"])
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
        env = torchrun_env()
        if env is not None:
            out = _join_torchrun(env, s, plugin_id, job, out, spec.makes_run)
            if env[0] != 0:
                return _run_other_rank(env, plugin_id, spec, fn, values, out, s)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        return _run_main(plugin_id, spec, fn, values, out, s, mode, together=env is not None)
    finally:
        if env is not None:
            _leave_torchrun()


def _run_main(plugin_id: str, spec: Any, fn: Any, values: Any, out: str | None, s: Any,
              mode: str, together: bool) -> int:
    """The job through the job runner, shown as a bar or JSON lines (rank 0 under torchrun:
    ``together``, where a Stop is agreed by every rank instead of cancelling at once)."""
    verbose = os.environ.get("STUDIO_DEBUG", "") not in ("", "0")
    printer = _Printer(mode, spec.title or f"{plugin_id} {spec.name}", verbose=verbose)
    if not verbose:  # the printer shows a job's warnings; Python's last-resort logging
        import logging  # handler would print each one a second time

        logging.getLogger("studio").addHandler(logging.NullHandler())
    runner = JobRunner(printer, settings=s)
    rec = runner.submit(plugin_id, spec, values, func=fn, out=out)
    interrupted = 0
    signalled: list[int] = []  # SIGTERM/SIGHUP: the system, not the user, stops the job

    def on_signal(signum: int, _frame: object) -> None:
        if together:
            signalled.append(signum)
            STOP_TOGETHER.set()
            return
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
                if together:  # torchrun: every rank stops at the same step
                    STOP_TOGETHER.set()
                    continue
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

    if argv and argv[0] == "import":
        return cmd_runs_import(argv[1:], out)
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


# ----------------------------------------------------------------------------------------------
# torchrun: data-parallel runs (plugins.common.distributed holds the training side)
# ----------------------------------------------------------------------------------------------
def torchrun_env(environ: Any = None) -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when this process is one of several torchrun workers."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        if "RANK" not in env or world <= 1:
            return None
        rank = int(env["RANK"])
        return rank, world, int(env.get("LOCAL_RANK", rank))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None


def launch_local(plugin_id: str, job: str, argv: Sequence[str], nproc: str) -> int:
    """``--nproc-per-node N``: the same command as N data-parallel processes on this machine,
    started by PyTorch's own launcher (``torch.distributed.run``, i.e. torchrun)."""
    import subprocess

    try:
        n = int(nproc)
    except ValueError:
        raise UserError(f"--nproc-per-node takes a number of processes, not {nproc!r}") from None
    if n < 1:
        raise UserError("--nproc-per-node must be at least 1")
    if torchrun_env() is not None:
        raise UserError("--nproc-per-node starts torchrun itself: leave it out under torchrun")
    rest, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        if tok == "--nproc-per-node":
            skip = True
            continue
        if tok.startswith("--nproc-per-node="):
            continue
        rest.append(tok)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={n}", "-m", "studio", "run", plugin_id, job, *rest]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    proc = subprocess.Popen(cmd, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the workers got it too: they stop together and save
            continue


def _join_torchrun(env: tuple[int, int, int], s: Any, plugin_id: str, job: str,
                   out: str | None, makes_run: bool) -> str | None:
    """Join the process group (gloo on the CPU, NCCL on CUDA) and agree on the run folder:
    rank 0's (a new one under the workspace unless --out names one)."""
    import torch
    import torch.distributed as tdist

    from studio import device as device_mod
    from studio.runs import new_run_dir

    rank, _world, local = env
    kind = device_mod.resolve(s.device, s.cpu_threads).kind
    if not tdist.is_initialized():
        if kind == "cuda":
            torch.cuda.set_device(local)
        tdist.init_process_group("nccl" if kind == "cuda" else "gloo")
    comm = f"cuda:{local}" if kind == "cuda" else "cpu"
    if not makes_run:
        out = None
    elif rank == 0 and out is None:
        out = str(new_run_dir(s.workspace_path(), plugin_id, job))
    path = (str(Path(out).expanduser().resolve()) if out else "").encode("utf-8")
    size = torch.tensor([len(path)], dtype=torch.long, device=comm)
    tdist.broadcast(size, 0)
    buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=comm)
    if rank == 0 and path:
        buf.copy_(torch.frombuffer(bytearray(path), dtype=torch.uint8))
    if buf.numel():
        tdist.broadcast(buf, 0)
    shared = bytes(buf.cpu().tolist()).decode("utf-8")
    return shared or None


def _leave_torchrun() -> None:
    import torch.distributed as tdist

    if tdist.is_initialized():
        tdist.destroy_process_group()


class _RankContext(JobContext):
    """A job's context on a rank other than 0: the run folder's path (to read what rank 0
    wrote, such as a checkpoint to resume from) but no run to write into, no events shown."""

    def __init__(self, record: JobRecord, cancel: threading.Event, settings: Any,
                 run_path: Path | None, local_rank: int) -> None:
        super().__init__(record, lambda _ev: None, cancel, settings, None)
        self._run_path = run_path
        self._local_rank = local_rank

    @property
    def run_dir(self) -> Path | None:
        return self._run_path

    @property
    def device(self) -> str:
        dev = super().device
        return f"cuda:{self._local_rank}" if dev.startswith("cuda") else dev

    def recorded_data(self, role: str = "train") -> str | None:
        from studio import manifest

        m = manifest.read(self._run_path) if self._run_path is not None else None
        ds = m.dataset(role) if m is not None else None
        return ds.location if ds is not None and ds.location else None


def _run_other_rank(env: tuple[int, int, int], plugin_id: str, spec: Any, fn: Any,
                    values: Any, out: str | None, s: Any) -> int:
    """Rank > 0: the job on a thread of its own (signals stay on the main thread), quietly."""
    import logging
    import traceback

    rank, _world, local = env
    verbose = os.environ.get("STUDIO_DEBUG", "") not in ("", "0")
    if not verbose:
        logging.getLogger("studio").addHandler(logging.NullHandler())
        logging.getLogger("studio").propagate = False
    rec = JobRecord(id=0, plugin=plugin_id, job=spec.name, title=spec.title or spec.name,
                    params=values, lane=spec.lane)
    cancel = threading.Event()
    ctx = _RankContext(rec, cancel, s, Path(out) if out else None, local)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            if s.cpu_threads:
                from studio import device

                device.configure_torch(s.cpu_threads)
            cls = params_mod.params_of(fn)
            p = params_mod.prepare_unread(cls, values)
            params_mod.read_objects(p, ctx.warn)
            fn(ctx) if cls is params_mod.NoParams else fn(ctx, p)
            outcome["state"] = DONE
        except Cancelled:
            outcome["state"] = CANCELLED
        except BaseException as exc:
            outcome["state"] = "failed"
            outcome["error"] = friendly(exc)
            if verbose:
                outcome["traceback"] = traceback.format_exc()

    def on_signal(signum: int, _frame: object) -> None:
        STOP_TOGETHER.set()

    previous = {s_: signal.getsignal(s_) for s_ in _STOP_SIGNALS}
    for s_ in _STOP_SIGNALS:
        signal.signal(s_, on_signal)
    worker = threading.Thread(target=work, name=f"studio-rank{rank}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            try:
                worker.join(0.2)
            except KeyboardInterrupt:
                STOP_TOGETHER.set()
    finally:
        for s_, handler in previous.items():
            signal.signal(s_, handler)
        _leave_torchrun()
    state = outcome.get("state", "failed")
    if state == DONE:
        return 0
    if state == CANCELLED:
        return 130
    sys.stderr.write(f"error (rank {rank}): {outcome.get('error', 'the job ended')}\n"
                     + outcome.get("traceback", ""))
    return 1


# ----------------------------------------------------------------------------------------------
# Running elsewhere (studio.exportjob)
# ----------------------------------------------------------------------------------------------
def cmd_export_job(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    """``studio export-job PLUGIN JOB [--key value ...] --to FOLDER [--copy-data]``."""
    from studio import exportjob

    args = list(argv)
    try:
        if len(args) < 2:
            raise UserError("usage: studio export-job PLUGIN JOB [--key value ...] --to FOLDER "
                            "[--copy-data]")
        plugin_id, job, rest = args[0], args[1], args[2:]
        copy_data = "--copy-data" in rest
        rest = [a for a in rest if a != "--copy-data"]
        to: str | None = None
        kept: list[str] = []
        i = 0
        while i < len(rest):
            key, eq, val = rest[i].partition("=")
            if key == "--to":
                if not eq:
                    if i + 1 >= len(rest):
                        raise UserError("--to needs a folder")
                    val = rest[i + 1]
                    i += 1
                to = val
            else:
                kept.append(rest[i])
            i += 1
        if to is None:
            raise UserError("--to FOLDER: where to write the job")
        path = exportjob.export_job(plugin_id, job, kept, Path(to), copy_data=copy_data)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    out.write(f"{path}\n")
    return 0


def cmd_runs_import(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    """``studio runs import FOLDER``: a run finished elsewhere, into this workspace."""
    from studio import exportjob
    from studio import settings as settings_mod

    if len(argv) != 1:
        sys.stderr.write("usage: studio runs import FOLDER\n")
        return 2
    try:
        path = exportjob.import_run(Path(argv[0]), settings_mod.load().workspace_path())
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    out.write(f"{path}\n")
    return 0
