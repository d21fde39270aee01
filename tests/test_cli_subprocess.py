"""The installed ``stfuse`` console script as a user runs it, in a subprocess: exit statuses, the help, the
version, what ``--help`` imports, and a training run's output in a log (not a terminal).

``main([...])`` in-process (tests/test_cli.py) cannot see what the console script does with its return
value; these tests can.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stfuse import __version__
from stfuse.cli import LIGHTNING_COMMANDS, TOOL_COMMANDS

REPO = Path(__file__).resolve().parents[1]
STFUSE = Path(sys.executable).parent / "stfuse"
ENV = {**os.environ, "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
TINY_NET = json.dumps({"preset": "tiny"})
COMMANDS = [*LIGHTNING_COMMANDS, *TOOL_COMMANDS]
HEAVY = ("torch", "pytorch_lightning", "lightning", "torchmetrics", "wandb")


def stfuse(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(STFUSE), *args], env=ENV, capture_output=True, text=True, timeout=600, cwd=cwd)


def python_m_stfuse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stfuse", *args], env=ENV, capture_output=True, text=True, timeout=600
    )


# ---- help, version, start-up --------------------------------------------------------------------------
def test_help_lists_every_command_with_a_description():
    result = stfuse("--help")
    assert result.returncode == 0, result.stderr
    expected = {"fit", "validate", "test", "predict", "fuse", "evaluate", "export", "demo", "dock", "sweep"}
    assert expected <= set(COMMANDS)
    for command in expected:
        line = next((ln for ln in result.stdout.splitlines() if ln.strip().startswith(command + " ")), None)
        assert line is not None and len(line.split(None, 1)[1]) > 20, f"no one-line description for {command}"


def test_version_from_the_console_script_and_python_m():
    for result in (stfuse("--version"), python_m_stfuse("--version")):
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"stfuse {__version__}"


def test_unknown_command_is_one_line_with_a_suggestion():
    result = stfuse("evalute")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "stfuse: error: unknown command 'evalute'; did you mean 'evaluate'? (stfuse --help lists them)"
    )


_IMPORTS = """
import json, runpy, sys
sys.argv = ["stfuse", *sys.argv[1:]]
try:
    runpy.run_module("stfuse", run_name="__main__")
except SystemExit:
    pass
print("MODULES=" + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["fuse", "--help"], ["evaluate", "--help"], ["export", "--help"], ["demo", "--help"],
     ["fit", "--help"], ["test", "--help"], ["sweep", "--help"], ["dock", "--help"]],
    ids=lambda argv: " ".join(argv),
)  # fmt: skip
def test_help_imports_no_torch_lightning_torchmetrics_or_wandb(argv):
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS, *argv], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert "usage" in result.stdout or "stfuse" in result.stdout, result.stdout + result.stderr
    modules = json.loads(result.stderr.rsplit("MODULES=", 1)[1])
    loaded = sorted({name.split(".")[0] for name in modules} & set(HEAVY))
    assert not loaded, f"`stfuse {' '.join(argv)}` imported {loaded}"


