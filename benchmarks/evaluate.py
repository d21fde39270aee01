"""`stfuse evaluate` speed on TNO-25 (cddfuse preset, 12 metrics), end to end and its metric loop, against
our per-image NumPy baseline, all in one run; prints JSON.

Three timings, each the median of ``--repeats`` runs (the NumPy baseline: ``--numpy-repeats``):

* ``end_to_end``: ``stfuse evaluate --dataset tno --root DATA --fused avg=DATA/reference/tno/avg
  --out TMP --report TMP/report.html`` as a fresh subprocess (cold start: imports, reading and converting
  50 sources and 25 fused images, the metrics, the tables and the HTML report);
* ``metric_loop``: the 12 metrics alone over the 25 pre-loaded triplets, the way ``stfuse evaluate``
  runs them (one :class:`~stfuse.metrics.MetricSuite`, pairs scored side by side on ``--workers``
  threads, default: torch's thread count, i.e. the cores);
* ``numpy_baseline``: ``benchmarks/numpy_reference.py``, the straightforward per-image NumPy/SciPy
  code of the same definitions (direct ``convolve2d`` for VIF as CDDFuse's Evaluator), one image and
  one metric at a time, on the same pre-loaded images.

Wall seconds are what the goals are about; process CPU seconds are recorded beside them because on a
shared machine they are steadier (``cpu_per_wall`` well below the worker count means the run waited
for cores). The load average at the start and the end is recorded too.

    .venv/bin/python benchmarks/evaluate.py                  # 3 repeats, NumPy once (about 1–2 min)
    .venv/bin/python benchmarks/evaluate.py --numpy-repeats 3
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning, as in the `stfuse` command; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from numpy_reference import REFERENCE_FUNCTIONS  # noqa: E402

from stfuse.evaluation.evaluator import default_workers, map_in_threads  # noqa: E402
from stfuse.evaluation.io import read_gray_255  # noqa: E402
from stfuse.evaluation.memory import keep_freed_memory  # noqa: E402
from stfuse.metrics import MetricSuite  # noqa: E402
from stfuse.runtime import find_data_root  # noqa: E402

CDDFUSE_METRICS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "MSE", "CC", "PSNR"]
#: The issue's goals on 2 cores, in seconds and as a ratio to the NumPy baseline.
GOALS = {"end_to_end_s": 3.0, "metric_loop_s": 0.9, "metric_loop_speedup_vs_numpy": 30.0}


def load_tno(data_root: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(fused, ir, vi) uint8 H×W for the 25 TNO pairs, fused = the reference ``avg`` images."""
    names = sorted(p.stem for p in (data_root / "reference" / "tno" / "avg").glob("*.png"))
    if not names:
        raise SystemExit(f"no reference images under {data_root / 'reference' / 'tno' / 'avg'}")
    folders = (
        data_root / "reference" / "tno" / "avg",
        data_root / "ivif" / "tno" / "ir",
        data_root / "ivif" / "tno" / "vi",
    )
    return [
        (read_gray_255(folders[0] / f"{name}.png").astype(np.uint8),
         read_gray_255(folders[1] / f"{name}.png").astype(np.uint8),
         read_gray_255(folders[2] / f"{name}.png").astype(np.uint8))
        for name in names
    ]  # fmt: skip


def _median(runs: list[tuple[float, float]]) -> dict[str, float]:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    return {"wall_s": wall, "cpu_s": cpu, "cpu_per_wall": cpu / wall, "runs_wall_s": [r[0] for r in runs]}


