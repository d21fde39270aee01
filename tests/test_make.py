"""The two-stage training path users run on clusters, through the Makefile: `make train-mfif && make
transfer-ivif` on a tiny budget must exit 0 (each target succeeds, so the chain reaches the second stage)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
TINY_NET = json.dumps({"preset": "tiny"})
COMMON = ["--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1"]
MFIF_ARGS = [
    *COMMON, "--model.init_args.net", TINY_NET, "--data.init_args.crop_size", "32", "--data.init_args.batch_size", "2",
    "--data.init_args.num_workers", "0", "--data.init_args.samples_per_epoch", "4", "--data.init_args.val_samples", "2",
    "--data.init_args.val_crop_size", "32",
]  # fmt: skip
IVIF_ARGS = [
    *COMMON, "--model.init_args.val_metrics", '["EN", "SF"]',
    "--data.init_args.ivif.init_args.crop_size", "32", "--data.init_args.ivif.init_args.batch_size", "2",
    "--data.init_args.ivif.init_args.num_workers", "0", "--data.init_args.ivif.init_args.val_size", "2",
    "--data.init_args.ivif.init_args.default_train_size", "4", "--data.init_args.ivif.init_args.default_image_size", "40",
    "--data.init_args.replay.init_args.crop_size", "32", "--data.init_args.replay.init_args.batch_size", "2",
    "--data.init_args.replay.init_args.num_workers", "0", "--data.init_args.replay.init_args.samples_per_epoch", "4",
]  # fmt: skip


def _make(target: str, out: Path, args: list[str]) -> str:
    # -o: the installed venv counts as up to date (the test must not reinstall); DATA_ROOT nowhere: the
    # embedded synthetic data, as on a fresh clone without the real data sets.
    return shlex.join([
        "make", "-C", str(REPO), "-o", f"{VENV}/.installed", target, f"VENV={VENV}", f"OUT={out}",
        f"DATA_ROOT={out / 'no_data'}", "GPUS=0", f"ARGS={shlex.join(args)}",
    ])  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_train_mfif_then_transfer_ivif_chain_exits_0(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    chain = f"{_make('train-mfif', tmp_path, MFIF_ARGS)} && {_make('transfer-ivif', tmp_path, IVIF_ARGS)}"
    result = subprocess.run(["bash", "-c", chain], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Error" not in result.stderr.replace("Error 0", "")
    assert (tmp_path / "mfif" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "ivif" / "checkpoints" / "last.ckpt").is_file(), "the chain reached the second stage"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_transfer_ivif_takes_the_target_seed_as_reproduce_seeds_its_runs(tmp_path):
    """SEED=N sets the target stage's seed, its crop stream's and its replay stream's (N + 1), as
    experiments/reproduce.py seeds its runs (the packaged weights' record names their seed); a bad SEED stops
    before anything trains."""
    source = tmp_path / "source.ckpt"
    source.write_bytes(b"")

    def make(*extra: str, dry: bool = True) -> subprocess.CompletedProcess:
        command = shlex.split(_make("transfer-ivif", tmp_path, [])) + [f"SOURCE_CKPT={source}", *extra]
        return subprocess.run(command[:1] + (["-n"] if dry else []) + command[1:], capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    seeded = make("SEED=3")
    assert seeded.returncode == 0, seeded.stderr
    assert ("--seed_everything 3 --data.init_args.ivif.init_args.seed 3 --data.init_args.replay.init_args.seed 4"
            in seeded.stdout)  # fmt: skip
    plain = make()
    assert plain.returncode == 0 and "--seed_everything" not in plain.stdout  # ivif.yaml's seeds
    bad = make("SEED=1x", dry=False)
    assert bad.returncode == 2 and "SEED must be a non-negative integer, got '1x'" in bad.stdout
    assert not (tmp_path / "ivif").exists()
