"""Bad inputs to the installed ``stfuse`` command: each stops with exit status 2 and one line that names the key
or file and the fix, never a traceback, and an unsafe checkpoint never runs its code.

Every case is a subprocess of the console script, as a user meets it; they run concurrently in one
module fixture (each mostly pays the start-up import), and each test checks its own case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
STFUSE = Path(sys.executable).parent / "stfuse"
ENV = {**os.environ, "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
ENV.pop("STFUSE_TRACEBACK", None)
TINY_NET = json.dumps({"preset": "tiny"})


class _Payload:
    """Pickles to a call of ``open(marker, "w")``: loading it unsafely would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _mfif(root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(REPO / "experiments" / "mfif.yaml"),
        "--trainer.default_root_dir", str(root), "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
        "--model.init_args.net", TINY_NET, "--data.init_args.crop_size", "32", "--data.init_args.batch_size", "2",
        "--data.init_args.num_workers", "0", "--data.init_args.samples_per_epoch", "2",
        "--data.init_args.val_samples", "2", "--data.init_args.val_crop_size", "32", *extra,
    ]  # fmt: skip


def _ivif(root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(REPO / "experiments" / "ivif.yaml"),
        "--trainer.default_root_dir", str(root), "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
        "--model.init_args.val_metrics", '["EN"]',
        "--data.init_args.ivif.init_args.crop_size", "32", "--data.init_args.ivif.init_args.batch_size", "2",
        "--data.init_args.ivif.init_args.num_workers", "0", "--data.init_args.ivif.init_args.val_size", "2",
        "--data.init_args.ivif.init_args.default_train_size", "4",
        "--data.init_args.ivif.init_args.default_image_size", "40",
        "--data.init_args.replay.init_args.crop_size", "32", "--data.init_args.replay.init_args.batch_size", "2",
        "--data.init_args.replay.init_args.num_workers", "0", "--data.init_args.replay.init_args.samples_per_epoch", "4",
        *extra,
    ]  # fmt: skip