def time_end_to_end(data_root: Path, repeats: int, threads: int | None) -> dict:
    """Cold-start ``stfuse evaluate`` subprocesses; CPU time is the children's user + system time."""
    runs = []
    command = [str(Path(sys.executable).with_name("stfuse"))]
    if not Path(command[0]).exists():
        command = [sys.executable, "-m", "stfuse"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            *command, "evaluate", "--dataset", "tno", "--root", str(data_root),
            "--fused", f"avg={data_root / 'reference' / 'tno' / 'avg'}",
            "--out", tmp, "--report", str(Path(tmp) / "report.html"), "--no-progress", "--device", "cpu",
        ]  # fmt: skip
        if threads:
            argv += ["--threads", str(threads)]
        for _ in range(repeats):
            before = os.times()
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            after = os.times()
            cpu = (after.children_user - before.children_user) + (
                after.children_system - before.children_system
            )
            runs.append((wall, cpu))
    return {"command": " ".join(argv[len(command) :]).replace(tmp, "TMP"), **_median(runs)}


def time_metric_loop(triplets: list, repeats: int, workers: int) -> dict:
    suite = MetricSuite("cddfuse", CDDFUSE_METRICS, data_range=255.0)
    tensors = [tuple(torch.from_numpy(x)[None, None] for x in t) for t in triplets]

    def one_pass() -> list[dict[str, torch.Tensor]]:
        return list(map_in_threads(lambda t: suite(*t), tensors, workers, cost=lambda t: t[0].numel()))

    one_pass()  # warm-up: OpenCV, allocator, first-call dispatch
    runs = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        one_pass()
        runs.append((time.perf_counter() - start, time.process_time() - cpu))
    return {"workers": workers, **_median(runs)}


def time_numpy(triplets: list, repeats: int) -> dict:
    arrays = [tuple(x.astype(np.float64) for x in t) for t in triplets]
    runs = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        for name in CDDFUSE_METRICS:
            function = REFERENCE_FUNCTIONS[name]
            for f, a, b in arrays:
                function(f, a, b)
        runs.append((time.perf_counter() - start, time.process_time() - cpu))
    return _median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=find_data_root())
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs of the end-to-end command and the loop"
    )
    parser.add_argument(
        "--numpy-repeats", type=int, default=1, help="timed runs of the NumPy baseline (~30 s each)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="metric-loop threads (default: as stfuse evaluate)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads here and --threads for the command"
    )
    parser.add_argument("--skip-numpy", action="store_true", help="leave the NumPy baseline out")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as `stfuse evaluate` does for itself
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = args.workers or default_workers(torch.device("cpu"))

    load_start = os.getloadavg()
    triplets = load_tno(args.data_root)
    result: dict = {
        "dataset": "TNO-25 (fused: reference avg)",
        "pixels": int(sum(t[0].size for t in triplets)),
        "metrics": CDDFUSE_METRICS,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "goals": GOALS,
    }
    result["end_to_end"] = time_end_to_end(args.data_root, args.repeats, args.threads)
    result["metric_loop"] = time_metric_loop(triplets, args.repeats, workers)
    if not args.skip_numpy:
        result["numpy_baseline"] = time_numpy(triplets, args.numpy_repeats)
        numpy_wall = result["numpy_baseline"]["wall_s"]
        numpy_cpu = result["numpy_baseline"]["cpu_s"]
        result["ratios"] = {
            "metric_loop_speedup_vs_numpy": numpy_wall / result["metric_loop"]["wall_s"],
            "metric_loop_speedup_vs_numpy_cpu_time": numpy_cpu / result["metric_loop"]["cpu_s"],
            "end_to_end_speedup_vs_numpy_metrics": numpy_wall / result["end_to_end"]["wall_s"],
        }
    result["load_average"] = {"start": load_start, "end": os.getloadavg()}
    result["meets"] = {
        "end_to_end_s": result["end_to_end"]["wall_s"] <= GOALS["end_to_end_s"],
        "metric_loop_s": result["metric_loop"]["wall_s"] <= GOALS["metric_loop_s"],
    }
    if "ratios" in result:
        ratio = result["ratios"]["metric_loop_speedup_vs_numpy"]
        result["meets"]["metric_loop_speedup_vs_numpy"] = ratio >= GOALS["metric_loop_speedup_vs_numpy"]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
