"""Issue 21: nothing silent. Each bad input a new user tried gets one line naming the option or file and the
problem (exit status 2, no traceback, nothing written), through the installed ``stfuse`` entry point or
``make`` where the user meets it; the Python API raises one ``ValueError``/``TypeError`` naming the argument."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stfuse.inference import Fuser
from stfuse.models import PRESETS, STFuseNet
from stfuse.models.checkpoint import CheckpointError, load_network, save_network

REPO = Path(__file__).resolve().parents[1]
STFUSE = Path(sys.executable).parent / "stfuse"
VENV = Path(sys.executable).parent.parent
ENV = {**os.environ, "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
TINY = {"preset": "tiny"}


def stfuse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(STFUSE), *args], env=ENV, capture_output=True, text=True, timeout=300)


def error_line(result: subprocess.CompletedProcess, command: str) -> str:
    """The run failed on its input: exit 2, no traceback, and the message is its last stderr line."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"stfuse {command}: error: "), result.stderr[-2000:]
    return last


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for modality in ("ir", "vi"):
        (root / modality).mkdir()
        for name in ("a", "b"):
            cv2.imwrite(str(root / modality / f"{name}.png"), (rng.random((24, 32)) * 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def nan_weights(tmp_path_factory) -> Path:
    net = STFuseNet(**TINY)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    return save_network(net, tmp_path_factory.mktemp("nan") / "nan.safetensors")


# ---- fit ------------------------------------------------------------------------------------------------
def _fit_args(root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(REPO / "experiments" / "mfif.yaml"),
        "--trainer.default_root_dir", str(root), "--model.init_args.net", json.dumps(TINY),
        "--data.init_args.crop_size", "32", "--data.init_args.batch_size", "2",
        "--data.init_args.num_workers", "0", "--data.init_args.samples_per_epoch", "4",
        "--data.init_args.val_samples", "2", "--data.init_args.val_crop_size", "32", "--trainer.max_steps", "2",
        *extra,
    ]  # fmt: skip


FIT_CASES = {
    "max_steps": (["--trainer.max_steps", "-5"], "trainer: `max_steps` must be a non-negative integer"),
    "crop_size": (
        ["--data.init_args.crop_size", "-8"],
        "data (data_modules.MFIFDataModule): need crop_size >= 8",
    ),
    "lr": (["--model.init_args.lr", "-1"], "model (stfuse.stages.MFIFStage): lr must be a finite number > 0"),
}
if not torch.cuda.is_available():
    FIT_CASES["gpu"] = (
        ["--trainer.accelerator", "gpu"],
        "trainer.accelerator 'gpu': No supported gpu backend",
    )


def console(argv: list[str], capsys) -> tuple[int, str]:
    """The console script's own function in-process (one Lightning import for all cases): status, stderr."""
    from stfuse.cli import console as run

    status = run(argv)
    return status, capsys.readouterr().err


def test_fit_with_a_bad_setting_stops_with_one_line_through_the_console_script(tmp_path):
    extra, expected = FIT_CASES["max_steps"]
    assert expected in error_line(stfuse(*_fit_args(tmp_path / "run", *extra)), "fit")


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_with_a_bad_setting_stops_with_one_line_before_any_work(case, tmp_path, capsys):
    extra, expected = FIT_CASES[case]
    status, err = console(_fit_args(tmp_path / "run", *extra), capsys)
    assert status == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"stfuse fit: error: {expected}"), err[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


def _fake_training_checkpoint(path: Path, class_path: str, net: dict) -> Path:
    """What check_training_checkpoint and Lightning's hparams override read: no training needed."""
    config = dict(STFuseNet(**net).config)
    torch.save(
        {
            "state_dict": {"net.x": torch.zeros(1)},
            "optimizer_states": [],
            "global_step": 3,
            "hyper_parameters": {"_class_path": class_path, "net": config},
        },
        path,
    )
    return path


def test_fit_refuses_a_checkpoint_of_another_network_than_the_config(tmp_path):
    ckpt = _fake_training_checkpoint(tmp_path / "small.ckpt", "stfuse.stages.MFIFStage", {"preset": "small"})
    line = error_line(stfuse(*_fit_args(tmp_path / "run", "--ckpt_path", str(ckpt))), "fit")
    assert f"--ckpt_path '{ckpt}': its network differs from the config's model.init_args.net" in line
    assert "preset: checkpoint 'small', config 'tiny'" in line


def test_resuming_the_ivif_stage_from_an_mfif_checkpoint_names_both_stages(tmp_path):
    ckpt = _fake_training_checkpoint(tmp_path / "mfif.ckpt", "stfuse.stages.MFIFStage", TINY)
    result = stfuse("fit", "--config", str(REPO / "experiments" / "ivif.yaml"), "--trainer.default_root_dir",
                    str(tmp_path / "run"), "--ckpt_path", str(ckpt))  # fmt: skip
    line = error_line(result, "fit")
    assert "a checkpoint of MFIFStage" in line and "the config trains IVIFTransferStage" in line
    assert "--model.init_args.source_ckpt" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [("a: [1\n", "not valid YAML: "), ("", "holds nothing, not a mapping"), (None, "file not found")],
    ids=["invalid", "empty", "missing"],
)
def test_a_bad_config_file_is_named_in_one_line(tmp_path, capsys, content, expected):
    config = tmp_path / "run.yaml"
    if content is not None:
        config.write_text(content)
    if content == "a: [1\n":  # the console script as a user runs it, once
        line = error_line(stfuse("fit", "--config", str(config)), "fit")
    else:
        status, err = console(["fit", "--config", str(config)], capsys)
        assert status == 2
        line = err.strip().splitlines()[-1]
    assert line.startswith(f"stfuse fit: error: --config '{config}': {expected}")


# ---- one device parser ----------------------------------------------------------------------------------
BAD_DEVICES = {"gpu0": "unknown device 'gpu0'", "": "unknown device '' (empty)", "mps": "MPS"}
if not torch.cuda.is_available():
    BAD_DEVICES["cuda"] = "CUDA is not available"


@pytest.mark.parametrize("device", list(BAD_DEVICES), ids=lambda d: d or "empty")
def test_fuse_and_evaluate_refuse_a_bad_device_with_one_line(pairs, tmp_path, device):
    if device == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    fused = stfuse("fuse", "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--out", str(tmp_path / "f"),
                   "--quiet", "--device", device)  # fmt: skip
    assert BAD_DEVICES[device] in error_line(fused, "fuse")
    evaluated = stfuse("evaluate", "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--baseline", "avg",
                       "--out", str(tmp_path / "e"), "--no-progress", "--device", device)  # fmt: skip
    assert error_line(evaluated, "evaluate").startswith("stfuse evaluate: error: --device: ")
    assert not (tmp_path / "f").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize("device", ["mps", torch.device("meta"), "gpu0", "", "cuda:99"])
def test_fuser_from_checkpoint_refuses_an_unusable_device_with_a_value_error(device):
    if device == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match="device"):
        Fuser.from_checkpoint(device=device)


