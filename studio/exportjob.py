"""Run a job elsewhere: ``studio export-job`` writes a folder a workstation or a cluster runs
with ``torchrun`` or SLURM; ``studio runs import`` brings the finished run back.

The folder holds what the job is (its typed parameters, ``params.json``), what it learns from
(``data.json``: every data file with its size and sha256, by its path inside the data folder;
the data itself under ``data/`` with ``--copy-data``, or copied there by the user) and two
scripts, ``run_torchrun.sh`` and ``run_slurm.sbatch``, that run the same command line with the
studio installed there, into ``run/``. Nothing in it names a path of this computer or its user:
data paths become ``data/<name>``.

Importing copies a run folder (the exported folder's ``run/``, or any run folder) under
``<workspace>/runs/<plugin>/``, where ``studio runs`` and the window's Recent runs list it with
its curves, samples and models, as if it had run here. No Qt.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from studio import params as params_mod
from studio import registry, storage
from studio.errors import UserError

FORMAT = "studio-job-export-1"
RUN = "run"  # the run folder the scripts write, inside the exported folder
RESERVED = ("--out", "--events", "--device", "--threads", "--nproc-per-node")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())


def export_job(plugin_id: str, job: str, argv: Sequence[str], to: Path,
               copy_data: bool = False) -> Path:
    """Write the job ``plugin_id job argv`` as a folder at ``to``; returns it."""
    spec = registry.get(plugin_id).job(job)
    fn = spec.load()
    cls = params_mod.params_of(fn)
    argv = list(argv)
    if any(a.split("=", 1)[0] in RESERVED for a in argv):
        raise UserError("leave --out, --device, --threads and --nproc-per-node out: the "
                        "scripts choose them where the job runs")
    p = params_mod.from_cli(cls, argv)  # checks every value, as `studio run` would
    to = Path(to).expanduser()
    if to.exists() and any(to.iterdir()):
        raise UserError(f"{to.name} is not empty: choose a new folder for the exported job")
    to.mkdir(parents=True, exist_ok=True)
    # data: every path field that names something on this computer becomes data/<name>
    names: dict[str, str] = {}
    datasets: list[dict[str, Any]] = []
    for param in params_mod.describe(cls):
        value = getattr(p, param.name, None)
        if not isinstance(value, Path) or not value.expanduser().exists():
            continue
        src = value.expanduser().resolve()
        rel = f"data/{src.name}"
        names[param.flag] = rel
        files = _files(src)
        datasets.append({"field": param.name, "name": src.name, "path": rel,
                         "files": [{"path": f.relative_to(src).as_posix() if src.is_dir()
                                    else f.name, "size": f.stat().st_size,
                                    "sha256": _sha256(f)} for f in files]})
        if copy_data:
            dest = to / rel
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
    args: list[str] = []
    i = 0
    while i < len(argv):
        key, eq, _val = argv[i].partition("=")
        if key in names:
            args += [key, names[key]]
            i += 1 if eq else 2
            continue
        args.append(argv[i])
        i += 1
    data = params_mod.to_json(p)
    for ds in datasets:
        data[ds["field"]] = ds["path"]
    storage.atomic_write_json(to / "params.json", {
        "format": FORMAT, "plugin": plugin_id, "job": job, "params": data, "argv": args})
    storage.atomic_write_json(to / "data.json", {"format": FORMAT, "datasets": datasets})
    command = " ".join(shlex.quote(a) for a in
                       ["-m", "studio", "run", plugin_id, job, *args,
                        *(["--out", RUN] if spec.makes_run else [])])
    _script(to / "run_torchrun.sh", TORCHRUN.format(command=command))
    _script(to / "run_slurm.sbatch", SLURM.format(command=command, name=f"{plugin_id}-{job}"))
    storage.atomic_write_text(to / "README.txt", README.format(
        plugin=plugin_id, job=job, data=", ".join(d["path"] for d in datasets) or "none",
        copied="already copied there" if copy_data else "copy it there before running"))
    return to


def _script(path: Path, text: str) -> None:
    storage.atomic_write_text(path, text)
    path.chmod(0o755)


TORCHRUN = """#!/bin/sh
# Run this job with torchrun where the studio is installed (PYTHON: its Python).
#   one machine:  NPROC=4 ./run_torchrun.sh
#   a cluster:    NNODES=2 NPROC=8 RDZV=head-node:29400 ./run_torchrun.sh   (on every node)
set -e
cd "$(dirname "$0")"
PYTHON=${{PYTHON:-python}}
NPROC=${{NPROC:-1}}
NNODES=${{NNODES:-1}}
if [ "$NNODES" = 1 ]; then
  exec "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" {command} "$@"
fi
exec "$PYTHON" -m torch.distributed.run --nnodes "$NNODES" --nproc-per-node "$NPROC" \\
  --rdzv-backend c10d --rdzv-endpoint "${{RDZV:?set RDZV=host:port}}" --rdzv-id studio-job \\
  {command} "$@"
"""

SLURM = """#!/bin/bash
#SBATCH --job-name=studio-{name}
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --time=04:00:00
# Submit with: sbatch run_slurm.sbatch (raise --nodes / --gpus-per-node as your cluster
# allows; the run folder must be on a file system every node sees). PYTHON: the studio's
# Python; NPROC: processes per node (default: the GPUs given to the job).
set -e
cd "${{SLURM_SUBMIT_DIR:-$(dirname "$0")}}"
PYTHON=${{PYTHON:-python}}
NPROC=${{NPROC:-${{SLURM_GPUS_ON_NODE:-1}}}}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun "$PYTHON" -m torch.distributed.run --nnodes "$SLURM_NNODES" --nproc-per-node "$NPROC" \\
  --rdzv-backend c10d --rdzv-endpoint "$HEAD:29400" --rdzv-id "$SLURM_JOB_ID" \\
  {command} "$@"
"""

README = """Generative Studio job: {plugin} {job}

params.json        the job's settings
data.json          the data it learns from, file by file with sizes and SHA-256 hashes
data/              the data ({data}): {copied}
run_torchrun.sh    run it with torchrun (NPROC processes; NNODES and RDZV for a cluster)
run_slurm.sbatch   run it on a SLURM cluster (sbatch run_slurm.sbatch)

The run is written to run/. Bring it home with: studio runs import <this folder>
"""


def import_run(folder: Path, workspace: Path) -> Path:
    """Copy a finished run (an exported job folder's ``run/``, or a run folder) under the
    workspace's runs, where the run index lists it; returns the copy."""
    from studio import manifest

    folder = Path(folder).expanduser()
    src = folder / RUN if (folder / RUN / manifest.FILE).exists() else folder
    m = manifest.read(src)
    if m is None:
        raise UserError(f"{folder.name} holds no run (no readable {manifest.FILE}): import the "
                        "exported job's folder after its run finished, or a run folder")
    base = Path(workspace) / "runs" / m.plugin
    name = src.name if src.name != RUN else f"imported-{m.job}"
    dest = base / name
    n = 1
    while dest.exists():
        n += 1
        dest = base / f"{name}-{n}"
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{dest.name}.importing"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(dest)  # whole or not at all: the index never sees half a run
    return dest
