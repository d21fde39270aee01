"""Where the data are, which device runs and which CPUs are ours: the lookups every command and script shares.

Import-light on purpose (torch loads only when a device is resolved), so scripts can call
:func:`find_data_root` before their heavy imports and ``--help`` stays instant.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: the environment variable that names the data root
DATA_ENV = "STFUSE_DATA"

_CHECKOUT = Path(__file__).resolve().parents[2]  # the repository root when running from a checkout


def data_root_candidates() -> list[Path]:
    """``$STFUSE_DATA`` (when set), then ``../shared/data`` beside the checkout and beside the working folder."""
    candidates = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    for base in (_CHECKOUT, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def find_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: ``explicit`` when given (a ``--data-root``), else the first existing candidate of
    :func:`data_root_candidates`, else the first candidate, so that a message can name where data belong
    (check ``is_dir()`` where absence matters)."""
    if explicit is not None and str(explicit):
        return Path(explicit)
    candidates = data_root_candidates()
    return next((candidate for candidate in candidates if candidate.is_dir()), candidates[0])


#: the device names every command and the Python API accept (see :func:`resolve_device`)
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The one device parser of the commands (``--device``) and the Python API (``device=``).

    ``"auto"``/None picks CUDA when present, else the CPU. A device that is unknown (``gpu0``, ``''``), not
    present on this machine (``cuda`` without CUDA, ``cuda:3`` on a one-GPU machine, ``mps`` off a Mac) or
    holding no data (``meta``) is a ``ValueError`` naming it, never a silent CPU or a failure deep in torch.
    """
    import torch

    if device is None:
        device = "auto"
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = re.fullmatch(r"(cpu|cuda|mps|meta)(?::(\d+))?", text)
    if match is None:
        shown = repr(str(device)) if text else "'' (empty)"
        raise ValueError(f"unknown device {shown}; use {DEVICE_CHOICES}")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "meta":
        raise ValueError(
            f"device {str(device)!r} holds no data, so nothing can run on it; use {DEVICE_CHOICES}"
        )
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"device {str(device)!r} requested but MPS (Apple-silicon GPU) is not available on this machine"
            )
        return torch.device(text)
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise ValueError(
            f"device {str(device)!r} requested but this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})"
        )
    return torch.device(text)


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on: its affinity mask (e.g. a SLURM allocation), else every CPU."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return set(range(os.cpu_count() or 1))


def available_cpus() -> int:
    """How many CPUs this process may run on (see :func:`allowed_cpus`), at least 1."""
    return max(1, len(allowed_cpus()))


__all__ = [
    "DATA_ENV",
    "DEVICE_CHOICES",
    "allowed_cpus",
    "available_cpus",
    "data_root_candidates",
    "find_data_root",
    "resolve_device",
]