# ---- non-finite weights and inputs ----------------------------------------------------------------------
def test_nan_weights_are_refused_at_load_naming_the_file(nan_weights, pairs, tmp_path):
    with pytest.raises(CheckpointError, match="hold NaN or infinite values"):
        load_network(nan_weights)
    fused = stfuse("fuse", "--ckpt", str(nan_weights), "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"),
                   "--out", str(tmp_path / "f"), "--quiet")  # fmt: skip
    assert f"{nan_weights}: " in error_line(fused, "fuse") and "weight tensors hold NaN" in fused.stderr
    exported = stfuse("export", "--ckpt", str(nan_weights), "--out", str(tmp_path / "n.onnx"))
    assert "NaN or infinite" in error_line(exported, "export")
    assert not (tmp_path / "f").exists() and not (tmp_path / "n.onnx").exists()


def test_fuser_refuses_nan_0d_and_meta_inputs_naming_the_argument():
    fuser = Fuser(STFuseNet(**TINY))
    with pytest.raises(ValueError, match=r"^ir: image contains NaN"):
        fuser.fuse_luminance(torch.full((1, 1, 4, 4), float("nan")), torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"^vi_y: image contains NaN or infinite"):
        fuser.fuse_luminance(torch.rand(1, 1, 4, 4), torch.full((1, 1, 4, 4), float("inf")))
    with pytest.raises(ValueError, match=r"^ir: expected an H×W"):
        fuser.fuse(np.array(0.5), np.array(0.5))
    with pytest.raises(ValueError, match=r"^ir: a meta tensor holds no pixels"):
        fuser.fuse(torch.empty(8, 8, device="meta"), torch.rand(8, 8))


# ---- silently accepted before ---------------------------------------------------------------------------
def test_export_refuses_an_unknown_opset_a_nan_atol_and_a_folder_before_the_work(tmp_path):
    line = error_line(stfuse("export", "--out", str(tmp_path / "x.onnx"), "--opset", "999"), "export")
    assert "--opset: ONNX opset 999" in line
    assert "argument --atol: expected a finite number, got 'nan'" in error_line(
        stfuse("export", "--out", str(tmp_path / "x.onnx"), "--atol", "nan"), "export"
    )
    line = error_line(stfuse("export", "--out", str(tmp_path)), "export")
    assert f"--out '{tmp_path}' is a folder" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "option", [("--batch-pixels", "0"), ("--batch-pixels", "-1"), ("--threads", "0")], ids=" ".join
)
def test_evaluate_refuses_non_positive_counts(pairs, tmp_path, option):
    result = stfuse("evaluate", "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--baseline", "avg",
                    "--out", str(tmp_path / "e"), *option)  # fmt: skip
    assert f"argument {option[0]}: expected a positive integer, got {option[1]}" in error_line(
        result, "evaluate"
    )


