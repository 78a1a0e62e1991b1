"""Data-parallel training with PyTorch's own engine (``torch.distributed``, launched by
``torchrun``): the pieces every trainer shares.

Why PyTorch's engine and not our own: ``torchrun`` is what clusters (SLURM, Kubernetes) and
multi-GPU workstations already run, with rendezvous, restarts and NCCL; a job that follows its
conventions runs unchanged on a laptop (``studio run ... --nproc-per-node 2``, gloo on the CPU)
and on a user's own ``torchrun --nnodes 4 --rdzv-endpoint host:29400 -m studio run ...``.

The rules, for every trainer:

- **One global batch, split.** ``batch_size`` is the global batch. Every rank draws the same
  global batch from the same generator (the run's own, identical on every rank) and keeps its
  :meth:`Dist.shard` of it, the way ``DistributedSampler`` shares one permutation. DDP averages
  the gradients, so N processes take the very step one process takes with the whole batch, and
  a checkpoint resumes with any number of processes (nothing in it depends on the count).
- **Rank 0 writes.** The run folder, ``metrics.jsonl``, checkpoints, exported models and
  previews are rank 0's; other ranks write nothing (:func:`is_main`). Checkpoints are written
  between barriers; resuming, every rank reads rank 0's checkpoint, so the run folder must be
  on a file system every node sees (a cluster's shared home or scratch).
- **Decisions are agreed.** Anything decided from a clock (a time budget, checkpoint minutes,
  log intervals) or from a user's Stop is rank 0's, shared once a step by :meth:`Dist.agree`,
  so every rank takes the same branch and no collective is left waiting.
- Logged metrics are averaged over the ranks (:meth:`Dist.mean`) before rank 0 writes them.

No Qt; torch is imported only when a process group is in use.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from studio.errors import UserError

#: the variables torchrun sets in every worker
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: how long a rank waits for the others in one collective before giving up (a dead peer)
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a torchrun job (from its environment)."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The torchrun environment of this process, or None when it runs alone (no torchrun, or
    torchrun with one process: that is a plain run)."""
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env["RANK"])
        local = int(env.get("LOCAL_RANK", rank))
    except ValueError:
        raise UserError("RANK / WORLD_SIZE / LOCAL_RANK must be whole numbers (torchrun sets "
                        "them)") from None
    if world <= 1:
        return None
    return DistEnv(rank, world, local, env.get("MASTER_ADDR", "127.0.0.1"),
                   env.get("MASTER_PORT", "29500"))


def backend_for(device: str) -> str:
    """NCCL between GPUs, gloo on the CPU."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def rank_device(device: str, env: DistEnv) -> str:
    """A rank's own device: its local GPU (``cuda:LOCAL_RANK``), or the device as chosen."""
    return f"cuda:{env.local_rank}" if str(device).startswith("cuda") else device


def setup(device: str = "cpu") -> Dist | None:
    """Join the torchrun job this process belongs to (once; the CLI does it before the job
    starts) and return it; None when the process runs alone."""
    env = detect()
    if env is None:
        return None
    import torch.distributed as tdist

    if not tdist.is_initialized():
        backend = backend_for(device)
        if backend == "nccl":
            import torch

            torch.cuda.set_device(env.local_rank)
        tdist.init_process_group(backend, timeout=TIMEOUT)
    return current()


def current() -> Dist | None:
    """The job's process group when this process is one of several ranks, else None. Cheap,
    and imports nothing when torch.distributed was never started."""
    tdist = sys.modules.get("torch.distributed")
    if tdist is None or not tdist.is_available() or not tdist.is_initialized():
        return None
    if tdist.get_world_size() <= 1:
        return None
    return Dist()


def is_main() -> bool:
    """True on the rank that writes (rank 0), and in a process that runs alone."""
    d = current()
    return d is None or d.rank == 0


def rank() -> int:
    d = current()
    return 0 if d is None else d.rank


def world_size() -> int:
    d = current()
    return 1 if d is None else d.world


def barrier() -> None:
    """Wait for every rank (nothing when alone)."""
    d = current()
    if d is not None:
        d.barrier()


