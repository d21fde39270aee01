"""The evaluation loop behind ``stfuse evaluate``: read every pair once, fuse baselines on the fly, and
feed each method's images to its own :class:`~stfuse.metrics.FusionMetrics`.

Images are read with :func:`read_gray_255` (CDDFuse's reader), so the numbers match the reference;
under the ``vifb`` preset with their stored channels as well (:mod:`stfuse.evaluation.vifb_io`).
Reading runs in a background thread while the metrics compute; pairs of equal size are batched up to
``batch_pixels`` per update, which is what makes the GPU path fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stfuse.baselines import canonical_baseline_name, fuse_baseline
from stfuse.evaluation.io import EvaluationInputError, read_gray_255
from stfuse.evaluation.sources import SourcePair, image_size, match_fused
from stfuse.evaluation.vifb_io import grey_of_stored, read_as_stored, update_as_stored
from stfuse.metrics import LOWER_IS_BETTER, FusionMetrics, resolve_metric_names
from stfuse.metrics.presets import get_preset

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
            means = {m: summary[m][metric]["mean"] for m in self.methods if math.isfinite(summary[m][metric]["mean"])}
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
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _to_uint8(gray_255: np.ndarray) -> np.ndarray:
    """The reader's float32 0..255 integers as uint8 (lossless), the cheapest form to move and convert."""
    return gray_255.astype(np.uint8)


def _batches(pairs: list[SourcePair], sizes: dict[str, tuple[int, int]], batch_pixels: int) -> list[list[SourcePair]]:
    """Consecutive runs of equal-size pairs, each at most ``batch_pixels`` pixels (at least one pair)."""
    batches: list[list[SourcePair]] = []
    for pair in pairs:
        h, w = sizes[pair.name]
        last = batches[-1] if batches else None
        if (
            last is not None
            and sizes[last[0].name] == (h, w)
            and (len(last) + 1) * h * w <= batch_pixels
        ):
            last.append(pair)
        else:
            batches.append([pair])
    return batches


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
) -> EvaluationResult:
    """Evaluate every method on every pair.

    ``fused_dirs`` maps a method name to the folder of its fused images (same stems as the pairs);
    ``baselines`` names classical rules computed here from the sources (rounded to 8 bits like a saved
    PNG). ``progress`` is called with the number of pairs finished after each batch.
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
    device = torch.device(device)
    if batch_pixels is None:
        batch_pixels = 8_000_000 if device.type == "cuda" else 1
    fused_files = match_fused(pairs, fused_dirs)
    as_stored = spec.colour == "vifb"  # VIFB scores images with their stored channels (vifb_io)
    collections = {m: FusionMetrics(spec, metric_names, data_range=255.0).to(device) for m in methods}
    sizes = {pair.name: image_size(pair.ir) for pair in pairs}
    result = EvaluationResult(
        preset=spec.name,
        metrics=metric_names,
        methods=methods,
        images=[],
        values={m: {k: [] for k in metric_names} for m in methods},
        origins={m: ("baseline" if m in baseline_names else "folder") for m in methods},
    )

    def load(batch: list[SourcePair]) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
        images: dict[str, list[np.ndarray]] = {"ir": [], "vi": []}
        for method in fused_dirs:
            images[method] = []
        stored: dict[str, list[np.ndarray]] = {key: [] for key in images} if as_stored else {}
        for pair in batch:
            paths = {"ir": pair.ir, "vi": pair.vi} | {m: fused_files[m][pair.name] for m in fused_dirs}
            for key, path in paths.items():
                if as_stored:
                    stored[key].append(read_as_stored(path))
                    images[key].append(grey_of_stored(stored[key][-1]))
                else:
                    images[key].append(_to_uint8(read_gray_255(path)))
        return images, stored

    batches = _batches(pairs, sizes, batch_pixels)
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming: Iterator[list[SourcePair]] = iter(batches)
        current: list[SourcePair] | None = next(upcoming)
        future = reader.submit(load, current)
        while current is not None:
            images, stored = future.result()
            following = next(upcoming, None)
            if following is not None:
                future = reader.submit(load, following)
            stacked = {key: torch.from_numpy(np.stack(arrays))[:, None].to(device) for key, arrays in images.items()}
            ir, vi = stacked["ir"], stacked["vi"]
            for name in baseline_names:
                fused = fuse_baseline(name, ir.to(torch.float64), vi.to(torch.float64), data_range=255.0)
                stacked[name] = fused.round().to(torch.uint8)
            for method in methods:
                if as_stored:
                    fused_images = stored.get(method, stacked[method])  # baselines: grey tensors
                    update_as_stored(collections[method], fused_images, stored["ir"], stored["vi"], device)
                else:
                    collections[method].update(stacked[method], ir, vi)
            for index, pair in enumerate(current):
                result.images.append(pair.name)
                if thumbnails:
                    result.thumbnails[pair.name] = {
                        key: _thumbnail(stacked[key][index, 0].cpu().numpy()) for key in ["ir", "vi", *methods]
                    }
            if progress is not None:
                progress(len(current))
            current = following
    for method in methods:
        per_image = collections[method].compute_per_image()
        for metric in metric_names:
            result.values[method][metric] = [float(v) for v in per_image[metric].cpu().tolist()]
    return result
