"""Shared fixtures: the real-data root and deterministic CPU settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from stfuse import runtime

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

REPO_ROOT = Path(__file__).resolve().parents[1]
# benchmarks/numpy_reference.py, the independent NumPy oracle of the metrics, is a test and benchmark aid,
# not part of the package: the tests import it from its folder.
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


def find_data_root() -> Path | None:
    """``$STFUSE_DATA`` if set, else ``../shared/data`` beside the checkout (stfuse.runtime), else None."""
    root = runtime.find_data_root()
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real public images. Skipped with a reason when absent; a failure when ``CI`` is set."""
    root = find_data_root()
    if root is None:
        reason = "real data not found: set $STFUSE_DATA or place it at ../shared/data"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tests use tiny tensors on 2-core machines, where one torch thread is several times faster than two
    (no fork/join overhead, no contention with DataLoader workers or a second pytest process). Session
    scope, so module-scoped training fixtures run under it too."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _restore_rank_zero():
    """A Trainer built under a simulated cluster rank (tests/test_slurm.py) sets Lightning's process-wide
    ``rank_zero_only.rank``; without a reset, later tests would think they are not rank 0 and their
    loggers would silently write nothing."""
    from lightning_utilities.core.rank_zero import rank_zero_only

    previous = getattr(rank_zero_only, "rank", 0)
    yield
    rank_zero_only.rank = previous
