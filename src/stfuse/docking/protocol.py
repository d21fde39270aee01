"""The docking protocol: one detector, one schedule, several image sources, several seeds.

For every source and seed, the same CenterNet-style detector is trained from scratch on the split's train
stems and scored on its test stems with COCO mAP. Results of finished (source, seed) runs are kept under
``<out>/runs/`` with a fingerprint of everything they depend on, so adding a source later (for example the
trained STFuse model) trains only that source and rebuilds the whole table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stfuse.docking import report
from stfuse.docking.errors import DockingError
from stfuse.docking.labels import MSRS_CLASSES, read_class_names, read_label_dir
from stfuse.docking.metrics import Detections, mean_average_precision
from stfuse.docking.settings import LABEL_SETS, DockingConfig
from stfuse.docking.sources import (
    SourceSpec,
    fingerprint,
    read_image,
    resolve_source_files,
    to_detector_input,
)
from stfuse.docking.split import Split, default_split_path, load_split
from stfuse.docking.train import predict, select_device, train_detector

#: bump when a change to the protocol code makes stored run results incomparable
PROTOCOL_VERSION = 1


@dataclass
class LoadedSource:
    """A source's detector inputs for the train and test stems."""

    spec: SourceSpec
    train: list[torch.Tensor]
    test: list[torch.Tensor]
    fingerprint: str


def find_data_root(explicit: str | Path | None = None) -> Path:
    """The MSRS docking folder: ``explicit`` (from ``--root``), else ``$STFUSE_DATA/docking/msrs_det``, else
    ``../shared/data/docking/msrs_det``."""
    if explicit is not None:
        root = Path(explicit)
        if not root.is_dir():
            raise DockingError(f"{root}: data root does not exist")
        return root
    from stfuse.runtime import data_root_candidates

    for candidate in (root / "docking" / "msrs_det" for root in data_root_candidates()):
        if candidate.is_dir():
            return candidate
    raise DockingError(
        "MSRS docking data not found; pass --root DATA_ROOT (holding docking/msrs_det/ with ir/, vi/, label/) "
        "or set $STFUSE_DATA"
    )


def limit_stems(stems: Sequence[str], limit: int | None) -> list[str]:
    """At most ``limit`` stems, evenly spaced (keeps day and night in the subset)."""
    stems = list(stems)
    if limit is None or limit >= len(stems):
        return stems
    if limit <= 0:
        raise DockingError(f"limit must be positive, got {limit}")
    idx = np.linspace(0, len(stems) - 1, limit).round().astype(int)
    return [stems[i] for i in sorted(set(idx.tolist()))]


