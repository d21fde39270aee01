"""The evaluation loop behind ``stfuse evaluate``: read every pair once, fuse baselines on the fly, and
score each method's images with one :class:`~stfuse.metrics.MetricSuite`.

Images are read with :func:`read_gray_255` (CDDFuse's reader), so the numbers match the reference;
under the ``vifb`` preset with their stored channels as well (:mod:`stfuse.evaluation.vifb_io`).

Work is split into tasks of equal-size pairs (up to ``batch_pixels`` per task: one pair on the CPU,
8 M pixels on a GPU), and a pool of threads reads, converts and scores whole tasks side by side. Every
thread runs torch with one intra-op thread, so the CPU cores work on different images instead of
waiting on each other inside every small operation; OpenCV and torch release the GIL while they work.
The suite is the same code as :class:`~stfuse.metrics.FusionMetrics` without the ``torchmetrics``
import and state, and values come back in pair order whatever the order the tasks finish in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from stfuse.baselines import canonical_baseline_name, fuse_baseline
from stfuse.evaluation.io import EvaluationInputError, read_gray_255
from stfuse.evaluation.sources import SourcePair, image_size, match_fused
from stfuse.metrics.presets import get_preset
from stfuse.metrics.registry import LOWER_IS_BETTER, resolve_metric_names
from stfuse.metrics.suite import MetricSuite

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

#: Longest thumbnail side in the HTML report.
THUMBNAIL_SIZE = 192


@dataclass
class EvaluationResult:
    """Per-image values of every metric for every method, and what produced them."""

    preset: str
    metrics: list[str]
    methods: list[str]
    images: list[str]
    #: method → metric → values in ``images`` order.
    values: dict[str, dict[str, list[float]]]
    #: Where each method's images came from ("folder" or "baseline"), for the report.
    origins: dict[str, str] = field(default_factory=dict)
    #: name → uint8 thumbnails ("ir", "vi", then each method), filled when requested.
    thumbnails: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """method → metric → {"mean", "std", "count"}; std is the population std (numpy's default)."""
        table: dict[str, dict[str, dict[str, float]]] = {}
        for method in self.methods:
            table[method] = {}
            for metric in self.metrics:
                column = np.asarray(self.values[method][metric], dtype=np.float64)
                table[method][metric] = {
                    "mean": float(column.mean()),
                    "std": float(column.std()),
                    "count": int(column.size),
                }
        return table

    def best_methods(self) -> dict[str, list[str]]:
        """metric → the method(s) with the best mean (lowest for MSE and Nabf, highest otherwise)."""
        summary = self.summary()
        best: dict[str, list[str]] = {}
        for metric in self.metrics:
            means = {
                m: summary[m][metric]["mean"]
                for m in self.methods
                if math.isfinite(summary[m][metric]["mean"])
            }
            if not means:
                best[metric] = []
                continue
            target = (min if metric in LOWER_IS_BETTER else max)(means.values())
            best[metric] = [m for m, v in means.items() if v == target]
        return best


def _thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        image = cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return np.ascontiguousarray(image)


def _to_uint8(gray_255: np.ndarray) -> np.ndarray:
    """The reader's float32 0..255 integers as uint8 (lossless), the cheapest form to move and convert."""
    return gray_255.astype(np.uint8)


def _batches(
    pairs: list[SourcePair], sizes: dict[str, tuple[int, int]], batch_pixels: int
) -> list[list[SourcePair]]:
    """Consecutive runs of equal-size pairs, each at most ``batch_pixels`` pixels (at least one pair)."""
    batches: list[list[SourcePair]] = []
    for pair in pairs:
        h, w = sizes[pair.name]
        last = batches[-1] if batches else None
        if last is not None and sizes[last[0].name] == (h, w) and (len(last) + 1) * h * w <= batch_pixels:
            last.append(pair)
        else:
            batches.append([pair])
    return batches


class _CollectedValues:
    """Takes ``update(fused, ir, vi)`` calls (the interface :func:`~stfuse.evaluation.vifb_io.update_as_stored`
    drives) and keeps the suite's per-image values in call order."""

    def __init__(self, suite: MetricSuite) -> None:
        self.suite = suite
        self.parts: list[dict[str, torch.Tensor]] = []

    def update(self, fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> None:
        self.parts.append(self.suite(fused, ir, vi))

    def values(self) -> dict[str, torch.Tensor]:
        return {name: torch.cat([part[name] for part in self.parts]) for name in self.suite.metric_names}


def map_in_threads(
    function: Callable[[_Item], _Result],
    items: Sequence[_Item],
    workers: int,
    cost: Callable[[_Item], float] | None = None,
    threads_per_worker: int = 1,
) -> Iterator[_Result]:
    """``function(item)`` for every item on ``workers`` threads, yielded in item order.

    Each thread runs torch with ``threads_per_worker`` intra-op threads (default one; the caller's
    setting is restored afterwards), so the cores work on different items instead of waiting on each
    other inside every small operation. With ``cost``, the costliest items start first, so no thread is
    left alone with a big one at the end. An exception cancels the items not started yet and propagates.
    """
    if workers <= 1:
        yield from map(function, items)
        return

    def run(item: _Item) -> _Result:
        torch.set_num_threads(threads_per_worker)  # this thread's own setting
        return function(item)

    caller_threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stfuse-evaluate") as pool:
            order = sorted(range(len(items)), key=lambda i: -cost(items[i])) if cost else range(len(items))
            submitted = {index: pool.submit(run, items[index]) for index in order}
            futures = [submitted[index] for index in range(len(items))]
            try:
                for future in futures:
                    yield future.result()
            except BaseException:
                for pending in futures:
                    pending.cancel()  # an unreadable image stops the run without scoring the rest
                raise
    finally:
        torch.set_num_threads(caller_threads)


#: At most this many tasks side by side on the CPU (each holds a few dozen full-size float64 maps).
MAX_CPU_WORKERS = 8


def default_workers(device: torch.device) -> int:
    """Tasks run side by side: one per torch CPU thread on the CPU (``--threads`` sets that), up to
    :data:`MAX_CPU_WORKERS`; two on a GPU (one reads and converts while the other's batch computes)."""
    return 2 if device.type != "cpu" else max(1, min(torch.get_num_threads(), MAX_CPU_WORKERS))


def evaluate_pairs(
    pairs: list[SourcePair],
    fused_dirs: dict[str, Path] | None = None,
    baselines: list[str] | None = None,
    *,
    preset: str = "cddfuse",
    metrics: str | list[str] | None = None,
    device: str | torch.device = "cpu",
    batch_pixels: int | None = None,
    thumbnails: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> EvaluationResult:
    """Evaluate every method on every pair.

    ``fused_dirs`` maps a method name to the folder of its fused images (same stems as the pairs);
    ``baselines`` names classical rules computed here from the sources (rounded to 8 bits like a saved
    PNG). ``progress`` is called with the number of pairs finished, in pair order. ``workers`` tasks run
    side by side (default :func:`default_workers`); each of their threads uses one torch thread.
    """
    fused_dirs = dict(fused_dirs or {})
    baseline_names = [canonical_baseline_name(name) for name in (baselines or [])]
    methods = list(fused_dirs) + baseline_names
    if not methods:
        raise EvaluationInputError("nothing to evaluate: give at least one fused folder or baseline")
    duplicates = sorted({m for m in methods if methods.count(m) > 1})
    if duplicates:
        raise EvaluationInputError(f"method name used twice: {', '.join(duplicates)}")
    if not pairs:
        raise EvaluationInputError("no image pairs to evaluate")
    spec = get_preset(preset)
    metric_names = resolve_metric_names(metrics, spec)
    suite = MetricSuite(spec, metric_names, data_range=255.0)
    device = torch.device(device)
    if batch_pixels is None:
        batch_pixels = 8_000_000 if device.type == "cuda" else 1
    workers = default_workers(device) if workers is None else max(1, int(workers))
    fused_files = match_fused(pairs, fused_dirs)
    as_stored = suite.convention.keeps_channels  # e.g. VIFB scores the stored channels (vifb_io)
    sizes = {pair.name: image_size(pair.ir) for pair in pairs}
    result = EvaluationResult(
        preset=spec.name,
        metrics=metric_names,
        methods=methods,
        images=[pair.name for pair in pairs],
        values={m: {k: [] for k in metric_names} for m in methods},
        origins={m: ("baseline" if m in baseline_names else "folder") for m in methods},
    )

    def run(
        batch: list[SourcePair],
    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, np.ndarray]]]:
        """Read, fuse the baselines and score one task: ``({method: {metric: values}}, thumbnails)``."""
        stored: dict[str, list[np.ndarray]] = {}
        grey: dict[str, list[np.ndarray]] = {}
        for pair in batch:
            paths = {"ir": pair.ir, "vi": pair.vi} | {m: fused_files[m][pair.name] for m in fused_dirs}
            for key, path in paths.items():
                if as_stored:
                    from stfuse.evaluation.vifb_io import grey_of_stored, read_as_stored

                    stored.setdefault(key, []).append(read_as_stored(path))
                    grey.setdefault(key, []).append(grey_of_stored(stored[key][-1]))
                else:
                    grey.setdefault(key, []).append(_to_uint8(read_gray_255(path)))
        stacked = {
            key: torch.from_numpy(np.stack(arrays))[:, None].to(device) for key, arrays in grey.items()
        }
        ir, vi = stacked["ir"], stacked["vi"]
        for name in baseline_names:
            fused = fuse_baseline(name, ir.to(torch.float64), vi.to(torch.float64), data_range=255.0)
            stacked[name] = fused.round().to(torch.uint8)
        values: dict[str, dict[str, torch.Tensor]] = {}
        for method in methods:
            if as_stored:
                from stfuse.evaluation.vifb_io import update_as_stored

                collected = _CollectedValues(suite)
                fused_images = stored.get(method, stacked[method])  # baselines: grey tensors
                update_as_stored(collected, fused_images, stored["ir"], stored["vi"], device)  # type: ignore[arg-type]
                values[method] = collected.values()
            else:
                values[method] = suite(stacked[method], ir, vi)
        thumbs: dict[str, dict[str, np.ndarray]] = {}
        if thumbnails:
            for index, pair in enumerate(batch):
                thumbs[pair.name] = {
                    key: _thumbnail(stacked[key][index, 0].cpu().numpy()) for key in ["ir", "vi", *methods]
                }
        return values, thumbs

    tasks = _batches(pairs, sizes, batch_pixels)
    pixels = lambda batch: len(batch) * math.prod(sizes[batch[0].name])  # noqa: E731
    threads = max(1, torch.get_num_threads() // workers) if device.type == "cpu" else 1
    for batch, (values, thumbs) in zip(tasks, map_in_threads(run, tasks, workers, pixels, threads)):
        for method in methods:
            for metric in metric_names:
                result.values[method][metric].extend(float(v) for v in values[method][metric].cpu().tolist())
        result.thumbnails.update(thumbs)
        if progress is not None:
            progress(len(batch))
    return result
