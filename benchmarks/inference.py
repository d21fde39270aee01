"""Inference speed of STFuse: images/s and ms per megapixel, printed as JSON.

    python benchmarks/inference.py --quick                 # compact preset (the default weights), 640×480
    python benchmarks/inference.py                         # small + base, 640×480 + 1024×768, batch 1 + 16
    python benchmarks/inference.py --compile --profile     # add torch.compile and a torch.profiler table
    python benchmarks/inference.py --devices cuda --presets compact --sizes 640x480 --batch-sizes 1,8,32 \
        --modes eager,compiled --baselines ''                # a GPU: eager and compiled at every batch size

Weights are random: speed does not depend on their values. Every configuration runs through
``Fuser.fuse_luminance`` (autocast, channels_last, tiling decisions) — the path ``stfuse fuse`` takes —
and reports the median over ``--repeats`` timed runs after ``--warmup`` untimed ones. The classical
baselines from ``stfuse.baselines`` run in the same process for reference. ``--pipeline DIR`` adds an
end-to-end ``stfuse fuse`` run over a folder pair (decode + fuse + encode + write).

CPU time per run is recorded beside wall time: on a shared machine ``cpu_load`` (CPU seconds per wall
second per thread) well below 1 means the run waited for cores and the wall times are pessimistic.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (as in `stfuse fuse`); it must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from stfuse.inference.compute import configure_cpu_threads, physical_cores
from stfuse.inference.fuser import DEFAULT_WEIGHTS, Fuser
from stfuse.models import STFuseNet
from stfuse.models.checkpoint import load_network


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def _synchronize() -> None:
    """Wait for queued CUDA work, so a timer measures the work and not only its launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _conv_fp32_precision() -> str:
    """ "tf32" where cuDNN may run fp32 convolutions in TensorFloat-32 (PyTorch's default), else "ieee"."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch ≥ 2.9
        return str(conv.fp32_precision)
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


def _time_runs(run: Any, warmup: int, repeats: int) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        run()
    _synchronize()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        _synchronize()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def _record(
    name: str,
    device: str,
    precision: str,
    mode: str,
    size: tuple[int, int],
    batch: int,
    walls: list[float],
    cpus: list[float],
    threads: int,
    **extra: Any,
) -> dict[str, Any]:
    height, width = size
    median = statistics.median(walls)
    megapixels = batch * height * width / 1e6
    return {
        "model": name,
        "device": device,
        "precision": precision,
        "mode": mode,
        "size": f"{width}x{height}",
        "batch": batch,
        "images_per_s": round(batch / median, 2),
        "ms_per_image": round(1000 * median / batch, 2),
        "ms_per_megapixel": round(1000 * median / megapixels, 2),
        "median_s": round(median, 4),
        "repeats": len(walls),
        "cpu_ms_per_image": round(1000 * statistics.median(cpus) / batch, 1),
        "cpu_load": round(statistics.median(c / w for c, w in zip(cpus, walls)) / threads, 2)
        if device == "cpu"
        else None,
        **extra,
    }


def network(spec: str) -> STFuseNet:
    """``PRESET`` or ``PRESET/HEAD`` (``compact/paint``: the preset with the painting head, as a baseline), or
    ``packaged``: the packaged default weights themselves (their architecture, the recipe's detail residual
    included, with their trained values)."""
    if spec == "packaged":
        return load_network(DEFAULT_WEIGHTS)
    preset, _, head = spec.partition("/")
    return STFuseNet(preset=preset, **({"head": head} if head else {}))


def make_fuser(preset: str, device: str, precision: str, compiled: bool) -> Fuser:
    """A Fuser over random weights (seed 0; ``packaged``: the default weights), never tiling: the network alone
    is timed."""
    torch.manual_seed(0)
    return Fuser(network(preset), device=device, precision=precision, compile=compiled, tile=0)


def bench_network(
    preset: str,
    device: str,
    precision: str,
    compiled: bool,
    size: tuple[int, int],
    batch: int,
    args: argparse.Namespace,
    threads: int,
    fuser: Fuser | None = None,
) -> dict[str, Any]:
    """Time ``fuser`` (a fresh one when None) on ``batch`` random pairs of ``size``.

    A compiled fuser may be shared across sizes and batch sizes (it compiles with dynamic shapes); its first
    call on each configuration is timed apart as ``compile_s`` (compilation, or a recompilation for a new
    shape, plus one run).
    """
    if fuser is None:
        fuser = make_fuser(preset, device, precision, compiled)
    height, width = size
    ir = torch.rand(batch, 1, height, width, device=device)
    vi = torch.rand(batch, 1, height, width, device=device)
    compile_s = None
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    if compiled:
        _synchronize()
        start = time.perf_counter()
        fuser.fuse_luminance(ir, vi)
        _synchronize()
        compile_s = round(time.perf_counter() - start, 1)
    walls, cpus = _time_runs(lambda: fuser.fuse_luminance(ir, vi), args.warmup, args.repeats)
    extra: dict[str, Any] = {"compile_s": compile_s}
    if device != "cpu":
        extra["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return _record(
        f"stfuse-{preset}",
        device,
        precision,
        "compiled" if compiled else "eager",
        size,
        batch,
        walls,
        cpus,
        threads,
        **extra,
    )


def bench_baselines(
    size: tuple[int, int], batch: int, args: argparse.Namespace, threads: int, skipped: list[dict[str, str]]
) -> list[dict[str, Any]]:
    try:
        from stfuse import baselines
    except ImportError as error:
        skipped.append({"what": "baselines", "reason": f"stfuse.baselines cannot be imported: {error}"})
        return []
    fuse_baseline = getattr(baselines, "fuse_baseline", None)
    if fuse_baseline is None:
        skipped.append({"what": "baselines", "reason": "stfuse.baselines has no fuse_baseline yet"})
        return []
    available = list(
        getattr(baselines, "BASELINES", None) or getattr(baselines, "BASELINE_NAMES", None) or []
    )
    names = [n for n in args.baselines if not available or n in available]
    for missing in sorted(set(args.baselines) - set(names)):
        skipped.append(
            {"what": f"baseline {missing}", "reason": f"not in stfuse.baselines ({', '.join(available)})"}
        )
    results = []
    height, width = size
    ir, vi = torch.rand(batch, 1, height, width), torch.rand(batch, 1, height, width)
    for name in names:
        try:
            walls, cpus = _time_runs(lambda name=name: fuse_baseline(name, ir, vi), args.warmup, args.repeats)
        except Exception as error:  # a baseline that cannot run is reported, not fatal
            skipped.append({"what": f"baseline {name}", "reason": f"{type(error).__name__}: {error}"})
            continue
        results.append(_record(f"baseline-{name}", "cpu", "fp32", "eager", size, batch, walls, cpus, threads))
    return results


def profile_network(preset: str, size: tuple[int, int], precision: str, top: int) -> dict[str, Any]:
    """Top ops of one eager forward at ``size`` (self CPU time), to show what limits CPU throughput."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    fuser = Fuser(network(preset), device="cpu", precision=precision, tile=0)
    height, width = size
    ir, vi = torch.rand(1, 1, height, width), torch.rand(1, 1, height, width)
    fuser.fuse_luminance(ir, vi)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            fuser.fuse_luminance(ir, vi)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return {
        "model": f"stfuse-{preset}",
        "size": f"{width}x{height}",
        "precision": precision,
        "top_ops": [
            {
                "op": e.key,
                "calls_per_forward": e.count // 3,
                "self_cpu_ms_per_forward": round(e.self_cpu_time_total / 3000, 2),
                "percent": round(100 * e.self_cpu_time_total / total, 1),
            }
            for e in events[:top]
        ],
    }