def _run_key(config: DockingConfig, split: Split, spec: SourceSpec, source_fp: str, seed: int) -> str:
    payload = {
        "protocol": PROTOCOL_VERSION,
        "train": dataclasses.asdict(config.train),
        "labels": config.labels,
        "color": config.color,
        "train_stems": list(split.train),
        "test_stems": list(split.test),
        "source": source_fp,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def run_docking(
    sources: Sequence[SourceSpec],
    out_dir: str | Path,
    config: DockingConfig | None = None,
    data_root: str | Path | None = None,
    split_path: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Train and score the detector on every source and seed; write tables and figures to ``out_dir``.

    Returns the content of ``results.json``. Finished (source, seed) runs under ``out_dir/runs`` whose
    fingerprint still matches are reused unless ``force``.
    """
    config = config or DockingConfig.preset("full")
    if not sources:
        raise DockingError("no sources given")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise DockingError(f"source names must be unique, got {', '.join(names)}")
    if config.labels not in LABEL_SETS:
        raise DockingError(f"labels must be one of {LABEL_SETS}, got {config.labels!r}")
    if not config.seeds:
        raise DockingError("at least one seed is needed")
    root = find_data_root(data_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = select_device(config.device)

    if split_path is None:
        split_path = default_split_path()
        if split_path is None:
            raise DockingError(
                "the committed split experiments/docking/msrs_det_split.json was not found; pass --split"
            )
    full_split = load_split(split_path)
    split = Split(
        train=tuple(limit_stems(full_split.train, config.limit_train)),
        test=tuple(limit_stems(full_split.test, config.limit_test)),
    )
    stems = [*split.train, *split.test]

    class_file = root / "classes.txt"
    class_names = read_class_names(class_file) if class_file.is_file() else MSRS_CLASSES
    label_dir = root / "label" / config.labels
    labels = read_label_dir(label_dir, stems, num_classes=len(class_names))

    t_start = time.perf_counter()
    # the IR image of each pair fixes the pixel frame in which boxes are scored
    ref_files = resolve_source_files(SourceSpec("ir", "dataset"), root, stems, out / "cache", log)
    frames = {stem: _image_size(path) for stem, path in ref_files.items()}
    loaded = _load_sources(sources, root, stems, split, config, frames, out / "cache", log)

    train_boxes = [labels[s].xyxy for s in split.train]
    train_labels = [labels[s].labels for s in split.train]
    test_gt = {s: labels[s] for s in split.test}
    results: dict[str, dict[str, object]] = {}
    first_dets: dict[str, dict[str, Detections]] = {}
    for src in loaded:
        runs = []
        for seed in config.seeds:
            key = _run_key(config, split, src.spec, src.fingerprint, seed)
            run_path = out / "runs" / src.spec.name / f"seed{seed}.json"
            det_path = out / "runs" / src.spec.name / f"seed{seed}_detections.json"
            cached = _read_json(run_path)
            if not force and cached is not None and cached.get("key") == key and det_path.is_file():
                log(f"[dock] {src.spec.name} seed {seed}: reusing {run_path}")
                run = cached
                dets = _read_detections(det_path, split.test)
            else:
                log(f"[dock] {src.spec.name} seed {seed}: training on {len(src.train)} images ({device})")
                t0 = time.perf_counter()
                model, history = train_detector(
                    src.train, train_boxes, train_labels, len(class_names), config.train, seed, device, log
                )
                preds = predict(model, src.test, device, batch_size=config.train.batch_size)
                dets = dict(zip(split.test, preds))
                metrics = mean_average_precision(test_gt, dets, frames, class_names)
                run = {
                    "key": key,
                    "source": src.spec.name,
                    "seed": seed,
                    **metrics,
                    "loss_history": history,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                run_path.parent.mkdir(parents=True, exist_ok=True)
                run_path.write_text(json.dumps(report.json_safe(run), indent=1))
                _write_detections(det_path, dets)
                log(
                    f"[dock] {src.spec.name} seed {seed}: mAP@0.5 {run['map50']:.3f}  mAP@0.5:0.95 {run['map']:.3f}"
                    f"  ({run['seconds']} s)"
                )
            runs.append(run)
            if seed == config.seeds[0]:
                first_dets[src.spec.name] = dets
        results[src.spec.name] = {
            "kind": src.spec.kind,
            "location": src.spec.location,
            "runs": runs,
            "summary": report.summarise(runs, class_names),
        }

    payload = {
        "protocol_version": PROTOCOL_VERSION,
        "data_root": str(root),
        "split_file": str(split_path),
        "num_train": len(split.train),
        "num_test": len(split.test),
        "labels": config.labels,
        "classes": list(class_names),
        "test_boxes_per_class": {
            c: sum(int((b.labels == k).sum()) for b in test_gt.values()) for k, c in enumerate(class_names)
        },
        "config": _config_dict(config),
        "device": str(device),
        "seconds": round(time.perf_counter() - t_start, 1),
        "sources": results,
        "paired_map50_vs": report.paired_differences(results),
    }
    (out / "results.json").write_text(json.dumps(report.json_safe(payload), indent=1, allow_nan=False))
    (out / "results.md").write_text(report.markdown_table(results, class_names, config.seeds))
    report.bar_plot(results, class_names, out / "map_per_class.png")
    if config.num_qualitative > 0:
        shown = limit_stems(split.test, config.num_qualitative)
        positions = [split.test.index(s) for s in shown]
        panels = {
            src.spec.name: {s: src.test[i].permute(1, 2, 0).numpy() for s, i in zip(shown, positions)}
            for src in loaded
        }
        dets_shown = {name: {s: d[s] for s in shown} for name, d in first_dets.items()}
        report.detection_grid(
            panels, dets_shown, test_gt, class_names, out / "detections.png", config.score_threshold
        )
    log(
        f"[dock] wrote {out / 'results.md'}, results.json, map_per_class.png, detections.png "
        f"({payload['seconds']} s)"
    )
    return payload


def _load_sources(
    sources: Sequence[SourceSpec],
    root: Path,
    stems: list[str],
    split: Split,
    config: DockingConfig,
    frames: dict[str, tuple[int, int]],
    cache_dir: Path,
    log: Callable[[str], None],
) -> list[LoadedSource]:
    """Resolve every source first (so stem mismatches fail before any training), then read the images."""
    resolved = [(spec, resolve_source_files(spec, root, stems, cache_dir, log)) for spec in sources]
    loaded = []
    for spec, files in resolved:

        def load(stem: str, files: dict[str, Path] = files, spec: SourceSpec = spec) -> torch.Tensor:
            img = read_image(files[stem])
            ref_w, ref_h = frames[stem]
            h, w = img.shape[:2]
            if abs(w / h - ref_w / ref_h) > 0.02 * ref_w / ref_h:
                raise DockingError(
                    f"{files[stem]}: {w}×{h} has another aspect ratio than the pair ({ref_w}×{ref_h}); "
                    f"the boxes of source {spec.name!r} would not line up"
                )
            return to_detector_input(img, config.color, config.train.image_size)

        loaded.append(
            LoadedSource(
                spec, [load(s) for s in split.train], [load(s) for s in split.test], fingerprint(spec, files)
            )
        )
    return loaded


def _image_size(path: Path) -> tuple[int, int]:
    """(W, H) of an image."""
    h, w = read_image(path).shape[:2]
    return w, h


def _config_dict(config: DockingConfig) -> dict[str, object]:
    data = dataclasses.asdict(config)
    data["seeds"] = list(config.seeds)
    return data


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _write_detections(path: Path, dets: dict[str, Detections]) -> None:
    payload = {
        stem: {"xyxy": xyxy.tolist(), "scores": scores.tolist(), "labels": labels.tolist()}
        for stem, (xyxy, scores, labels) in dets.items()
    }
    path.write_text(json.dumps(payload))


def _read_detections(path: Path, stems: Sequence[str]) -> dict[str, Detections]:
    data = json.loads(path.read_text())
    out = {}
    for stem in stems:
        d = data[stem]
        out[stem] = (
            torch.tensor(d["xyxy"], dtype=torch.float32).reshape(-1, 4),
            torch.tensor(d["scores"], dtype=torch.float32),
            torch.tensor(d["labels"], dtype=torch.int64),
        )
    return out


__all__ = ["LoadedSource", "find_data_root", "limit_stems", "run_docking"]
