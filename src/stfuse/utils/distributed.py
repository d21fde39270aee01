"""Small helpers for code that must behave the same on one process and under DDP.

Lightning owns the process group; these helpers only ask whether one exists. They are safe to call
before it is initialised (they then describe a single process), so data modules and callbacks can use
them without knowing how the run was launched (``ddp_spawn`` in tests, ``srun`` under SLURM,
``torchrun``, or Lightning's own subprocess launcher).
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def global_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj`` in rank order (``[obj]`` on one process).

    A collective: every rank must call it, which is why callers gather *before* deciding that only
    rank 0 writes.
    """
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def launch_environment() -> dict[str, Any]:
    """How this process was launched, for run metadata (W&B config, logs).

    Reads the variables that SLURM and torchrun set; none of them is required. Recording them makes a
    run traceable to its cluster job (``slurm_job_id``) and shows the layout it actually ran with.
    """
    env = os.environ
    if "SLURM_JOB_ID" in env and "SLURM_NTASKS" in env:
        launcher = "slurm"
    elif "TORCHELASTIC_RUN_ID" in env or "TORCHELASTIC_RESTART_COUNT" in env:
        launcher = "torchrun"
    elif "LOCAL_RANK" in env:
        launcher = "lightning-subprocess"
    else:
        launcher = "local"
    info: dict[str, Any] = {"launcher": launcher, "world_size": world_size()}
    for key, name in (
        ("slurm_job_id", "SLURM_JOB_ID"),
        ("slurm_job_name", "SLURM_JOB_NAME"),
        ("slurm_nodes", "SLURM_JOB_NUM_NODES"),
        ("slurm_ntasks_per_node", "SLURM_NTASKS_PER_NODE"),
        ("slurm_nodelist", "SLURM_JOB_NODELIST"),
        ("master_addr", "MASTER_ADDR"),
    ):
        if env.get(name):
            info[key] = env[name]
    return info


__all__ = ["gather_objects", "global_rank", "is_distributed", "launch_environment", "world_size"]
