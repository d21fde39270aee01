"""The GPU path in one command: GPU tests, inference benchmark on CUDA, GPU recipe for both stages, validation.

Device tool, one call (the lead's; prepared, never run: no GPU was lent to the session that wrote it):
    run(command="python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . && PYTHONUNBUFFERED=1 python3 experiments/gpu_check.py --pack outputs/pack_check --runs /tmp/gpu_check_runs --out $OUT/gpu_check", carry=[".whl", "outputs/pack_check"], timeout_s=600)

    make gpu-check                                     # on a GPU machine (packs DATA_ROOT into outputs/pack first)
    python experiments/gpu_check.py --pack outputs/pack --out outputs/gpu_check
    python experiments/gpu_check.py --dry-run --out outputs/gpu_check_dry   # the same steps on the CPU, tiny

Steps, each under its own wall-clock cap; a step that fails or runs out of time is recorded and the next one
still runs:

1. ``tests``: ``pytest -m gpu tests/test_gpu.py`` (JUnit XML parsed into the summary);
2. ``bench``: benchmarks/inference.py on CUDA: the packaged ``compact`` network at 640×480, fp32 / bf16,
   eager / compiled, batch 1 / 8 / 32 (the JSON of ``make bench``), beside the peers' H100 figures;
3. ``recipe``: ``experiments/reproduce.py --budget gpu --only main --no-results`` (both stages) with the rest
   of the time; the progress lines of each stage give its speed and a projection of its full length when
   the cap stops it;
4. ``validate``: experiments/validate.py on the held-out validation pairs: the GPU run's ``last.ckpt`` (marked
   partial when the cap stopped it), the packaged CPU-budget weights and the classical baselines.

Everything measured lands in ``--out``, flat: ``summary.json`` (rewritten after every step, so a killed run
still leaves one) and ``tests.log``, ``tests.xml``, ``bench.json``, ``bench.log``, ``recipe.log`` (with each
stage's own log appended), ``validate.json``, ``validate.log``: eight files, which is what the device tool
returns from ``$OUT``. Checkpoints go to ``--runs`` (default ``<out>/runs``). Exit status 0 when every step
passed, 1 when one failed or timed out, 2 for a bad command line (one line, nothing written).

``--dry-run`` runs the same steps on the CPU with tiny budgets: the GPU tests (all skipped: no CUDA), the
benchmark at batch 1 on 64×48 images with the ``tiny`` preset, ``reproduce.py --budget smoke`` on a
synthetic data root written under ``--runs``, and the validation. tests/test_gpu_check.py runs it in CI.

Carrying it to a GPU machine. The device tool takes at most 64 MiB of files with the code (about 2.5 MB).
Its image lacks kornia, albumentations, jsonargparse[signatures] and their dependencies: 16.3 MB of
Python 3.12 wheels, made here with

    echo /.whl/ >> .git/info/exclude; python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl albucore==0.0.24 albumentations==2.0.8 annotated-types==0.8.0 \\
        docstring_parser==0.18.0 jsonargparse==4.53.0 kornia==0.9.0 kornia_rs==0.2.0 pydantic==2.14.4 \\
        pydantic_core==2.50.5 simsimd==6.5.16 stringzilla==5.3.2 typeshed_client==2.15.0 typing-inspection==0.4.5

The full pack (``python experiments/pack_data.py --out outputs/pack``) is 57.1 MB, so code, pack and wheels
(76 MB) do not fit one call. ``outputs/pack_check`` is that pack without ``train/natural/bsd200`` (37.7 MB;
``cp -r outputs/pack outputs/pack_check && rm -r outputs/pack_check/train/natural/bsd200``): the source
stage then synthesises its pairs from 220 of the 420 natural images, which a 10-minute check cannot train
through anyway. ``pip install -e .`` registers the package's entry points: without them no Lightning
``.ckpt`` can be read (stfuse.models.checkpoint finds the stage reader through them).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]  # this checkout's package, also where it is not installed

STEPS = ("tests", "bench", "recipe", "validate")
#: the target-stage run that ``reproduce.py --only main`` trains (full STFuse, seed 0)
MAIN_RUN = "ivif_stfuse_s0"
STAGES = ("mfif", MAIN_RUN)
#: the packaged weights (the CPU-budget model) in the validation scores
PACKAGED = "packaged_cpu_model"
#: what comes back from the device tool's $OUT (at most 8 files)
FILES = ("summary.json", "tests.log", "tests.xml", "bench.json", "bench.log", "recipe.log", "validate.json",
         "validate.log")  # fmt: skip
#: validation metrics (experiments/validate.py's table), all higher-is-better
TABLE_METRICS = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")
#: peer networks at 640×480 on one H100, eager PyTorch, random weights (issue 20; measured for this project)
PEERS_H100 = {
    "SeAFusion": {"fp32_batch1_images_per_s": 206, "best_images_per_s": 450},
    "TarDAL": {"fp32_batch1_images_per_s": 235, "best_images_per_s": 713, "best_mode": "bf16, channels-last, batched"},
}  # fmt: skip
#: issue 20's goals for `stfuse fuse` network throughput at 640×480
GOALS = {"best_images_per_s": 1000, "fp32_batch1_images_per_s": 300}
#: modules every step imports (their absence is found before any step starts)
REQUIRED_MODULES = ("torch", "pytorch_lightning", "torchmetrics", "kornia", "albumentations", "jsonargparse", "cv2",
                    "scipy", "safetensors", "PIL", "yaml", "pytest")  # fmt: skip

GPU_BENCH = ["--devices", "cuda", "--presets", "compact", "--sizes", "640x480", "--batch-sizes", "1,8,32",
             "--precisions", "fp32,bf16", "--modes", "eager,compiled", "--repeats", "5", "--warmup", "2"]  # fmt: skip
DRY_BENCH = ["--devices", "cpu", "--presets", "tiny", "--sizes", "64x48", "--batch-sizes", "1",
             "--precisions", "fp32,bf16", "--modes", "eager", "--repeats", "2", "--warmup", "1", "--threads", "1"]  # fmt: skip


class UsageError(Exception):
    """A bad command line: reported in one line, exit status 2, nothing written."""


# ---- command line -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_check.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--out", default="outputs/gpu_check", help="the folder every measurement goes to")
    parser.add_argument("--runs", help="training runs (checkpoints); default <out>/runs")
    parser.add_argument(
        "--pack",
        help="the data pack (experiments/pack_data.py); default outputs/pack, made from --data-root when "
        "missing. --dry-run: a synthetic data root under --runs",
    )
    parser.add_argument("--data-root", help="the data to pack when --pack lacks it (default: $STFUSE_DATA)")
    parser.add_argument("--budget", help="reproduce.py budget (default gpu; smoke with --dry-run)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    parser.add_argument(
        "--total-minutes",
        type=float,
        default=8.5,
        help="wall-clock cap of the whole check (default 8.5: the device tool allows 10 per call); 0: no caps",
    )
    parser.add_argument("--tests-minutes", type=float, default=3.0)
    parser.add_argument("--bench-minutes", type=float, default=3.0)
    parser.add_argument("--validate-minutes", type=float, default=1.0, help="kept back from the recipe")
    parser.add_argument(
        "--recipe-minutes", type=float, help="default: what the total leaves after the other steps"
    )
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU with tiny budgets")
    parser.error = _one_line_error  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise UsageError(f"--steps: unknown step(s) {unknown or steps}; choose from {', '.join(STEPS)}")
    args.steps = [s for s in STEPS if s in steps]
    for name in ("total_minutes", "tests_minutes", "bench_minutes", "validate_minutes", "recipe_minutes"):
        value = getattr(args, name)
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise UsageError(f"--{name.replace('_', '-')}: expected minutes ≥ 0, got {value}")
    args.budget = args.budget or ("smoke" if args.dry_run else "gpu")
    args.out = Path(args.out).resolve()
    args.runs = Path(args.runs).resolve() if args.runs else args.out / "runs"
    return args


def _one_line_error(message: str) -> None:
    raise UsageError(message)


# ---- running a step ---------------------------------------------------------------------------------
def child_env(dry_run: bool) -> dict[str, str]:
    path = [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "PYTHONUNBUFFERED": "1",
        "WANDB_MODE": "disabled",
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }
    env["OMP_NUM_THREADS"] = "1" if dry_run else str(os.cpu_count() or 1)
    return env


def run_command(command: list[str], log: Path, cap_s: float | None, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command`` in its own process group with output to ``log``; stop the group at ``cap_s``."""
    started = time.perf_counter()
    with log.open("w") as handle:
        handle.write("$ " + shlex.join(command) + "\n")
        handle.flush()
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True
        )
        timed_out = False
        try:
            code = process.wait(timeout=cap_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            code = _stop(process)
        except BaseException:
            _stop(process)
            raise
    seconds = round(time.perf_counter() - started, 1)
    status = "timed_out" if timed_out else ("ok" if code == 0 else "failed")
    return {
        "status": status,
        "exit_code": code,
        "seconds": seconds,
        "cap_s": cap_s,
        "command": shlex.join(command),
    }


def _stop(process: subprocess.Popen) -> int:
    """SIGTERM to the step's process group (the step and what it started), SIGKILL 20 s later."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


class Deadline:
    """Per-step caps inside one total: a step gets min(its own cap, what is left less the later steps' reserve)."""

    def __init__(self, total_s: float | None) -> None:
        self.total_s = total_s
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def cap(self, own_s: float | None, reserve_s: float = 0.0) -> float | None:
        if self.total_s is None:
            return None
        left = self.total_s - self.elapsed() - reserve_s
        return max(0.0, left if own_s is None else min(own_s, left))


# ---- preflight --------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_runtime": torch.version.cuda,
    }
    if torch.cuda.is_available():
        info.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_count=torch.cuda.device_count(),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
        )
    conv = getattr(torch.backends.cudnn, "conv", None)
    info["cudnn_conv_fp32_precision"] = getattr(conv, "fp32_precision", None)
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        try:
            info["nvidia_smi"] = subprocess.run(
                query, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as error:
            info["nvidia_smi"] = f"{type(error).__name__}: {error}"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
        info["commit"] = head.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        info["commit"] = None
    return info


def preflight() -> dict[str, Any]:
    """What every later step needs: the modules, Lightning's CLI extras and the checkpoint reader."""
    from importlib.metadata import PackageNotFoundError, version

    problems, versions = [], {}
    for name in REQUIRED_MODULES:
        try:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", None)
        except Exception as error:  # a missing module or one of its own missing dependencies
            problems.append(f"cannot import {name}: {type(error).__name__}: {error}")
    if not problems:
        from pytorch_lightning import cli

        if not getattr(cli, "_JSONARGPARSE_SIGNATURES_AVAILABLE", True):
            problems.append("jsonargparse[signatures] is incomplete (docstring-parser, typeshed-client)")
        from stfuse.models.checkpoint import checkpoint_readers

        if "stage" not in checkpoint_readers():
            problems.append(
                "the stfuse checkpoint reader 'stage' is not registered: install the package with "
                "`pip install --no-deps --no-build-isolation -e .` so its entry points exist"
            )
    try:
        versions["stfuse (installed)"] = version("stfuse")
    except PackageNotFoundError:
        versions["stfuse (installed)"] = None
    return {"status": "failed" if problems else "ok", "problems": problems, "versions": versions}


# ---- data -------------------------------------------------------------------------------------------
def has_training_data(root: Path) -> bool:
    return all((root / sub).is_dir() for sub in ("train/natural", "train/ivif/roadscene", "train/ivif/msrs"))


def folder_mib(root: Path) -> float:
    return round(sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20, 1)


def write_synthetic_root(root: Path) -> dict[str, Any]:
    """A tiny data root in the pack's layout: 6 natural images and 2 × 14 IR/VIS pairs (16 are held out for
    validation, as in reproduce.py), from the embedded synthetic generator."""
    from data_modules.fake_data import write_fake_natural_images, write_fake_pairs

    if not has_training_data(root):
        write_fake_natural_images(root / "train" / "natural", {"set5": 6}, size=(160, 192))
        for sub, ext, seed in (("roadscene", ".jpg", 1), ("msrs", ".png", 2)):
            folder = root / "train" / "ivif" / sub
            names = [f"{sub}_{i:02d}" for i in range(14)]
            write_fake_pairs(folder / "ir", folder / "vi", names, (128, 160), ext, ext, seed=seed)
    return {"status": "ok", "pack": str(root), "synthetic": True, "mib": folder_mib(root)}


def resolve_pack(args: argparse.Namespace) -> Path:
    """The pack to train from; raises UsageError when it is missing and nothing can be packed."""
    if args.pack:
        pack = Path(args.pack).resolve()
    elif args.dry_run:
        return args.runs / "data"
    else:
        pack = (REPO / "outputs" / "pack").resolve()
    if has_training_data(pack) or not ({"recipe", "validate"} & set(args.steps)):
        return pack
    from stfuse.runtime import find_data_root

    source = Path(args.data_root).resolve() if args.data_root else find_data_root()
    if not (source / "train" / "natural").is_dir() or not (source / "train" / "ivif").is_dir():
        raise UsageError(
            f"--pack {pack}: no training data there, and --data-root {source} has no train/natural and "
            "train/ivif to pack (pass --data-root, set STFUSE_DATA, or --dry-run)"
        )
    return pack


def make_pack(args: argparse.Namespace, pack: Path, env: dict[str, str]) -> dict[str, Any]:
    if has_training_data(pack):
        return {"status": "ok", "pack": str(pack), "synthetic": False, "mib": folder_mib(pack)}
    if args.dry_run and not args.pack:
        return write_synthetic_root(pack)
    from stfuse.runtime import find_data_root

    source = Path(args.data_root).resolve() if args.data_root else find_data_root()
    command = [sys.executable, str(REPO / "experiments" / "pack_data.py"), "--data-root", str(source), "--out", str(pack)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return {"status": "failed", "pack": str(pack), "error": (result.stderr or result.stdout)[-2000:]}
    return {
        "status": "ok",
        "pack": str(pack),
        "synthetic": False,
        "packed_from": str(source),
        "mib": folder_mib(pack),
    }


# ---- step 1: the GPU tests --------------------------------------------------------------------------
def run_tests(args: argparse.Namespace, cap: float | None, env: dict[str, str]) -> dict[str, Any]:
    xml = args.out / "tests.xml"
    xml.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "pytest", "-m", "gpu", str(REPO / "tests" / "test_gpu.py"), "-v", "-rfEs",
        "-p", "no:cacheprovider", "--timeout", "150", f"--junitxml={xml}", "-o", "junit_family=xunit2",
    ]  # fmt: skip
    result = run_command(command, args.out / "tests.log", cap, env)
    result["log"] = "tests.log"
    if xml.is_file():
        result.update(read_junit(xml))
    else:  # stopped before pytest wrote its report: the verbose log has one line per finished test
        result.update(partial_test_outcomes(args.out / "tests.log"), partial=True)
    collected = result.get("collected", 0)
    if result["status"] == "ok" and collected == 0:
        result.update(status="failed", error="no GPU test was collected")
    elif result["status"] == "ok" and not args.dry_run and result.get("skipped", 0) == collected:
        result.update(status="failed", error="every GPU test was skipped on a machine that has CUDA")
    return result


_OUTCOME = re.compile(r"::(\S+) (PASSED|FAILED|SKIPPED|ERROR)")


def partial_test_outcomes(log: Path) -> dict[str, Any]:
    outcomes: dict[str, str] = {}
    for name, outcome in _OUTCOME.findall(log.read_text(errors="replace") if log.is_file() else ""):
        outcomes[name] = outcome.lower()
    counts = {
        kind: sum(v == kind for v in outcomes.values()) for kind in ("passed", "failed", "skipped", "error")
    }
    return {
        "finished": len(outcomes),
        "passed": counts["passed"],
        "failed": counts["failed"] + counts["error"],
        "skipped": counts["skipped"],
        "outcomes": outcomes,
    }


def read_junit(path: Path) -> dict[str, Any]:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        return {"junit_error": str(error)}
    outcomes: dict[str, list[dict[str, str]]] = {"passed": [], "failed": [], "skipped": []}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".split(".")[-1]
        problem = next((child for child in case if child.tag in ("failure", "error")), None)
        skip = case.find("skipped")
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            outcomes["failed"].append({"test": name, "message": message[0][:500] if message else problem.tag})
        elif skip is not None:
            outcomes["skipped"].append({"test": name, "reason": (skip.get("message") or "")[:300]})
        else:
            outcomes["passed"].append({"test": name, "seconds": case.get("time", "")})
    return {
        "collected": sum(len(v) for v in outcomes.values()),
        "passed": len(outcomes["passed"]),
        "failed": len(outcomes["failed"]),
        "skipped": len(outcomes["skipped"]),
        "failures": outcomes["failed"],
        "skip_reasons": sorted({s["reason"] for s in outcomes["skipped"]}),
        "passed_tests": outcomes["passed"],
    }


# ---- step 2: the inference benchmark ----------------------------------------------------------------
def run_bench(args: argparse.Namespace, cap: float | None, env: dict[str, str]) -> dict[str, Any]:
    out = args.out / "bench.json"
    out.unlink(missing_ok=True)
    options = DRY_BENCH if args.dry_run else GPU_BENCH
    command = [sys.executable, str(REPO / "benchmarks" / "inference.py"), *options, "--baselines", "", "--out", str(out)]  # fmt: skip
    result = run_command(command, args.out / "bench.log", cap, env)
    result["log"] = "bench.log"
    if out.is_file():
        report = json.loads(out.read_text())
        rows, skipped = report.get("results", []), report.get("skipped", [])
        result["json"] = "bench.json"
    else:  # stopped early: each finished configuration printed its line to the log
        rows, skipped = partial_bench_rows(args.out / "bench.log"), []
        result["partial"] = True
    device = "cpu" if args.dry_run else "cuda"
    rows = [r for r in rows if r.get("device") == device]
    result["results"] = [
        {k: r.get(k) for k in ("model", "precision", "mode", "size", "batch", "images_per_s", "ms_per_image",
                               "compile_s", "peak_memory_mib")}
        for r in rows
    ]  # fmt: skip
    result["skipped"] = skipped
    if rows:
        best = max(rows, key=lambda r: r["images_per_s"])
        fp32_b1 = next(
            (r for r in rows if (r["precision"], r["mode"], r["batch"]) == ("fp32", "eager", 1)), None
        )
        result["best"] = {k: best[k] for k in ("precision", "mode", "batch", "images_per_s")}
        result["fp32_eager_batch1_images_per_s"] = fp32_b1["images_per_s"] if fp32_b1 else None
        if not args.dry_run:
            result["goals"] = {
                "best_images_per_s": GOALS["best_images_per_s"],
                "best_met": best["images_per_s"] >= GOALS["best_images_per_s"],
                "fp32_batch1_images_per_s": GOALS["fp32_batch1_images_per_s"],
                "fp32_batch1_met": bool(fp32_b1)
                and fp32_b1["images_per_s"] >= GOALS["fp32_batch1_images_per_s"],
            }
            result["peers_h100"] = PEERS_H100
    elif result["status"] == "ok":
        result.update(status="failed", error=f"no {device} result (skipped: {skipped})")
    return result


def partial_bench_rows(log: Path) -> list[dict[str, Any]]:
    rows = []
    for line in log.read_text(errors="replace").splitlines() if log.is_file() else []:
        if line.startswith("stfuse-") and ": {" in line:
            try:
                rows.append(json.loads(line.split(": ", 1)[1]))
            except json.JSONDecodeError:
                continue
    return rows


# ---- step 3: the GPU recipe -------------------------------------------------------------------------
_STEP = re.compile(r"step (\d+)/(\d+)")
_RATE = re.compile(r"([\d.]+) it/s")
_DONE = re.compile(r"\[train\] done at step (\d+)")


def stage_progress(runs: Path, name: str) -> dict[str, Any]:
    """What one stage of the recipe reached: finished or not, its time, its last step and speed."""
    run_dir = runs / name
    info: dict[str, Any] = {"done": (run_dir / "done.json").is_file()}
    if info["done"]:
        info["seconds"] = round(json.loads((run_dir / "done.json").read_text()).get("seconds", 0.0), 1)
    info["checkpoint"] = (run_dir / "checkpoints" / "last.ckpt").is_file()
    log = runs / "logs" / f"{name}.log"
    if log.is_file():
        text = log.read_text(errors="replace")
        steps, rates, done = _STEP.findall(text), _RATE.findall(text), _DONE.findall(text)
        if steps:
            info["last_step"], info["max_steps"] = int(steps[-1][0]), int(steps[-1][1])
        if done:
            info["last_step"] = int(done[-1])
        if rates:
            info["it_per_s"] = float(rates[-1])
            if info.get("max_steps"):
                info["projected_train_s"] = round(info["max_steps"] / info["it_per_s"], 1)
    return info


def run_recipe(
    args: argparse.Namespace, pack: Path, cap: float | None, env: dict[str, str]
) -> dict[str, Any]:
    args.runs.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, str(REPO / "experiments" / "reproduce.py"), "--budget", args.budget, "--only", "main",
        "--no-results", "--out", str(args.runs), "--data-root", str(pack),
    ]  # fmt: skip
    log = args.out / "recipe.log"
    result = run_command(command, log, cap, env)
    result["log"] = "recipe.log"
    result["budget"] = args.budget
    result["stages"] = {name: stage_progress(args.runs, name) for name in STAGES}
    timings = args.runs / "timings.json"
    if timings.is_file():
        result["timings"] = json.loads(timings.read_text())
    with log.open("a") as handle:  # each stage's own log, after reproduce.py's
        for name in STAGES:
            stage_log = args.runs / "logs" / f"{name}.log"
            if stage_log.is_file():
                text = stage_log.read_text(errors="replace")
                handle.write(f"\n===== {stage_log} (last 200 kB) =====\n{text[-200_000:]}")
    if result["status"] == "timed_out":
        running = next((n for n in STAGES if not result["stages"][n]["done"]), None)
        result["stopped_in"] = running
    return result


