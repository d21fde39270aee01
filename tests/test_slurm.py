"""Multi-node launch: the sbatch scripts, the make targets they call, and Lightning's view of the ranks.

No cluster here, so the chain is checked link by link: the sbatch script (with stand-in ``srun`` and
``make`` that record their arguments) starts ``make train-mfif GPUS=8 NODES=2`` on every task; ``make -n``
shows the ``stfuse fit`` command that target runs; and that command, parsed by our LightningCLI under
the variables ``srun`` (or ``torchrun``) sets for one task, gives a Trainer with the right cluster
environment, world size and ranks.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

from stfuse.lightning_cli import STFuseCLI
from stfuse.stages.base import FusionStageBase
from stfuse.utils.distributed import launch_environment

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "experiments" / "slurm"
SCRIPTS = {"train_mfif.sbatch": "train-mfif", "transfer_ivif.sbatch": "transfer-ivif"}


def _sbatch_options(path: Path) -> dict[str, str]:
    options = {}
    for line in path.read_text().splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --") :].partition("=")
            options[key.strip()] = value.strip()
    return options


@pytest.mark.parametrize("script", SCRIPTS)
def test_sbatch_asks_one_task_per_gpu_and_requeues(script):
    path = SLURM / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    options = _sbatch_options(path)
    assert options["ntasks-per-node"] == options["gpus-per-node"], "Lightning needs one SLURM task per GPU"
    assert options["signal"].startswith("SIGUSR1@") and "requeue" in options
    assert "%j" in options["output"]


def _fake_tools(tmp_path: Path) -> Path:
    """``srun`` and ``make`` that append their argv (one JSON-ish line) to calls.txt and succeed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "make"):
        script = bin_dir / tool
        script.write_text(
            f'#!/bin/bash\nprintf "{tool}" >> "{tmp_path}/calls.txt"\nprintf " %q" "$@" >> "{tmp_path}/calls.txt"\necho >> "{tmp_path}/calls.txt"\n'
        )
        script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("script,target", SCRIPTS.items())
def test_sbatch_script_runs_the_make_target_on_every_task(script, target, tmp_path):
    bin_dir = _fake_tools(tmp_path)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "SLURM_SUBMIT_DIR": str(REPO),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "stfuse-test",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NTASKS_PER_NODE": "8(x2)",
        "SLURM_CPUS_PER_TASK": "6",
        "STFUSE_DATA": "/data/stfuse",
    }
    done = subprocess.run(["bash", str(SLURM / script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = [shlex.split(line) for line in (tmp_path / "calls.txt").read_text().splitlines()]
    assert calls[0] == ["make", "--no-print-directory", "install"], "install once before srun"
    srun = calls[1]
    assert srun[:4] == ["srun", "--kill-on-bad-exit=1", "make", "--no-print-directory"]
    assert srun[4] == target
    assert {"GPUS=8", "NODES=2", "DATA_ROOT=/data/stfuse"} <= set(srun[5:])
    assert len(calls) == 2


def _make_fit_command(target: str, **variables: str) -> list[str]:
    """The `stfuse fit ...` argv that `make <target>` runs (from make's dry run)."""
    assignments = [f"{k}={v}" for k, v in variables.items()]
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", target, *assignments],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    text = done.stdout.replace("\\\n", " ")
    line = next(line for line in text.splitlines() if "stfuse fit" in line)
    argv = shlex.split(line)
    return argv[argv.index("fit") + 1 :]


def _trainer_for(argv: list[str], monkeypatch, environ: dict[str, str]) -> pl.Trainer:
    for key in [
        k
        for k in os.environ
        if k.startswith(("SLURM_", "TORCHELASTIC_")) or k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    ]:
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    # No GPUs here: the same layout on CPU devices (the rank logic does not depend on the accelerator).
    cli = STFuseCLI(
        model_class=FusionStageBase,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        run=False,
        args=[*argv, "--trainer.accelerator", "cpu", "--trainer.precision", "32-true"],
    )
    return cli.trainer


def test_make_train_mfif_gpus8_nodes2_gives_lightning_the_slurm_ranks(monkeypatch, tmp_path):
    argv = _make_fit_command(
        "train-mfif", GPUS="8", NODES="2", DATA_ROOT=str(tmp_path / "none"), OUT=str(tmp_path)
    )
    assert "--config" in argv and "experiments/trainer/ddp.yaml" in argv
    assert (
        argv[argv.index("--trainer.devices") + 1] == "8"
        and argv[argv.index("--trainer.num_nodes") + 1] == "2"
    )
    slurm_task_9 = {
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "stfuse-mfif", "SLURM_NTASKS": "16", "SLURM_NTASKS_PER_NODE": "8",
        "SLURM_NNODES": "2", "SLURM_JOB_NUM_NODES": "2", "SLURM_NODELIST": "gpu[07-08]", "SLURM_PROCID": "9",
        "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
    }  # fmt: skip
    trainer = _trainer_for(argv, monkeypatch, slurm_task_9)
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert (trainer.world_size, trainer.global_rank, trainer.local_rank, trainer.node_rank) == (16, 9, 1, 1)
    assert environment.main_address == "gpu07"
    assert type(trainer.strategy).__name__ == "DDPStrategy"
    assert launch_environment()["launcher"] == "slurm" and launch_environment()["slurm_job_id"] == "4242"


def test_slurm_layout_mismatch_is_refused(monkeypatch, tmp_path):
    """--ntasks-per-node 4 with 8 devices per node would hang at the first collective; Lightning refuses
    when it launches (the check below is the one its launcher runs)."""
    argv = _make_fit_command(
        "train-mfif", GPUS="8", NODES="2", DATA_ROOT=str(tmp_path / "none"), OUT=str(tmp_path)
    )
    wrong = {
        "SLURM_JOB_ID": "1", "SLURM_JOB_NAME": "stfuse-mfif", "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_NNODES": "2", "SLURM_NODELIST": "gpu[07-08]", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }  # fmt: skip
    trainer = _trainer_for(argv, monkeypatch, wrong)
    with pytest.raises(ValueError, match="ntasks-per-node=4"):
        trainer.strategy.cluster_environment.validate_settings(
            num_devices=trainer.num_devices, num_nodes=trainer.num_nodes
        )


def test_torchrun_ranks_reach_lightning(monkeypatch, tmp_path):
    """docs/cluster.md: torchrun --nnodes 2 --nproc-per-node 8 -m stfuse fit ... (rank 11 = node 1, local 3)."""
    argv = _make_fit_command(
        "train-mfif", GPUS="8", NODES="2", DATA_ROOT=str(tmp_path / "none"), OUT=str(tmp_path)
    )
    torchrun_rank_11 = {
        "TORCHELASTIC_RUN_ID": "stfuse-mfif", "RANK": "11", "LOCAL_RANK": "3", "WORLD_SIZE": "16", "GROUP_RANK": "1",
        "LOCAL_WORLD_SIZE": "8", "MASTER_ADDR": "head-node", "MASTER_PORT": "29500",
    }  # fmt: skip
    trainer = _trainer_for(argv, monkeypatch, torchrun_rank_11)
    assert isinstance(trainer.strategy.cluster_environment, TorchElasticEnvironment)
    assert (trainer.world_size, trainer.global_rank, trainer.local_rank, trainer.node_rank) == (16, 11, 3, 1)
    assert launch_environment()["launcher"] == "torchrun"
