"""How the network is computed: device, precision (autocast), CPU threads and out-of-memory detection,
shared by the Python API, the CLI and the benchmark."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from stfuse.runtime import allowed_cpus, resolve_device

__all__ = [
    "PRECISIONS",
    "autocast",
    "configure_cpu_threads",
    "is_out_of_memory",
    "physical_cores",
    "resolve_device",
    "resolve_precision",
]

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_PRECISION_ALIASES = {"32": "fp32", "float32": "fp32", "bfloat16": "bf16", "16": "fp16", "float16": "fp16"}


def resolve_precision(precision: str, device: torch.device) -> str:
    """Normalise a precision name; fp16 autocast is a CUDA feature, bf16 works on CPU and recent GPUs."""
    name = _PRECISION_ALIASES.get(str(precision).lower(), str(precision).lower())
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA device; use --precision bf16 on the CPU")
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """Autocast for bf16/fp16; a no-op for fp32 (the network's output is cast back to fp32 by the caller)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once).

    Compute-bound convolution gains nothing from a core's second hyper-thread and loses to the contention,
    so torch should get one thread per physical core. Read from sysfs topology where available.
    """
    allowed = allowed_cpus()
    cores: set[tuple[str, str]] = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(allowed))
        cores.add((package, core))
    return max(1, len(cores) or len(allowed))


def configure_cpu_threads(workers: int, threads: int | None = None) -> int:
    """Give torch one thread per physical core, less one for the data loader when it has workers.

    Returns the thread count set. An explicit ``threads`` wins.
    """
    if threads is None:
        threads = physical_cores() - (1 if workers > 0 else 0)
    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    return threads


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM, or the CPU allocator failing on a huge activation."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in message.lower() or "can't allocate memory" in message
    )