# ---- step 4: validation -----------------------------------------------------------------------------
def run_validate(
    args: argparse.Namespace, pack: Path, cap: float | None, env: dict[str, str]
) -> dict[str, Any]:
    from stfuse.inference.fuser import DEFAULT_WEIGHTS

    run_dir = args.runs / MAIN_RUN
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        return {"status": "skipped", "reason": f"no {MAIN_RUN}/checkpoints/last.ckpt: the recipe saved no target-stage checkpoint"}  # fmt: skip
    out = args.out / "validate.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, str(REPO / "experiments" / "validate.py"), "--data-root", str(pack), "--json", str(out),
               "--budget", args.budget, str(run_dir), str(DEFAULT_WEIGHTS)]  # fmt: skip
    result = run_command(command, args.out / "validate.log", cap, env)
    result.update(log="validate.log", partial=not (run_dir / "done.json").is_file())
    if out.is_file():
        report = json.loads(out.read_text())
        scores = report.get("scores", {})
        if str(DEFAULT_WEIGHTS) in scores:  # the packaged weights are scored under their path
            scores[PACKAGED] = scores.pop(str(DEFAULT_WEIGHTS))
        result.update(json="validate.json", pairs=report.get("pairs"), scores=scores)
        gpu, cpu, laplacian = scores.get(MAIN_RUN), scores.get(PACKAGED), scores.get("laplacian")
        if gpu and cpu:
            wins = [m for m in TABLE_METRICS if gpu[m] > cpu[m]]
            result["gpu_vs_packaged_cpu_model"] = {
                "wins": len(wins),
                "of": len(TABLE_METRICS),
                "metrics": wins,
            }
        if gpu and laplacian:
            result["gpu_vs_laplacian_wins"] = sum(gpu[m] > laplacian[m] for m in TABLE_METRICS)
        # the copy baselines (copy_ir, copy_vi) leave SCD undefined by design; every model row must be finite
        finite = all(
            math.isfinite(v)
            for name, row in scores.items()
            if name not in ("copy_ir", "copy_vi")
            for v in row.values()
        )
        if result["status"] == "ok" and not (gpu and finite):
            result.update(status="failed", error="validate.json lacks the GPU run or holds non-finite scores")
    elif result["status"] == "ok":
        result.update(status="failed", error="validate.py wrote no JSON")
    return result