def bench_pipeline(folder: Path, preset: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """``stfuse fuse`` end to end over ``folder/ir`` + ``folder/vi`` (decode, fuse, colour, encode, write)."""
    from stfuse.inference.runner import collect_pairs, fuse_pairs

    torch.manual_seed(0)
    fuser = Fuser(network(preset), device="cpu")
    pairs, _ = collect_pairs(folder / "ir", folder / "vi")
    torch.set_num_threads(args.threads or max(1, physical_cores() - (1 if workers else 0)))
    walls = []
    for _ in range(max(1, args.repeats // 2)):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            report = fuse_pairs(
                fuser, pairs, Path(out), batch_size=args.pipeline_batch, workers=workers, progress=False
            )
            walls.append(time.perf_counter() - start)
            if report.failed:
                raise RuntimeError(f"pipeline run failed: {report.failed[:3]}")
    median = statistics.median(walls)
    return {
        "model": f"stfuse-{preset}",
        "folder": str(folder),
        "pairs": len(pairs),
        "workers": workers,
        "torch_threads": torch.get_num_threads(),
        "batch": args.pipeline_batch,
        "pairs_per_s": round(len(pairs) / median, 2),
        "median_s": round(median, 2),
    }


def _progress(label: str, result: dict[str, Any]) -> None:
    """One line per finished configuration on stderr, so an interrupted run still leaves its numbers."""
    print(f"{label}: {json.dumps(result)}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--presets",
        help="PRESET or PRESET/HEAD list (compact,compact/paint), or packaged (the default weights)",
        default="small,base",
    )
    parser.add_argument("--sizes", default="640x480,1024x768", help="W×H list")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--devices", default="cpu,cuda", help="cuda is skipped when absent")
    parser.add_argument("--baselines", default="laplacian", help="classical rules from stfuse.baselines")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed calls before each timing (the first calls of a process run slower while the allocator and "
        "oneDNN's caches warm up; with 1, the first model timed in a process came out about 30%% slower)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile at batch 1 of the first size"
    )
    parser.add_argument(
        "--modes",
        default="eager",
        help="eager and/or compiled (comma-separated): compiled runs every size × batch size, one compile "
        "per precision (dynamic shapes)",
    )
    parser.add_argument("--profile", action="store_true", help="torch.profiler top ops for the small preset")
    parser.add_argument(
        "--pipeline", type=Path, help="folder with ir/ and vi/ for an end-to-end stfuse fuse run"
    )
    parser.add_argument("--pipeline-batch", type=int, default=1)
    parser.add_argument(
        "--pipeline-workers", type=int, nargs="*", help="loader workers to try (default: 0 and 1)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: physical cores)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="compact preset, 640×480, batch 1 and 16, 3 repeats"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.sizes, args.repeats = "compact", "640x480", min(args.repeats, 3)
    args.baselines = [b for b in args.baselines.split(",") if b]
    modes = [m for m in args.modes.split(",") if m]
    unknown_modes = sorted(set(modes) - {"eager", "compiled"})
    if unknown_modes or not modes:
        parser.error(f"--modes: unknown mode(s) {unknown_modes or modes}; use eager and/or compiled")

    threads = configure_cpu_threads(workers=0, threads=args.threads)
    skipped: list[dict[str, str]] = []
    results: list[dict[str, Any]] = []
    devices = [d for d in args.devices.split(",") if d]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        skipped.append({"what": "cuda", "reason": "no CUDA device on this machine"})
    started = time.perf_counter()
    load_before = os.getloadavg()

    sizes = [_size(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    for device in devices:
        for preset in args.presets.split(","):
            for precision in args.precisions.split(","):
                for mode in modes:
                    compiled = mode == "compiled"
                    shared: Fuser | None = None
                    if compiled:
                        try:
                            shared = make_fuser(preset, device, precision, True)
                        except Exception as error:
                            skipped.append(
                                {
                                    "what": f"stfuse-{preset} {device} {precision} compiled",
                                    "reason": f"{type(error).__name__}: {error}".splitlines()[0],
                                }
                            )
                            continue
                    for size in sizes:
                        for batch in batches:
                            label = f"stfuse-{preset} {device} {precision} {mode} {size[1]}x{size[0]} batch {batch}"
                            try:
                                results.append(
                                    bench_network(
                                        preset,
                                        device,
                                        precision,
                                        compiled,
                                        size,
                                        batch,
                                        args,
                                        threads,
                                        shared,
                                    )
                                )
                                _progress(label, results[-1])
                            except Exception as error:
                                skipped.append(
                                    {
                                        "what": label,
                                        "reason": f"{type(error).__name__}: {error}".splitlines()[0],
                                    }
                                )
                    del shared
                    if device != "cpu":
                        torch.cuda.empty_cache()
            if args.compile and "compiled" not in modes:
                for precision in args.precisions.split(","):
                    label = f"stfuse-{preset} {device} {precision} compiled"
                    try:
                        results.append(
                            bench_network(preset, device, precision, True, sizes[0], 1, args, threads)
                        )
                        _progress(label, results[-1])
                    except Exception as error:
                        skipped.append(
                            {"what": label, "reason": f"{type(error).__name__}: {error}".splitlines()[0]}
                        )
    if args.baselines:
        for size in sizes:
            results += bench_baselines(size, 1, args, threads, skipped)

    report: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "physical_cores": physical_cores(),
            "torch_threads": threads,
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cuda_runtime": torch.version.cuda,
            "cudnn_conv_fp32_precision": _conv_fp32_precision(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "settings": {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "channels_last": True,
            "weights": "random",
            "modes": modes + (["compiled (batch 1)"] if args.compile and "compiled" not in modes else []),
        },
        "results": results,
        "skipped": skipped,
    }
    if args.profile:
        report["profile"] = [
            profile_network("small", sizes[0], p, top=12) for p in args.precisions.split(",")
        ]
    if args.pipeline:
        report["pipeline"] = [
            bench_pipeline(args.pipeline, "small", args, workers)
            for workers in (args.pipeline_workers or [0, 1])
        ]
    report["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
