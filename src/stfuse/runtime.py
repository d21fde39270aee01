"""Where the data are, which device runs and how many CPUs: the lookups every command and script shares.

Import-light on purpose (torch loads only when a device is resolved), so scripts can call
:func:`find_data_root` before their heavy imports and ``--help`` stays instant.
"""

from __future__ import annotations

import os
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


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a SLURM allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None picks CUDA when present; an unavailable CUDA device is an error, not a silent CPU."""
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    return resolved


__all__ = ["DATA_ENV", "available_cpus", "data_root_candidates", "find_data_root", "resolve_device"]
