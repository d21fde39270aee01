"""Time the fusion-metric suite on TNO-25 (fused = the reference ``avg`` images): ours vs NumPy.

Three contenders, each over all 25 pairs in one process, images pre-loaded:

* ``torch_cpu``: the ``stfuse.metrics`` classes (batch size 1, one metric at a time, each converting its
  inputs), and ``collection_cpu``: the same metrics in one ``FusionMetrics`` (inputs converted once and
  intermediates shared), as the Lightning stages run them, on one thread (``stfuse evaluate`` runs the
  same value functions through ``MetricSuite``, pairs side by side: ``benchmarks/evaluate.py``);
* ``numpy``: ``benchmarks/numpy_reference.py`` — straightforward per-image NumPy/SciPy code written from
  the same definitions (direct ``scipy.signal.convolve2d`` for VIF, as the reference evaluator does);
* ``torch_cuda``: the same classes on the GPU, when one is present.

Prints one JSON object: per-metric median wall and CPU seconds over the repeats, totals, the speed
ratios (wall time, and process CPU time, which is steadier on a shared machine), and the largest
relative difference between our values and the NumPy values. The CDDFuse subset (the 12
metrics of the reference CSV) is totalled separately from the full suite. FMI is slow in NumPy (one
Python-level window at a time would take hours); ``--fmi`` adds it, timed on the first ``--fmi-images``
pairs with a vectorised NumPy baseline.

    .venv/bin/python benchmarks/metrics.py --repeats 3 --threads 1 --fmi
    .venv/bin/python benchmarks/metrics.py --verify      # agreement with the reference CSVs
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from numpy_reference import REFERENCE_FUNCTIONS, fmi_vectorised  # noqa: E402

from stfuse.evaluation.io import read_gray_255  # noqa: E402
from stfuse.evaluation.memory import keep_freed_memory  # noqa: E402
from stfuse.metrics import FusionMetrics, build_metric  # noqa: E402
from stfuse.runtime import find_data_root  # noqa: E402

CDDFUSE_METRICS = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "MSE", "CC", "PSNR"]
EXTRA_METRICS = ["Nabf", "MS_SSIM"]
FMI_METRICS = ["FMI_pixel", "FMI_gradient"]


def load_tno(data_root: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    names = sorted(p.stem for p in (data_root / "reference" / "tno" / "avg").glob("*.png"))
    if not names:
        raise SystemExit(f"no reference images under {data_root / 'reference' / 'tno' / 'avg'}")
    triplets = []
    for name in names:
        f = read_gray_255(data_root / "reference" / "tno" / "avg" / f"{name}.png")
        a = read_gray_255(data_root / "ivif" / "tno" / "ir" / f"{name}.png")
        b = read_gray_255(data_root / "ivif" / "tno" / "vi" / f"{name}.png")
        triplets.append((name, f, a, b))
    return triplets


def time_torch(metric_name: str, triplets: list, device: str) -> tuple[float, float, list[float]]:
    """Wall and process-CPU seconds for one pass over all pairs (inputs already on the device), and the
    values."""
    metric = build_metric(metric_name, data_range=255.0).to(device)
    tensors = [[torch.from_numpy(x)[None, None].to(device) for x in (f, a, b)] for _, f, a, b in triplets]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for f, a, b in tensors:
        metric.update(f, a, b)
    values = metric.compute_per_image()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start, values.cpu().tolist()


def time_collection(names: list[str], triplets: list, device: str) -> tuple[float, float]:
    """Wall and CPU seconds for a ``FusionMetrics`` of ``names`` over all pairs: the way the evaluator
    and the Lightning stages use the metrics (inputs converted once per batch for all metrics)."""
    metrics = FusionMetrics("cddfuse", names, data_range=255.0).to(device)
    tensors = [[torch.from_numpy(x)[None, None].to(device) for x in (f, a, b)] for _, f, a, b in triplets]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for f, a, b in tensors:
        metrics.update(f, a, b)
    metrics.compute()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def time_numpy(metric_name: str, triplets: list) -> tuple[float, float, list[float]]:
    if metric_name.startswith("FMI_"):
        feature = metric_name.removeprefix("FMI_")

        def function(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
            return fmi_vectorised(f, a, b, feature)

    else:
        function = REFERENCE_FUNCTIONS[metric_name]
    arrays = [[x.astype(np.float64) for x in (f, a, b)] for _, f, a, b in triplets]
    start, cpu_start = time.perf_counter(), time.process_time()
    values = [function(f, a, b) for f, a, b in arrays]
    return time.perf_counter() - start, time.process_time() - cpu_start, values


def verify(data_root: Path) -> dict:
    """Largest relative difference per metric between ``FusionMetrics('cddfuse')`` and the reference CSVs,
    over every image of every fusion in shared/data/reference (TNO and M3FD)."""
    import csv

    worst: dict[str, dict] = {m: {"max_rel_diff": 0.0, "where": ""} for m in CDDFUSE_METRICS}
    count = 0
    for dataset_dir in sorted((data_root / "reference").iterdir()):
        table = dataset_dir / "metrics_cddfuse.csv"
        if not table.is_file():
            continue
        with open(table) as handle:
            rows = [r for r in csv.DictReader(handle) if r["name"] != "MEAN"]
        for row in rows:
            name, fusion = row["name"], row["fusion"]
            images = [
                read_gray_255(dataset_dir / fusion / f"{name}.png"),
                read_gray_255(data_root / "ivif" / dataset_dir.name / "ir" / f"{name}.png"),
                read_gray_255(data_root / "ivif" / dataset_dir.name / "vi" / f"{name}.png"),
            ]
            metrics = FusionMetrics("cddfuse", CDDFUSE_METRICS)
            metrics.update(*(torch.from_numpy(x.astype(np.uint8))[None, None] for x in images))
            values = metrics.compute()
            count += 1
            for metric in CDDFUSE_METRICS:
                reference = float(row[metric])
                error = abs(float(values[metric]) - reference) / abs(reference)
                if error > worst[metric]["max_rel_diff"]:
                    worst[metric] = {"max_rel_diff": error, "where": f"{dataset_dir.name}/{fusion}/{name}"}
    return {"images": count, "metrics": worst, "max_rel_diff": max(w["max_rel_diff"] for w in worst.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=find_data_root())
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per contender (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--fmi", action="store_true", help="also time FMI (pixel, gradient)")
    parser.add_argument("--fmi-images", type=int, default=3, help="pairs used for the FMI timings")
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy baseline")
    parser.add_argument(
        "--default-malloc", action="store_true", help="keep glibc's default large-block policy"
    )
    parser.add_argument(
        "--verify", action="store_true",
        help="instead of timing, print the largest relative difference per metric against the reference CSVs",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.verify:
        print(json.dumps(verify(args.data_root), indent=2))
        return 0
    result_allocator = "default" if args.default_malloc else ("heap" if keep_freed_memory() else "default")
    if args.threads:
        torch.set_num_threads(args.threads)

    triplets = load_tno(args.data_root)
    metrics = CDDFUSE_METRICS + EXTRA_METRICS + (FMI_METRICS if args.fmi else [])
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict = {
        "images": len(triplets),
        "pixels": int(sum(f.size for _, f, _, _ in triplets)),
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "allocator": result_allocator,
        "metrics": {},
    }
    for name in metrics:
        subset = triplets[: args.fmi_images] if name.startswith("FMI_") else triplets
        entry: dict = {"images": len(subset)}
        for device in devices:
            time_torch(name, subset[:1], device)  # warm-up (allocator, FFT plans, CUDA context)
            runs = [time_torch(name, subset, device) for _ in range(args.repeats)]
            entry[f"torch_{device}_s"] = statistics.median(r[0] for r in runs)
            entry[f"torch_{device}_cpu_s"] = statistics.median(r[1] for r in runs)
            entry[f"torch_{device}_values"] = runs[0][2]
        if not args.no_numpy:
            runs = [time_numpy(name, subset) for _ in range(args.repeats)]
            entry["numpy_s"] = statistics.median(r[0] for r in runs)
            entry["numpy_cpu_s"] = statistics.median(r[1] for r in runs)
            ours = np.array(entry["torch_cpu_values"])
            ref = np.array(runs[0][2])
            entry["max_rel_diff"] = float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-12)))
            entry["speedup_cpu"] = entry["numpy_s"] / entry["torch_cpu_s"]
            entry["speedup_cpu_by_cpu_time"] = entry["numpy_cpu_s"] / entry["torch_cpu_cpu_s"]
        for device in devices:
            entry.pop(f"torch_{device}_values")
        result["metrics"][name] = entry
        print(f"{name}: {json.dumps(entry)}", file=sys.stderr, flush=True)

    def total(names: list[str], key: str) -> float | None:
        values = [result["metrics"][n].get(key) for n in names if n in result["metrics"]]
        return None if any(v is None for v in values) or not values else float(sum(values))

    groups = {"cddfuse12": CDDFUSE_METRICS, "suite": CDDFUSE_METRICS + EXTRA_METRICS}
    if args.fmi:
        groups["fmi"] = FMI_METRICS
    result["totals"] = {}
    for group, names in groups.items():
        entry = {f"torch_{d}_s": total(names, f"torch_{d}_s") for d in devices}
        if group != "fmi":
            for device in devices:
                time_collection(names, triplets[:1], device)
                runs = [time_collection(names, triplets, device) for _ in range(args.repeats)]
                entry[f"collection_{device}_s"] = statistics.median(r[0] for r in runs)
                entry[f"collection_{device}_cpu_s"] = statistics.median(r[1] for r in runs)
        entry["torch_cpu_cpu_s"] = total(names, "torch_cpu_cpu_s")
        if not args.no_numpy:
            entry["numpy_s"] = total(names, "numpy_s")
            entry["numpy_cpu_s"] = total(names, "numpy_cpu_s")
            entry["speedup_cpu"] = entry["numpy_s"] / entry["torch_cpu_s"]
            entry["speedup_cpu_by_cpu_time"] = entry["numpy_cpu_s"] / entry["torch_cpu_cpu_s"]
            if "collection_cpu_s" in entry:
                entry["speedup_collection_cpu"] = entry["numpy_s"] / entry["collection_cpu_s"]
                entry["speedup_collection_cpu_by_cpu_time"] = (
                    entry["numpy_cpu_s"] / entry["collection_cpu_cpu_s"]
                )
            if "cuda" in devices:
                entry["speedup_cuda"] = entry["numpy_s"] / entry["torch_cuda_s"]
            entry["max_rel_diff"] = max(result["metrics"][n]["max_rel_diff"] for n in names)
        result["totals"][group] = entry
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
