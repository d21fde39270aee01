"""experiments/gpu_check.py (``make gpu-check``) as CI can run it: ``--dry-run`` in a subprocess, the same
steps on the CPU with tiny budgets, so the script a GPU machine runs once cannot rot; and its command-line
errors. The GPU run itself is not tested here (no GPU in CI): tests/test_gpu.py is its first step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "gpu_check.py"
sys.path.insert(0, str(REPO / "experiments"))

import gpu_check  # noqa: E402

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH")])),
    "OMP_NUM_THREADS": "1",
    "WANDB_MODE": "disabled",
    "NO_ALBUMENTATIONS_UPDATE": "1",
}


def _reproduce_has_smoke_budget() -> bool:
    usage = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "reproduce.py"), "--help"],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return "smoke" in usage.stdout


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu_check") / "check"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
        env=ENV, capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    return out, result


def test_dry_run_runs_every_step_on_the_cpu_into_one_folder(dry_run) -> None:
    out, result = dry_run
    assert (out / "summary.json").is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["steps"]
    assert list(steps) == ["preflight", "pack", "tests", "bench", "recipe", "validate"]
    assert summary["dry_run"] is True and summary["settings"]["budget"] == "smoke"
    assert summary["machine"]["cuda_available"] is False
    assert steps["preflight"]["status"] == "ok", steps["preflight"]["problems"]
    assert steps["pack"]["status"] == "ok" and steps["pack"]["synthetic"] and steps["pack"]["mib"] < 64

    # 1. the GPU tests: all collected, all skipped for want of CUDA, outcomes read from the JUnit XML
    tests = steps["tests"]
    assert tests["status"] == "ok" and tests["collected"] >= 10, tests
    assert tests["skipped"] == tests["collected"] and tests["failed"] == 0
    assert tests["skip_reasons"] == ["needs a CUDA device: torch.cuda.is_available() is False"]

    # 2. the benchmark: batch 1, fp32 and bf16, the JSON of `make bench` beside the summary's digest
    bench = steps["bench"]
    assert bench["status"] == "ok", bench
    assert {(r["precision"], r["mode"], r["batch"]) for r in bench["results"]} == {
        ("fp32", "eager", 1),
        ("bf16", "eager", 1),
    }
    assert all(r["images_per_s"] > 0 and r["size"] == "64x48" for r in bench["results"])
    report = json.loads((out / "bench.json").read_text())
    assert report["settings"]["modes"] == ["eager"] and len(report["results"]) == 2
    assert bench["fp32_eager_batch1_images_per_s"] == next(
        r["images_per_s"] for r in report["results"] if r["precision"] == "fp32"
    )

    # 3. and 4. the recipe through reproduce.py, then validate.py
    files = {p.name for p in out.iterdir() if p.is_file()}
    recipe, validate = steps["recipe"], steps["validate"]
    assert recipe["command"].split()[1:4] == [str(REPO / "experiments" / "reproduce.py"), "--budget", "smoke"]
    if _reproduce_has_smoke_budget():
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert summary["ok"] is True and summary["not_ok"] == []
        assert recipe["status"] == "ok", recipe
        for name in gpu_check.STAGES:
            stage = recipe["stages"][name]
            assert stage["done"] and stage["checkpoint"] and stage["seconds"] > 0, (name, stage)
            assert stage["last_step"] == stage["max_steps"] > 0, (name, stage)
        assert validate["status"] == "ok" and validate["partial"] is False and validate["pairs"] == 16, (
            validate
        )
        scores = validate["scores"]
        assert {gpu_check.MAIN_RUN, gpu_check.PACKAGED, "average", "maximum", "laplacian"} <= set(scores)
        for row in (scores[gpu_check.MAIN_RUN], scores[gpu_check.PACKAGED]):
            assert set(row) == {
                *gpu_check.TABLE_METRICS,
                "copy_distance",
                "to_ir",
                "to_vi",
                "false_edges",
                "target_gap",
            } and all(v == v for v in row.values())
        comparison = validate["gpu_vs_packaged_cpu_model"]
        assert comparison["of"] == 8 and comparison["wins"] == len(comparison["metrics"])
        assert files == set(gpu_check.FILES)
    else:  # reproduce.py without `--budget smoke`: the failure is recorded and the check goes on
        assert result.returncode == 1, result.stderr[-3000:]
        assert recipe["status"] == "failed" and recipe["exit_code"] == 2, recipe
        assert "invalid choice: 'smoke'" in (out / "recipe.log").read_text()
        assert validate["status"] == "skipped" and summary["not_ok"] == ["recipe", "validate"]
        assert files == set(gpu_check.FILES) - {"validate.json", "validate.log"}
    assert "[gpu_check] tests: ok" in result.stdout
    # the CI budget for the dry run: well under two minutes on two cores
    assert summary["wall_s"] < 150, f"the dry run took {summary['wall_s']} s"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dry-run", "--steps", "tests,nope"], "--steps: unknown step(s) ['nope']; choose from tests, bench, recipe, validate"),
        (["--dry-run", "--total-minutes", "-1"], "--total-minutes: expected minutes ≥ 0, got -1.0"),
        (["--dry-run", "--budget"], "argument --budget: expected one argument"),
        (["--dry-run", "--pack", "{tmp}/empty", "--data-root", "{tmp}/nothing"], "--pack {tmp}/empty: no training data there"),
        ([], "no CUDA device (torch.cuda.is_available() is False); rehearse on the CPU with --dry-run"),
    ],
    ids=["unknown-step", "negative-minutes", "missing-value", "no-pack-no-data", "no-cuda"],
)  # fmt: skip
def test_command_line_errors_are_one_line_exit_2_and_write_nothing(args, message, tmp_path) -> None:
    if not args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the check would run")
    out = tmp_path / "check"
    args = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(out)], env=ENV, capture_output=True, text=True, timeout=120
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check.py: error: "), result.stderr
    assert message.format(tmp=tmp_path) in lines[0]
    assert not out.exists()