def _write_pair(folder: Path, name: str, ir: np.ndarray, vi: np.ndarray) -> None:
    for modality, image in (("ir", ir), ("vi", vi)):
        (folder / modality).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / modality / f"{name}.png"), image)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """Every case run once: name → (CompletedProcess, files the case uses)."""
    tmp = tmp_path_factory.mktemp("errors")
    marker = tmp / "payload_ran"
    malicious = tmp / "malicious.ckpt"
    torch.save({"state_dict": {"net.w": torch.zeros(2)}, "payload": _Payload(marker)}, malicious)
    whole = tmp / "whole.ckpt"
    torch.save({"state_dict": {"net.w": torch.zeros(4096)}, "global_step": 1}, whole)
    truncated = tmp / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    wrong_kind = tmp / "wrong_kind.ckpt"
    torch.save({"something": torch.zeros(3)}, wrong_kind)
    resume_root = tmp / "resume_run"
    (resume_root / "checkpoints").mkdir(parents=True)
    (resume_root / "checkpoints" / "last.ckpt").write_bytes(malicious.read_bytes())
    fresh_clone = tmp / "fresh_clone"  # no outputs/ yet: ivif.yaml's default source checkpoint is missing
    fresh_clone.mkdir()

    data = tmp / "pairs"
    rng = np.random.default_rng(0)
    _write_pair(
        data, "textured", rng.integers(0, 256, (48, 64), np.uint8), rng.integers(0, 256, (48, 64), np.uint8)
    )
    _write_pair(data, "black", np.zeros((48, 64), np.uint8), np.zeros((48, 64), np.uint8))
    fused = tmp / "fused" / "vi"  # a method folder that happens to be called vi
    fused.mkdir(parents=True)
    for name in ("textured", "black"):
        cv2.imwrite(
            str(fused / f"{name}.png"), cv2.imread(str(data / "vi" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        )
    a_file = tmp / "a_file"
    a_file.write_text("not a folder")
    a_folder = tmp / "a_folder"
    a_folder.mkdir()
    sources = ["evaluate", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--no-progress"]

    cases: dict[str, tuple[list[str], Path | None]] = {
        "unknown_preset": (_mfif(tmp / "r1", "--model.init_args.net", '{"preset": "huge"}'), None),
        "missing_data_root": (_mfif(tmp / "r2", "--data.init_args.roots", f'["{tmp / "nowhere"}"]'), None),
        "missing_ckpt_path": (_mfif(tmp / "r3", "--ckpt_path", str(tmp / "none.ckpt")), None),
        "truncated_ckpt_path": (_mfif(tmp / "r4", "--ckpt_path", str(truncated)), None),
        "missing_source_ckpt": (
            _ivif(tmp / "r5", "--model.init_args.source_ckpt", str(tmp / "none.ckpt")),
            None,
        ),
        "malicious_source_ckpt": (_ivif(tmp / "r6", "--model.init_args.source_ckpt", str(malicious)), None),
        "wrong_kind_source_ckpt": (_ivif(tmp / "r7", "--model.init_args.source_ckpt", str(wrong_kind)), None),
        "ivif_before_source_stage": (_ivif(fresh_clone / "outputs" / "ivif"), fresh_clone),
        "malicious_last_ckpt": (_mfif(resume_root), None),
        "report_is_a_folder": (
            [*sources, "--baseline", "avg", "--out", str(tmp / "e1"), "--report", str(a_folder)],
            None,
        ),
        "out_under_a_file": ([*sources, "--baseline", "avg", "--out", str(a_file / "tables")], None),
        "method_named_ir": ([*sources, "--fused", f"ir={fused}", "--out", str(tmp / "e2")], None),
        "method_named_vi": ([*sources, "--fused", str(fused), "--out", str(tmp / "e3")], None),
        "nan_metrics": (
            [*sources, "--baseline", "avg", "--out", str(tmp / "e4"), "--report", str(tmp / "e4" / "r.html")],
            None,
        ),
    }

    def run(item):
        name, (argv, cwd) = item
        result = subprocess.run(
            [str(STFUSE), *argv], env=ENV, capture_output=True, text=True, timeout=600, cwd=cwd
        )
        return name, result

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(run, cases.items()))
    return {"results": results, "tmp": tmp, "marker": marker, "malicious": malicious, "truncated": truncated,
            "wrong_kind": wrong_kind, "resume_root": resume_root}  # fmt: skip


def _one_line_error(result: subprocess.CompletedProcess, command: str) -> str:
    """The exit status is 2, there is no traceback, and exactly one line carries the error."""
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"stfuse {command}: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert result.stderr.rstrip().endswith(errors[0]), "the error is the last thing printed"
    return errors[0]


FIT_CASES = {
    "unknown_preset": r"model\.init_args\.net: unknown preset 'huge'; choose one of .*small",
    "missing_data_root": r"data\.init_args\.roots: '.*nowhere' does not exist; give an existing data folder",
    "missing_ckpt_path": r"--ckpt_path '.*none\.ckpt': file not found; pass a checkpoint written by `stfuse fit`",
    "truncated_ckpt_path": r"--ckpt_path '.*truncated\.ckpt': not a readable PyTorch checkpoint .*truncated.*; pass a checkpoint",
    "missing_source_ckpt": r"model\.init_args\.source_ckpt: .*none\.ckpt: checkpoint file not found; train the source stage first \(make train-mfif",
    "malicious_source_ckpt": r"model\.init_args\.source_ckpt: .*malicious\.ckpt: refused to load: the file contains pickled Python objects",
    "wrong_kind_source_ckpt": r"model\.init_args\.source_ckpt: .*wrong_kind\.ckpt: .*network",
    "ivif_before_source_stage": r"model\.init_args\.source_ckpt: outputs/mfif/checkpoints/last\.ckpt: checkpoint file not found; "
    r"train the source stage first \(make train-mfif, or stfuse fit --config experiments/mfif\.yaml\)",
    "malicious_last_ckpt": r"auto-resume: '.*resume_run/checkpoints/last\.ckpt': refused to load: .*; delete or move it, or pass --auto_resume false",
}


@pytest.mark.parametrize("name", sorted(FIT_CASES))
def test_fit_bad_input_is_one_line_with_exit_status_2(case, name):
    line = _one_line_error(case["results"][name], "fit")
    assert re.search(FIT_CASES[name], line), line
    assert not case["marker"].exists(), "an unsafe checkpoint ran its code"


def test_refused_checkpoints_are_left_untouched(case):
    assert (case["resume_root"] / "checkpoints" / "last.ckpt").read_bytes() == case["malicious"].read_bytes()
    assert case["truncated"].stat().st_size > 0


EVALUATE_CASES = {
    "report_is_a_folder": r"--report '.*a_folder' is a folder; give a file name such as .*report\.html",
    "out_under_a_file": r"--out '.*a_file/tables': cannot write to .*; choose a writable location",
    "method_named_ir": r"method name 'ir' is reserved for the infrared source; name the fused images another way",
    "method_named_vi": r"method name 'vi' is reserved for the visible source; .*--fused vi_fused=DIR",
    "nan_metrics": r"NaN \(undefined\) values: .* on 1 image \(black\).*all-black source.*--metrics",
}


@pytest.mark.parametrize("name", sorted(EVALUATE_CASES))
def test_evaluate_bad_input_is_one_line_with_exit_status_2(case, name):
    line = _one_line_error(case["results"][name], "evaluate")
    assert re.search(EVALUATE_CASES[name], line), line


def test_nan_metrics_are_flagged_in_the_table_and_the_report_too(case):
    result = case["results"]["nan_metrics"]
    out = case["tmp"] / "e4"
    for text in (result.stdout, (out / "metrics_summary.md").read_text(), (out / "r.html").read_text()):
        assert "NaN (undefined) values" in text and "(black)" in text
