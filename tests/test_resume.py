"""Fault tolerance: a training run killed with SIGKILL mid-epoch resumes from last.ckpt on rerun and ends
with exactly the weights of an uninterrupted run (deterministic CPU settings)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_NET = json.dumps({"preset": "small", "channels": 8, "num_blocks": 1, "heads": 2})
STEPS_PER_EPOCH = 6


def _command(root: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "stfuse", "fit", "--config", str(REPO / "experiments" / "mfif.yaml"),
        "--trainer.default_root_dir", str(root),
        "--trainer.max_epochs", "3",
        "--trainer.deterministic", "true",
        "--trainer.enable_progress_bar", "false",
        "--trainer.limit_val_batches", "1",
        "--model.init_args.net", TINY_NET,
        "--model.init_args.warmup_steps", "2",
        "--data.init_args.crop_size", "32",
        "--data.init_args.batch_size", "2",
        "--data.init_args.num_workers", "2",
        "--data.init_args.samples_per_epoch", str(2 * STEPS_PER_EPOCH),
        "--data.init_args.val_samples", "2",
        "--data.init_args.val_crop_size", "32",
        *extra,
    ]  # fmt: skip


def _run(root: Path, extra: list[str] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(_command(root, list(extra)), env=env, capture_output=True, text=True, timeout=600)


def _weights(root: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 3 * STEPS_PER_EPOCH
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted_run(tmp_path):
    reference = _run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]

    interrupted = tmp_path / "interrupted"
    kill_step = STEPS_PER_EPOCH + STEPS_PER_EPOCH // 2  # the middle of the second epoch
    killed = _run(interrupted, ["--trainer.callbacks+=sigkill_callback.SigkillAtStep",
                                f"--trainer.callbacks.step={kill_step}"])  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, f"expected SIGKILL, got {killed.returncode}: {killed.stderr[-2000:]}"
    saved = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert saved["global_step"] == STEPS_PER_EPOCH, "last.ckpt should hold the end of the first epoch"

    resumed = _run(interrupted)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout + resumed.stderr

    expected, actual = _weights(tmp_path / "reference"), _weights(interrupted)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), f"{key} differs after resume"