def stop_requested() -> bool:
    """A Stop asked of this process (Ctrl-C, SIGTERM): the CLI sets it instead of cancelling
    the job at once, so the ranks stop together at the loop's next agreement."""
    cli = sys.modules.get("studio.cli")
    event = getattr(cli, "STOP_TOGETHER", None)
    return bool(event is not None and event.is_set())


def shutdown() -> None:
    """Leave the process group (the end of a job)."""
    tdist = sys.modules.get("torch.distributed")
    if tdist is not None and tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


class Dist:
    """The initialised process group, seen by a trainer."""

    def __init__(self) -> None:
        import torch
        import torch.distributed as tdist

        self.torch = torch
        self.tdist = tdist
        self.rank = tdist.get_rank()
        self.world = tdist.get_world_size()
        self.backend = tdist.get_backend()
        env = detect()
        self.local_rank = env.local_rank if env is not None else self.rank
        # the device collectives run on: NCCL needs the rank's GPU, gloo the CPU
        self.comm_device = (f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- models ---------------------------------------------------------------------------------
    def wrap(self, module: Any, **kwargs: Any) -> Any:
        """``module`` in DistributedDataParallel (its own weights stay reachable as
        ``.module``; save and load those, never the wrapper's, so checkpoints do not depend on
        the number of processes). Rank 0's weights are copied to every rank here."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        params = [p for p in module.parameters()]
        device = params[0].device if params else self.torch.device("cpu")
        ids = [device.index] if device.type == "cuda" else None
        return DDP(module, device_ids=ids, **kwargs)

    # -- data -----------------------------------------------------------------------------------
    def local_batch(self, global_batch: int, what: str = "batch size") -> int:
        """This rank's share of a global batch; the batch must divide evenly, or the ranks'
        averaged gradients would not be the global batch's."""
        if global_batch % self.world:
            raise UserError(f"the {what} ({global_batch}) must be a multiple of the number of "
                            f"processes ({self.world}): each takes an equal share of it")
        return global_batch // self.world

    def shard(self, global_batch: int, what: str = "batch size") -> slice:
        """The rows of a global batch this rank trains on."""
        n = self.local_batch(global_batch, what)
        return slice(self.rank * n, (self.rank + 1) * n)

    # -- collectives ----------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.backend == "nccl":
            self.tdist.barrier(device_ids=[self.local_rank])
        else:
            self.tdist.barrier()

    def _vector(self, values: Sequence[float]) -> Any:
        dtype = self.torch.float64 if self.backend != "nccl" else self.torch.float32
        return self.torch.tensor(list(values), dtype=dtype, device=self.comm_device)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over the ranks (one all-reduce)."""
        if not values:
            return []
        vec = self._vector(values)
        self.tdist.all_reduce(vec, op=self.tdist.ReduceOp.SUM)
        return [float(v) for v in vec.tolist()]

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each named value averaged over the ranks (every rank must pass the same names)."""
        names = sorted(values)
        sums = self.sum([float(values[k]) for k in names])
        return {k: s / self.world for k, s in zip(names, sums, strict=True)}

    def agree(self, stop: bool, main_values: Sequence[float]) -> tuple[bool, list[float]]:
        """One all-reduce a step: whether any rank was asked to stop, and rank 0's values
        (its clock's readings) for every rank."""
        mine = [1.0 if stop else 0.0] + ([float(v) for v in main_values] if self.is_main
                                         else [0.0] * len(main_values))
        out = self.sum(mine)
        return out[0] > 0, out[1:]

    def broadcast_json(self, obj: Any) -> Any:
        """Rank 0's JSON-able value on every rank (text through a byte tensor: no pickle)."""
        torch = self.torch
        data = json.dumps(obj).encode("utf-8") if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.long, device=self.comm_device)
        self.tdist.broadcast(size, 0)
        buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=self.comm_device)
        if self.is_main and data:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        if buf.numel():
            self.tdist.broadcast(buf, 0)
        return json.loads(bytes(buf.cpu().tolist()).decode("utf-8"))
