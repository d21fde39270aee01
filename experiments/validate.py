"""Score trained target-stage runs on the held-out validation split of the IVIF training data.

    python experiments/validate.py outputs/reproduce/ivif_stfuse outputs/reproduce/ivif_no_transfer ...
    python experiments/validate.py --json val.json RUN_DIR_OR_CKPT ...

This is the split every model-selection decision uses (the "what moved the metrics" table in
docs/results.md, the choice of the shipped recipe): ``val_size`` pairs held out of
``train/ivif/{roadscene,msrs}`` by ``IVIFDataModule`` with the same seed as training, so they never
trained a model, and they hold no test pair (TNO-25, RoadScene-50 and MSRS-20 are never read here).
Each run's ``checkpoints/last.ckpt`` fuses the pairs; the classical average, maximum and Laplacian
rules and the two copy baselines (``copy_ir``, ``copy_vi``) are scored on the same pairs as in-run baselines, with the
``cddfuse`` metric preset. Each row also records ``copy_distance``: the smaller of mean|F − IR| and
mean|F − VIS| over the pairs, which :func:`is_copy` uses to reject a model whose output is one source.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

from stfuse.runtime import find_data_root

REPO = Path(__file__).resolve().parents[1]
TABLE_METRICS = ["EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM"]
BASELINE_ROWS = ("average", "maximum", "laplacian", "copy_ir", "copy_vi")
#: a fused image closer than this to one source (mean absolute difference, [0, 1] scale) is a copy of it
COPY_FLOOR = 0.01


def is_copy(row: dict[str, float]) -> bool:
    """True for a validation row whose output is (nearly) one source: SCD undefined, or F ≈ IR or F ≈ VIS.

    Such a model "wins" MI and VIF while fusing nothing, so model selection must never pick it.
    """
    scd = row.get("SCD")
    if scd is None or not math.isfinite(scd):
        return True
    return row.get("copy_distance", float("inf")) < COPY_FLOOR


def validation_pairs(data_root: Path, val_size: int, seed: int) -> list[dict]:
    """The held-out pairs, exactly as ``IVIFDataModule`` holds them out during training."""
    from data_modules import IVIFDataModule

    roots = [str(data_root / "train" / "ivif" / "roadscene"), str(data_root / "train" / "ivif" / "msrs")]
    module = IVIFDataModule(train_roots=roots, val_size=val_size, split_seed=seed, num_workers=0)
    module.setup("fit")
    assert module.val_dataset is not None
    return [module.val_dataset[i] for i in range(len(module.val_dataset))]


def score(fuse, pairs: list[dict]) -> dict[str, float]:
    from stfuse.metrics import FusionMetrics

    metrics = FusionMetrics(preset="cddfuse", metrics=TABLE_METRICS)
    to_ir, to_vi = [], []
    with torch.inference_mode():
        for item in pairs:
            ir, vi = item["ir"][None], item["vi"][None]
            fused = torch.round(fuse(ir, vi).clamp(0, 1) * 255) / 255
            metrics.update(fused, ir, vi)
            to_ir.append(float((fused - ir).abs().mean()))
            to_vi.append(float((fused - vi).abs().mean()))
    row = {name: float(value) for name, value in metrics.compute().items()}
    row["copy_distance"] = min(sum(to_ir) / len(to_ir), sum(to_vi) / len(to_vi))
    return row


def resolve_checkpoint(path: Path) -> Path:
    if path.is_file():
        return path
    ckpt = path / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"{path}: no checkpoints/last.ckpt (train the run first, or pass a checkpoint file)")
    return ckpt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", nargs="+", help="run folders (with checkpoints/last.ckpt) or checkpoint files"
    )
    parser.add_argument("--data-root", default=str(find_data_root()))
    parser.add_argument(
        "--val-size", type=int, default=16, help="pairs held out of the training data (default 16)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the split seed the runs held their pairs out with (default 0)"
    )
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--json", help="also write the scores to this JSON file")
    args = parser.parse_args()

    from stfuse.baselines import fuse_baseline
    from stfuse.models.checkpoint import load_network

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    pairs = validation_pairs(Path(args.data_root), args.val_size, args.seed)
    rows: dict[str, dict[str, float]] = {}
    if not args.no_baselines:
        for name in BASELINE_ROWS:
            rows[name] = score(lambda ir, vi, name=name: fuse_baseline(name, ir, vi), pairs)
    for run in args.runs:
        net = load_network(resolve_checkpoint(Path(run))).eval()
        rows[Path(run).name if Path(run).is_dir() else str(run)] = score(net, pairs)

    laplacian = rows.get("laplacian")
    print(f"validation split: {len(pairs)} pairs held out of train/ivif (seed {args.seed})")
    print("| run | " + " | ".join(TABLE_METRICS) + " | > Laplacian |")
    print("|---|" + "---|" * (len(TABLE_METRICS) + 1))
    for name, values in rows.items():
        wins = sum(values[m] > laplacian[m] for m in TABLE_METRICS) if laplacian else 0
        cells = " | ".join(f"{values[m]:.3f}" for m in TABLE_METRICS)
        copy = " (a copy of one source)" if is_copy(values) else ""
        print(f"| {name}{copy} | {cells} | {wins}/8 |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"pairs": len(pairs), "seed": args.seed, "scores": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
