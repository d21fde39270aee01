"""Training-loader throughput: crops per second from real folders, the MFIF synthesizer and the defaults.

    .venv/bin/python benchmarks/dataloader.py [--crop-size 256] [--workers 2] [--passes 5] [--batches 20]

Prints one JSON object. Each source is measured through its data module's real train_dataloader: one
warm-up pass (worker start-up, first decodes), then ``--passes`` timed passes of ``--batches`` batches
each; the figure is the median crops/s over the timed passes. Each source also gets the CPU time of one
sample in this process (one thread), which does not depend on how loaded a shared machine is. The data root comes from ``--data-root``,
``$STFUSE_DATA`` or ``../shared/data`` beside the checkout; sources that need it are skipped without it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from data_modules.ivif import IVIFDataModule  # noqa: E402
from data_modules.mfif import MFIFDataModule  # noqa: E402
from stfuse import runtime  # noqa: E402


def find_data_root(explicit: str | None) -> Path | None:
    root = runtime.find_data_root(explicit)
    return root if root.is_dir() else None


def measure(loader: DataLoader, passes: int, batches: int) -> dict[str, float]:
    """Median crops/s over ``passes`` timed passes of ``batches`` batches, after one warm-up pass."""
    iterator: Iterator = iter(loader)

    def next_batch() -> dict:
        nonlocal iterator
        try:
            return next(iterator)
        except StopIteration:
            iterator = iter(loader)
            return next(iterator)

    for _ in range(batches):
        next_batch()
    rates = []
    for _ in range(passes):
        crops = 0
        start = time.perf_counter()
        for _ in range(batches):
            crops += next_batch()["name"].__len__()
        rates.append(crops / (time.perf_counter() - start))
    del iterator
    gc.collect()
    return {
        "crops_per_s_median": round(statistics.median(rates), 1),
        "crops_per_s_min": round(min(rates), 1),
        "crops_per_s_max": round(max(rates), 1),
    }


def cpu_ms_per_crop(dataset: Dataset, count: int = 60) -> float:
    """CPU time of one training sample in this process, one thread: a figure that does not depend on
    how busy a shared machine is (wall-clock crops/s do)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        for index in range(3):
            dataset[index]
        start = time.process_time()
        for index in range(count):
            dataset[index % len(dataset)]
        return round((time.process_time() - start) / count * 1000, 2)
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=None, help="names of the sources to measure")
    args = parser.parse_args(argv)

    data_root = find_data_root(args.data_root)
    crop, batch, workers = args.crop_size, args.batch_size, args.workers
    epoch = batch * args.batches * (args.passes + 1)

    def ivif(roots: list[str] | None) -> DataLoader:
        dm = IVIFDataModule(
            train_roots=roots,
            val_roots=roots,
            crop_size=crop,
            batch_size=batch,
            num_workers=workers,
            default_train_size=epoch,
            default_image_size=max(256, crop),
        )
        dm.setup("fit")
        return dm.train_dataloader()

    def mfif(roots: list[str] | None, cache: bool = False) -> DataLoader:
        dm = MFIFDataModule(
            roots=roots,
            crop_size=crop,
            batch_size=batch,
            num_workers=workers,
            samples_per_epoch=epoch,
            val_samples=1,
            cache_images=cache,
        )
        dm.setup("fit")
        return dm.train_dataloader()

    sources: dict[str, Callable[[], DataLoader]] = {
        "ivif_embedded_default": lambda: ivif(None),
        "mfif_embedded_textures": lambda: mfif(None),
    }
    if data_root is not None:
        sources["ivif_roadscene_train"] = lambda: ivif([str(data_root / "train/ivif/roadscene")])
        sources["mfif_natural"] = lambda: mfif([str(data_root / "train/natural")])
        sources["mfif_natural_cached"] = lambda: mfif([str(data_root / "train/natural")], cache=True)
    if args.only:
        unknown = set(args.only) - set(sources)
        if unknown:
            parser.error(f"unknown sources {sorted(unknown)}; available: {sorted(sources)}")
        sources = {name: build for name, build in sources.items() if name in args.only}

    results = {}
    for name, build in sources.items():
        loader = build()
        results[name] = measure(loader, args.passes, args.batches)
        results[name]["cpu_ms_per_crop_one_thread"] = cpu_ms_per_crop(loader.dataset)
    report = {
        "benchmark": "dataloader",
        "crop_size": crop,
        "batch_size": batch,
        "num_workers": workers,
        "timed_passes": args.passes,
        "batches_per_pass": args.batches,
        "data_root": str(data_root) if data_root else None,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
