"""Fault tolerance: a training run killed with SIGKILL resumes from last.ckpt on rerun and ends with exactly
the weights of an uninterrupted run (deterministic CPU settings), whether it was killed in its second epoch
(epoch-end checkpoint) or before its first epoch ended (IntervalCheckpoint's step checkpoint)."""

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
TINY_NET = json.dumps({"preset": "tiny"})
STEPS_PER_EPOCH = 6
EPOCHS = 3
# A step checkpoint every 2 steps; the YAML's time-based one (5 minutes) never fires in these short runs.
INTERVAL = [
    "--trainer.callbacks+=stfuse.callbacks.IntervalCheckpoint",
    "--trainer.callbacks.every_n_train_steps=2",
]


def _command(root: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "stfuse", "fit", "--config", str(REPO / "experiments" / "mfif.yaml"),
        "--trainer.default_root_dir", str(root),
        "--trainer.max_epochs", str(EPOCHS),
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
    pythonpath = os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}
    return subprocess.run(_command(root, list(extra)), env=env, capture_output=True, text=True, timeout=600)


def _weights(root: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == EPOCHS * STEPS_PER_EPOCH
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}


def _assert_same_weights(expected_root: Path, actual_root: Path) -> None:
    expected, actual = _weights(expected_root), _weights(actual_root)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), f"{key} differs after resume"


def _kill_at(step: int) -> list[str]:
    return ["--trainer.callbacks+=sigkill_callback.SigkillAtStep", f"--trainer.callbacks.step={step}"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run, with the same callbacks as the interrupted ones (saving draws no randomness)."""
    root = tmp_path_factory.mktemp("reference")
    result = _run(root, INTERVAL)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted_run(reference, tmp_path):
    interrupted = tmp_path / "interrupted"
    kill_step = STEPS_PER_EPOCH + STEPS_PER_EPOCH // 2  # the middle of the second epoch
    killed = _run(interrupted, _kill_at(kill_step))  # no step checkpoint: the epoch-end one is what remains
    assert killed.returncode == -signal.SIGKILL, (
        f"expected SIGKILL, got {killed.returncode}: {killed.stderr[-2000:]}"
    )
    saved = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert saved["global_step"] == STEPS_PER_EPOCH, "last.ckpt should hold the end of the first epoch"

    resumed = _run(interrupted, INTERVAL)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout + resumed.stderr
    _assert_same_weights(reference, interrupted)


@pytest.mark.slow
def test_sigkill_before_the_first_epoch_ends_resumes_from_the_step_checkpoint(reference, tmp_path):
    interrupted = tmp_path / "interrupted"
    killed = _run(interrupted, [*INTERVAL, *_kill_at(5)])  # step 4 is saved, step 5 is lost
    assert killed.returncode == -signal.SIGKILL, (
        f"expected SIGKILL, got {killed.returncode}: {killed.stderr[-2000:]}"
    )
    saved = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert saved["global_step"] == 4 and saved["epoch"] == 0, (
        "last.ckpt should hold step 4 of the first epoch"
    )
    assert not list((interrupted / "checkpoints").glob("last-v*.ckpt")), "one last.ckpt, not a versioned copy"

    resumed = _run(interrupted, INTERVAL)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert "Resuming from" in output and "skipped the 4 batches of epoch 1" in output
    _assert_same_weights(reference, interrupted)
    # The epoch-end checkpoints still happen: the best-* file of the monitored metric exists.
    assert list((interrupted / "checkpoints").glob("best-*.ckpt"))


@pytest.mark.slow
@pytest.mark.parametrize("hpc_is_newer", [True, False], ids=["hpc-newer", "last-newer"])
def test_auto_resume_prefers_the_newer_of_last_ckpt_and_slurm_hpc_ckpt(reference, tmp_path, hpc_is_newer):
    import shutil

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last, hpc = run / "checkpoints" / "last.ckpt", run / "hpc_ckpt_2.ckpt"
    shutil.copy(reference / "checkpoints" / "last.ckpt", last)
    shutil.copy(reference / "checkpoints" / "last.ckpt", hpc)
    older, newer = (last, hpc) if hpc_is_newer else (hpc, last)
    os.utime(older, (1_000_000_000, 1_000_000_000))
    result = _run(run)  # the checkpoints already hold the final epoch: nothing left to train
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from {newer}" in result.stdout + result.stderr


# ---- a finished run's last.ckpt is its final step ------------------------------------------------------
FINAL_STEP = STEPS_PER_EPOCH + 4  # max_steps ends the run inside the second epoch


def _global_step(root: Path) -> int:
    return int(
        torch.load(root / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]
    )


@pytest.mark.slow
def test_last_ckpt_holds_the_final_step_with_and_without_an_interruption(tmp_path):
    steps = ["--trainer.max_steps", str(FINAL_STEP)]
    straight = tmp_path / "straight"
    result = _run(straight, [*steps, *INTERVAL])  # the same callbacks as the interrupted run
    assert result.returncode == 0, result.stderr[-3000:]
    assert _global_step(straight) == FINAL_STEP, "last.ckpt misses the steps after the last epoch end"

    interrupted = tmp_path / "interrupted"
    killed = _run(interrupted, [*steps, *INTERVAL, *_kill_at(FINAL_STEP - 1)])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _global_step(interrupted) == FINAL_STEP - 2  # the step checkpoint before the kill
    resumed = _run(interrupted, [*steps, *INTERVAL])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout + resumed.stderr
    assert _global_step(interrupted) == FINAL_STEP

    def weights(root: Path) -> dict[str, torch.Tensor]:
        state = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
        return {k: v for k, v in state["state_dict"].items() if k.startswith("net.")}

    expected, actual = weights(straight), weights(interrupted)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected), "the resumed run ends elsewhere"
