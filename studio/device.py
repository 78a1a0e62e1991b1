"""Which device jobs run on, in which precision, and how to describe it to the user.

The choice is made once per process from the settings (``auto`` prefers CUDA, then Apple MPS, then
the CPU). ``torch.set_num_threads`` only works before torch does any work, so
:func:`configure_torch` is called by the job runner right before the first job, never at import.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

DevicePref = Literal["auto", "cuda", "mps", "cpu"]
_configured = False
_lock = threading.Lock()


@dataclass(frozen=True)
class DeviceInfo:
    """What the status bar shows and what jobs run on."""

    kind: str  # "cuda", "mps" or "cpu"
    name: str  # e.g. "NVIDIA H100 80GB HBM3", "Apple MPS", "CPU"
    memory_gb: float | None
    threads: int
    note: str = ""  # e.g. why a requested device was not available

    @property
    def torch_device(self) -> str:
        return "cuda:0" if self.kind == "cuda" else self.kind

    def describe(self) -> str:
        if self.kind == "cuda":
            mem = f", {self.memory_gb:.0f} GB" if self.memory_gb else ""
            text = f"GPU: {self.name}{mem}"
        elif self.kind == "mps":
            text = "Apple MPS"
        else:
            text = f"CPU: {self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{text} ({self.note})" if self.note else text


class DeviceUnavailableError(RuntimeError):
    """The user asked for a device this machine does not have."""


def configure_torch(threads: int = 0) -> None:
    """Apply the CPU thread setting (0 keeps torch's default). The intra-op count can change
    between jobs; the inter-op pool can only be sized before torch's first parallel work."""
    global _configured
    if not threads or threads <= 0:
        return
    with _lock:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(int(threads))
        if not _configured:
            try:
                torch.set_num_interop_threads(max(1, min(int(threads), 4)))
            except RuntimeError:
                pass  # the pool already started (torch ran before): harmless, keep going
            _configured = True


def resolve(pref: str = "auto", threads: int = 0) -> DeviceInfo:
    """Pick the device for ``pref``; an explicit device that is missing raises a clear error."""
    import torch

    pref = (pref or "auto").lower()
    if pref not in ("auto", "cuda", "mps", "cpu"):
        raise DeviceUnavailableError(f"unknown device '{pref}': choose auto, cuda, mps or cpu")
    n_threads = threads if threads and threads > 0 else torch.get_num_threads()
    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if pref == "cuda" and not has_cuda:
        raise DeviceUnavailableError("CUDA was requested but no CUDA GPU is available to torch")
    if pref == "mps" and not has_mps:
        raise DeviceUnavailableError("Apple MPS was requested but is not available on this machine")
    if pref in ("auto", "cuda") and has_cuda:
        props = torch.cuda.get_device_properties(0)
        return DeviceInfo("cuda", props.name, props.total_memory / 1024**3, n_threads)
    if pref in ("auto", "mps") and has_mps:
        return DeviceInfo("mps", "Apple MPS", None, n_threads)
    return DeviceInfo("cpu", "CPU", None, n_threads)


def autocast_dtype(device: str | Any, pref: str = "auto") -> Any | None:
    """The mixed-precision dtype for ``device``: bf16 where supported, fp16 on older GPUs, none on
    CPU (CPU autocast is slower than fp32 for the small models trained here)."""
    import torch

    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    if pref == "fp32" or kind not in ("cuda", "mps"):
        return None
    if pref == "fp16":
        return torch.float16
    if pref == "bf16":
        return torch.bfloat16
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16


def memory_summary(device: str | Any) -> dict[str, float]:
    """Allocated / reserved / total memory in GB for CUDA, process RSS for the CPU."""
    import torch

    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    if kind == "cuda" and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return {
            "allocated_gb": torch.cuda.memory_allocated() / 1024**3,
            "reserved_gb": torch.cuda.memory_reserved() / 1024**3,
            "total_gb": total / 1024**3,
            "free_gb": free / 1024**3,
        }
    try:
        import resource

        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_rss_gb": rss_kb / 1024**2}
    except ImportError:  # Windows
        return {}


def cpu_count() -> int:
    return os.cpu_count() or 1


_ALLOCATOR_DONE = False


def configure_allocator() -> bool:
    """Tune glibc malloc for tensor-sized allocations; True when it was applied.

    Why: glibc returns every freed block over its mmap threshold to the system and maps it
    again on the next step, and gives each new thread its own arena. A CPU training loop frees
    and reallocates the same few-megabyte activations every step, so each step paid page faults
    for them, and the worker thread paid more than the main thread. Measured with
    bench/ui_latency.py's training loop on the 2-core machine: 55 -> 83 steps/s on the main
    thread, 42 -> 69 on a worker thread. One arena, and a 64 MB mmap/trim threshold (freed
    memory up to that size is kept for reuse instead of being handed back at once).
    Linux/glibc only; elsewhere, and when the user set MALLOC_* variables, nothing changes.
    """
    global _ALLOCATOR_DONE
    if _ALLOCATOR_DONE:
        return True
    import sys

    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    size = 64 * 1024 * 1024
    ok = all(mallopt(opt, val) == 1 for opt, val in (
        (m_arena_max, 1), (m_mmap_threshold, size), (m_trim_threshold, size)))
    _ALLOCATOR_DONE = ok
    return ok