# ---- main -------------------------------------------------------------------------------------------
def write_summary(args: argparse.Namespace, summary: dict[str, Any], started: float) -> None:
    """Write ``summary.json`` atomically (after every step, so a killed check still leaves one)."""
    summary["wall_s"] = round(time.monotonic() - started, 1)
    summary["files"] = sorted(p.name for p in args.out.iterdir() if p.is_file() and p.name != "summary.json")
    text = json.dumps(summary, indent=2)
    tmp = args.out / "summary.json.tmp"
    tmp.write_text(text + "\n")
    os.replace(tmp, args.out / "summary.json")


def check(args: argparse.Namespace) -> int:
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise UsageError(
            "no CUDA device (torch.cuda.is_available() is False); rehearse on the CPU with --dry-run"
        )
    pack = resolve_pack(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in FILES:  # a rerun must not show an earlier run's files as this one's
        (args.out / name).unlink(missing_ok=True)
    env = child_env(args.dry_run)
    total = None if args.total_minutes == 0 else 60 * args.total_minutes
    deadline = Deadline(total)
    own = {s: getattr(args, f"{s}_minutes") for s in STEPS}
    own = {s: (None if m is None or total is None else 60 * m) for s, m in own.items()}
    summary: dict[str, Any] = {
        "check": "experiments/gpu_check.py",
        "dry_run": args.dry_run,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {
            "steps": args.steps,
            "budget": args.budget,
            "pack": str(pack),
            "runs": str(args.runs),
            "total_cap_s": total,
            "step_caps_s": own,
        },
        "machine": machine_info(),
        "steps": {},
    }
    started = deadline.start

    def record(name: str, result: dict[str, Any]) -> None:
        summary["steps"][name] = result
        write_summary(args, summary, started)
        print(f"[gpu_check] {name}: {result['status']}" + (f" ({result.get('seconds')} s)" if "seconds" in result else ""), flush=True)  # fmt: skip

    record("preflight", preflight())
    blocked = summary["steps"]["preflight"]["status"] != "ok"
    if not blocked and {"recipe", "validate"} & set(args.steps):
        record("pack", make_pack(args, pack, env))
    for step in args.steps:
        if blocked:
            record(step, {"status": "skipped", "reason": "preflight failed"})
            continue
        if step in ("recipe", "validate") and summary["steps"]["pack"]["status"] != "ok":
            record(step, {"status": "skipped", "reason": "no data pack"})
            continue
        reserve = (own["validate"] or 0.0) if step == "recipe" and "validate" in args.steps else 0.0
        cap = deadline.cap(own[step], reserve)
        if cap is not None and cap < 5:
            record(
                step, {"status": "skipped", "reason": f"no time left under the {total / 60:.1f}-minute cap"}
            )
            continue
        if step == "tests":
            record(step, run_tests(args, cap, env))
        elif step == "bench":
            record(step, run_bench(args, cap, env))
        elif step == "recipe":
            record(step, run_recipe(args, pack, cap, env))
        else:
            record(step, run_validate(args, pack, cap, env))
    failed = [name for name, result in summary["steps"].items() if result["status"] != "ok"]
    summary["ok"] = not failed
    summary["not_ok"] = failed
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_summary(args, summary, started)
    print(f"[gpu_check] {'all steps passed' if not failed else 'not ok: ' + ', '.join(failed)}; "
          f"summary: {args.out / 'summary.json'}", flush=True)  # fmt: skip
    return 0 if not failed else 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        return check(args)
    except UsageError as error:
        print(f"gpu_check.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