# ---- training commands through the console script ----------------------------------------------------
def _mfif_args(root: Path, *extra: str) -> list[str]:
    return [
        "--config", str(REPO / "experiments" / "mfif.yaml"),
        "--trainer.default_root_dir", str(root),
        "--model.init_args.net", TINY_NET,
        "--data.init_args.crop_size", "32",
        "--data.init_args.batch_size", "2",
        "--data.init_args.num_workers", "0",
        "--data.init_args.samples_per_epoch", "8",
        "--data.init_args.val_samples", "2",
        "--data.init_args.val_crop_size", "32",
        "--trainer.limit_val_batches", "1",
        "--trainer.limit_test_batches", "1",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`stfuse fit` as a user runs it, with output to a pipe (as in a batch job's log)."""
    root = tmp_path_factory.mktemp("fit")
    workers = str((os.cpu_count() or 1) + 1)  # more than the machine has: capped
    args = _mfif_args(root, "--trainer.max_steps", "4", "--trainer.log_every_n_steps", "2")
    args[args.index("--data.init_args.num_workers") + 1] = workers
    return root, stfuse("fit", *args)


def test_fit_exits_0_and_writes_plain_progress_lines_to_a_log(trained):
    root, result = trained
    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "checkpoints" / "last.ckpt").is_file()
    output = result.stdout + result.stderr
    assert "STFuseCLI object" not in output
    assert "[train] epoch 1/40 · batch 2/4 · step 2" in output and "[val] epoch 1/40 · step 4" in output
    assert "\r" not in result.stdout, "no progress bar redraws in a log"
    assert "Tip:" not in output and "litlogger" not in output
    assert "/-2" not in output and "Epoch 0/" not in output
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert (
        f"data.init_args.num_workers: {(os.cpu_count() or 1) + 1} workers on {cpus} CPUs; using {cpus}"
        in output
    )


def test_validate_and_test_exit_0_through_python_m_and_the_console_script(trained):
    root, _ = trained
    ckpt = str(root / "checkpoints" / "last.ckpt")
    validate = python_m_stfuse("validate", *_mfif_args(root, "--ckpt_path", ckpt))
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert "val/psnr" in validate.stdout
    tested = stfuse("test", *_mfif_args(root, "--ckpt_path", ckpt))
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "test/psnr" in tested.stdout


# ---- tool commands through the console script --------------------------------------------------------
@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for modality in ("ir", "vi"):
            coarse = rng.random((8, 10)).astype(np.float32)
            image = cv2.resize(coarse, (80, 64), interpolation=cv2.INTER_CUBIC).clip(0, 1)
            (root / modality).mkdir(exist_ok=True)
            cv2.imwrite(str(root / modality / f"{name}.png"), (image * 255).astype(np.uint8))
    return root


def test_fuse_evaluate_and_export_exit_0_on_the_trained_checkpoint(trained, pairs, tmp_path):
    root, _ = trained
    ckpt = str(root / "checkpoints" / "last.ckpt")
    fused = stfuse("fuse", "--ckpt", ckpt, "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--out",
                   str(tmp_path / "fused"), "--quiet")  # fmt: skip
    assert fused.returncode == 0, fused.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "fused").iterdir()) == ["a.png", "b.png"]

    evaluated = stfuse("evaluate", "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--fused",
                       f"ours={tmp_path / 'fused'}", "--baseline", "avg", "--out", str(tmp_path / "eval"),
                       "--report", str(tmp_path / "eval" / "report.html"), "--no-progress")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "| ours |" in evaluated.stdout and (tmp_path / "eval" / "report.html").is_file()

    exported = stfuse("export", "--ckpt", ckpt, "--format", "onnx", "--out", str(tmp_path / "net.onnx"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    from stfuse.inference.export import load_exported

    fuse_exported = load_exported(tmp_path / "net.onnx")
    assert fuse_exported(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_export_to_torchscript_exits_2_as_an_unknown_format(tmp_path):
    for run in (stfuse, python_m_stfuse):
        result = run("export", "--format", "torchscript", "--out", str(tmp_path / "net.pt"))
        assert result.returncode == 2
        assert result.stdout == "" and "Traceback" not in result.stderr
        last = result.stderr.splitlines()[-1]  # argparse's usage, then its one error line
        assert last.startswith("stfuse export: error: argument --format: invalid choice: 'torchscript'")
        assert "onnx" in last.rpartition("choose from")[2]
    assert not (tmp_path / "net.pt").exists()


def test_export_format_names_match_the_exporter():
    from stfuse.inference.export import EXPORT_FORMATS as exporter_formats
    from stfuse.inference.options import EXPORT_FORMATS

    assert tuple(EXPORT_FORMATS) == tuple(exporter_formats)


def test_a_root_too_small_for_the_stratified_split_is_one_line_naming_it(data_root, tmp_path) -> None:
    """The cpu budget holds out pairs of every root; a 1-pair root beside RoadScene cannot give one and train."""
    small = tmp_path / "small"
    for sub in ("ir", "vi"):
        (small / sub).mkdir(parents=True)
        for name in sorted((data_root / "train" / "ivif" / "msrs" / sub).iterdir())[:1]:
            (small / sub / name.name).write_bytes(name.read_bytes())
    roots = f"[{data_root / 'train' / 'ivif' / 'roadscene'}, {small}]"
    result = stfuse("fit", "--config", str(REPO / "experiments" / "ivif.yaml"),
                    "--config", str(REPO / "experiments" / "budgets" / "cpu" / "ivif.yaml"),
                    "--model.init_args.transfer", "false", "--model.init_args.guidance", "none",
                    "--data.init_args.ivif.init_args.train_roots", roots,
                    "--trainer.default_root_dir", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "cannot hold out 4 pair(s) of each root" in message and f"{small}: 1 pairs" in message, message
    assert list((tmp_path / "run").rglob("*.ckpt")) == []


def test_a_selection_only_guidance_option_on_the_recipe_is_one_line_saying_what_to_set(trained, tmp_path):
    """The recipe's L_g is `output_grad`; the selection-map options (documented for the earlier probes) need
    `guidance: selection`, and `stfuse fit` says so before training, exit 2, nothing written."""
    root, _ = trained
    source = str(root / "checkpoints" / "last.ckpt")
    for option, value in (("guidance_detail_tau", "0.05"), ("guidance_levels", "[0, 1]"),
                          ("guidance_centering", "weights")):  # fmt: skip
        run = tmp_path / option
        result = stfuse("fit", "--config", str(REPO / "experiments" / "ivif.yaml"),
                        "--model.init_args.source_ckpt", source, f"--model.init_args.{option}", value,
                        "--trainer.default_root_dir", str(run))  # fmt: skip
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        message = result.stderr.strip().splitlines()[-1]
        assert f"a stage's {option}" in message and "not 'output_grad'" in message, message
        assert "guidance: selection" in message, message
        assert not run.exists()