def test_fuse_split_on_a_layout_without_splits_is_refused(pairs, tmp_path):
    root = tmp_path / "msrs"
    shutil.copytree(pairs, root)
    result = stfuse("fuse", "--dataset", "msrs", "--root", str(root), "--split", "bogus", "--out",
                    str(tmp_path / "f"), "--quiet")  # fmt: skip
    assert f"--split bogus: '{root}' has no splits" in error_line(result, "fuse")


# ---- clear messages -------------------------------------------------------------------------------------
def test_fuse_messages_name_the_folders_the_link_and_the_option(pairs, tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    empty = stfuse(
        "fuse", "--ir", str(tmp_path / "ir"), "--vi", str(tmp_path / "vi"), "--out", str(tmp_path / "o")
    )
    assert f"no image pairs found in --ir '{tmp_path / 'ir'}' and --vi '{tmp_path / 'vi'}'" in error_line(
        empty, "fuse"
    )

    shutil.copy(pairs / "vi" / "a.png", tmp_path / "vi" / "a.png")
    (tmp_path / "ir" / "a.png").symlink_to(tmp_path / "gone.png")
    dangling = stfuse("fuse", "--ir", str(tmp_path / "ir"), "--vi", str(tmp_path / "vi"), "--out",
                      str(tmp_path / "o"), "--quiet")  # fmt: skip
    assert "broken symbolic link" in dangling.stderr and "has no infrared partner" not in dangling.stderr

    (tmp_path / "file").write_text("")
    blocked = stfuse("fuse", "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--out",
                     str(tmp_path / "file" / "out"), "--quiet")  # fmt: skip
    line = error_line(blocked, "fuse")
    assert f"--out '{tmp_path / 'file' / 'out'}': Not a directory" in line and "Errno" not in line

    bogus = stfuse("fuse", "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--out", str(tmp_path / "o"),
                   "--preset", "bogus")  # fmt: skip
    assert f"unknown preset 'bogus'; choose from {', '.join(PRESETS)}" in error_line(bogus, "fuse")


def test_evaluate_refuses_to_write_its_tables_into_an_input_folder(pairs):
    before = sorted(p.name for p in (pairs / "ir").iterdir())
    result = stfuse("evaluate", "--ir", str(pairs / "ir"), "--vi", str(pairs / "vi"), "--baseline", "avg",
                    "--out", str(pairs / "ir"), "--no-progress")  # fmt: skip
    assert f"--out '{pairs / 'ir'}' is the input folder" in error_line(result, "evaluate")
    assert sorted(p.name for p in (pairs / "ir").iterdir()) == before


# ---- help built from the registries ---------------------------------------------------------------------
def test_fuse_and_export_help_list_the_registries():
    from stfuse.inference.options import EXPORT_FORMATS, network_presets

    assert network_presets() == tuple(PRESETS)
    fuse_help = " ".join(stfuse("fuse", "--help").stdout.split())
    assert f"({', '.join(PRESETS)})" in fuse_help
    export_help = stfuse("export", "--help").stdout
    assert "{" + ",".join(EXPORT_FORMATS) + "}" in export_help
    line = error_line(stfuse("export", "--out", "x.onnx", "--format", "bogus"), "export")
    assert "argument --format: invalid choice: 'bogus' (choose from " in line  # argparse's own line
    assert all(name in line.rpartition("choose from")[2] for name in EXPORT_FORMATS)


def test_dock_choices_are_the_settings_registries():
    from stfuse.docking import protocol, settings, sources

    assert protocol.LABEL_SETS is settings.LABEL_SETS and sources.COLOR_MODES is settings.COLOR_MODES
    dock_help = " ".join(stfuse("dock", "--help").stdout.split())
    assert "--preset {" + ",".join(settings.DOCKING_PRESETS) + "}" in dock_help
    assert "--labels {" + ",".join(settings.LABEL_SETS) + "}" in dock_help
    line = error_line(stfuse("dock", "--preset", "huge"), "dock")
    assert "argument --preset: invalid choice: 'huge' (choose from " in line
    assert all(name in line.rpartition("choose from")[2] for name in settings.DOCKING_PRESETS)


# ---- make -----------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_fuse_takes_paths_with_spaces(pairs, tmp_path):
    spaced = tmp_path / "my data"
    shutil.copytree(pairs, spaced)
    out = tmp_path / "out dir"
    command = shlex.join([
        "make", "-C", str(REPO), "-o", f"{VENV}/.installed", "fuse", f"VENV={VENV}", f"IR={spaced / 'ir'}",
        f"VI={spaced / 'vi'}", f"OUT={out}", "ARGS=--quiet",
    ])  # fmt: skip
    result = subprocess.run(command, shell=True, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (out / "fused").iterdir()) == ["a.png", "b.png"]
