"""Score trained target-stage runs on the held-out validation split of the IVIF training data.

    python experiments/validate.py outputs/reproduce/ivif_stfuse outputs/reproduce/ivif_no_transfer ...
    python experiments/validate.py --json val.json RUN_DIR_OR_CKPT ...

This is the split every model-selection decision uses (the "what moved the metrics" table in
docs/results.md, the choice of the shipped recipe): the pairs held out of ``train/ivif/{roadscene,msrs}``
by ``IVIFDataModule`` with the budget's split settings (``val_size``, ``split_seed``, ``val_strata``,
``val_min_per_root`` in experiments/budgets/<budget>/ivif.yaml), exactly as training held them out, so they
never trained a model, and they hold no test pair (TNO-25, RoadScene-50 and MSRS-20 are never read here).

Each data-set root is a *domain* (RoadScene/FLIR daytime driving, MSRS day and night streets). Every metric
is scored per domain, and a run's score is the mean of its domain scores, each domain counting once
(``scores``; the per-domain values are under ``domains``): a 4-pair domain then weighs as much as a 12-pair one,
so a model cannot win validation on the larger domain alone.
``--base RULE`` (and ``--base-tau``) scores each run with its select head's base-level rule replaced at
inference (its weights unchanged; rows named ``RUN+base=RULE``): a diagnostic of what a rule would do before a
run is trained with it, never a selection. ``--grid PNG`` also writes IR | VIS | every row's fused image for the
first ``--grid-pairs`` pairs of each domain, to look at the seams and the balance the metrics do not show.
Each run's ``checkpoints/last.ckpt`` fuses the pairs; the classical average, maximum and Laplacian rules
and the two copy baselines (``copy_ir``, ``copy_vi``) are scored on the same pairs as in-run baselines, with the
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

from stfuse.models.presets import BASE_RULES
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


def split_settings(budget: str) -> dict:
    """The validation split of a budget's target stage (``val_size``, ``split_seed``, ``val_strata``,
    ``val_min_per_root``), read from experiments/budgets/<budget>/ivif.yaml."""
    from reproduce import budget_settings

    target = budget_settings(budget, "ivif")["data"]["init_args"]["ivif"]["init_args"]
    keys = ("val_size", "split_seed", "val_strata", "val_min_per_root")
    return {key: target[key] for key in keys if key in target}


def validation_pairs(data_root: Path, split: dict) -> dict[str, list[dict]]:
    """The held-out pairs by domain (the root's folder name), exactly as ``IVIFDataModule`` holds them out
    during training with the ``split`` settings."""
    from torch.utils.data import ConcatDataset

    from data_modules import IVIFDataModule

    roots = [str(data_root / "train" / "ivif" / "roadscene"), str(data_root / "train" / "ivif" / "msrs")]
    module = IVIFDataModule(train_roots=roots, num_workers=0, **split)
    module.setup("fit")
    assert module.val_dataset is not None
    parts = (
        module.val_dataset.datasets if isinstance(module.val_dataset, ConcatDataset) else [module.val_dataset]
    )
    return {part.ir_dir.parent.name: [part[i] for i in range(len(part))] for part in parts}


#: pyramid steps down to the scale at which :func:`false_edges` looks for seams (1/8: the base level of the
#: shipped 4-level blend)
SEAM_LEVELS = 3


def false_edges(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, steps: int = SEAM_LEVELS) -> float:
    """Mean coarse-scale edge strength of F that neither source has: max(0, |∇F| − max(|∇IR|, |∇VIS|)) (Sobel
    L1 magnitude) after ``steps`` pyramid reductions. A blend whose base weights flip between the sources in
    a flat region paints a patch there whose outline is such an edge; any convex per-pixel mix of the sources
    with a constant weight (the average, a copy) has none."""
    from stfuse.losses.functional import gradient_magnitude
    from stfuse.models.blend import pyr_down
    from stfuse.models.blocks import pad_to_multiple

    stack = pad_to_multiple(torch.cat([fused, ir, vi], dim=1), 2**steps)
    for _ in range(steps):
        stack = pyr_down(stack)
    edges = gradient_magnitude(stack)
    return float((edges[:, :1] - torch.maximum(edges[:, 1:2], edges[:, 2:3])).clamp_min(0).mean())


def target_gap(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> float:
    """The share of the infrared targets' lead over the visible image that F loses:
    Σ m·max(0, IR − F) / Σ m·max(0, IR − VIS) over the pixels where the infrared image is brighter than both its
    own surroundings (m, stfuse.losses.warm_target_mask, the mask of the target stage's ``lambda_target`` term)
    and the visible image. 0 for the infrared image (or anything brighter), 1 for the visible image, s for the
    constant blend (1 − s)·IR + s·VIS: the visual goal's "infrared targets as bright as in the IR image" as a
    number. NaN for a pair without such pixels."""
    from stfuse.losses import warm_target_mask

    mask = warm_target_mask(ir) * (ir > vi)
    lead = float((mask * (ir - vi)).sum())
    return float((mask * (ir - fused).clamp_min(0)).sum()) / lead if lead > 0 else float("nan")


def score(fuse, pairs: list[dict]) -> dict[str, float]:
    """The table metrics of ``fuse`` on ``pairs``, with ``to_ir``/``to_vi`` (mean |F − IR|, mean |F − VIS|),
    ``copy_distance`` (the smaller of the two), ``false_edges`` (:func:`false_edges`, a diagnostic of
    seams that no selection rule reads) and ``target_gap`` (:func:`target_gap`, a diagnostic of grey infrared
    targets that no selection rule reads either)."""
    from stfuse.metrics import FusionMetrics

    metrics = FusionMetrics(preset="cddfuse", metrics=TABLE_METRICS)
    to_ir, to_vi, seams, gaps = [], [], [], []
    with torch.inference_mode():
        for item in pairs:
            ir, vi = item["ir"][None], item["vi"][None]
            fused = torch.round(fuse(ir, vi).clamp(0, 1) * 255) / 255
            metrics.update(fused, ir, vi)
            to_ir.append(float((fused - ir).abs().mean()))
            to_vi.append(float((fused - vi).abs().mean()))
            seams.append(false_edges(fused, ir, vi))
            gaps.append(target_gap(fused, ir, vi))
    row = {name: float(value) for name, value in metrics.compute().items()}
    row["to_ir"], row["to_vi"] = sum(to_ir) / len(to_ir), sum(to_vi) / len(to_vi)
    row["false_edges"] = sum(seams) / len(seams)
    gaps = [gap for gap in gaps if gap == gap]  # pairs with targets brighter in IR than in VIS
    row["target_gap"] = sum(gaps) / len(gaps) if gaps else float("nan")
    row["copy_distance"] = min(row["to_ir"], row["to_vi"])
    return row


def balanced(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """The mean over domains of each value (every domain counts once); ``copy_distance`` from the means."""
    keys = [*TABLE_METRICS, "to_ir", "to_vi", "false_edges", "target_gap"]
    row = {
        key: sum(r[key] for r in rows.values()) / len(rows)
        for key in keys
        if all(key in r for r in rows.values())
    }
    row["copy_distance"] = min(row["to_ir"], row["to_vi"])
    return row


def with_base(net, rule: str, tau: float | None = None):
    """A copy of ``net`` (a select-head STFuseNet) whose base pyramid level is blended by ``rule`` (and the
    temperature ``tau``, default the network's own), same weights. Raises ValueError (from STFuseNet) for a
    network the rule does not apply to (the paint head, one pyramid level)."""
    from stfuse.models import STFuseNet

    config = {**net.config, "base": rule, "base_tau": net.config["base_tau"] if tau is None else tau}
    swapped = STFuseNet(**config)
    swapped.load_state_dict(net.state_dict())
    return swapped.eval()


def write_grid(path: Path, fusers: dict, domains: dict[str, list[dict]], pairs: int) -> Path:
    """A PNG of IR | VIS | each fuser's output (columns titled) for the first ``pairs`` validation pairs of each
    domain, written atomically: the seams and the balance between the sources that the metrics do not show."""
    from stfuse.utils.visual import make_grid, save_png

    rows = []
    with torch.inference_mode():
        for items in domains.values():
            for item in items[:pairs]:
                ir, vi = item["ir"][None], item["vi"][None]
                rows.append([ir[0], vi[0], *(fuse(ir, vi).clamp(0, 1)[0] for fuse in fusers.values())])
    return save_png(make_grid(rows, height=200, labels=["IR", "VIS", *fusers]), path)


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
        "--budget",
        default="cpu",
        help="the budget whose ivif.yaml sets the split the runs trained with (default cpu)",
    )
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--json", help="also write the scores to this JSON file")
    parser.add_argument(
        "--base",
        choices=BASE_RULES,
        help="score each run with this base rule instead of its own (a diagnostic)",
    )
    parser.add_argument(
        "--base-tau", type=float, help="the temperature of --base's rule (default: the run's)"
    )
    parser.add_argument(
        "--grid",
        help="also write a PNG grid: IR | VIS | each row's fused image, for the first pairs of each domain",
    )
    parser.add_argument(
        "--grid-pairs", type=int, default=2, help="pairs of each domain in --grid (default 2)"
    )
    args = parser.parse_args()
    if args.base_tau is not None and args.base is None:
        parser.error("--base-tau needs --base")
    if args.grid_pairs < 1:
        parser.error(f"--grid-pairs must be ≥ 1, got {args.grid_pairs}")

    from stfuse.baselines import fuse_baseline
    from stfuse.models.checkpoint import load_network

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    fusers = (
        {}
        if args.no_baselines
        else {name: (lambda ir, vi, name=name: fuse_baseline(name, ir, vi)) for name in BASELINE_ROWS}
    )
    for run in args.runs:  # the networks first: a bad run fails before the pairs are read
        name = Path(run).name if Path(run).is_dir() else str(run)
        net = load_network(resolve_checkpoint(Path(run))).eval()
        if args.base is not None:
            try:
                net = with_base(net, args.base, args.base_tau)
            except ValueError as error:
                raise SystemExit(f"{run}: --base {args.base}: {error}") from None
            name += f"+base={args.base}" + ("" if args.base_tau is None else f",tau={args.base_tau:g}")
        fusers[name] = net
    split = split_settings(args.budget)
    domains = validation_pairs(Path(args.data_root), split)
    by_domain = {
        domain: {name: score(fuse, pairs) for name, fuse in fusers.items()}
        for domain, pairs in domains.items()
    }
    rows = {name: balanced({domain: by_domain[domain][name] for domain in domains}) for name in fusers}

    laplacian = rows.get("laplacian")
    sizes = ", ".join(f"{domain} {len(pairs)}" for domain, pairs in domains.items())
    print(f"validation split ({args.budget} budget, {split}): {sizes}; each domain counts once")
    print("| run | " + " | ".join(TABLE_METRICS) + " | > Laplacian |")
    print("|---|" + "---|" * (len(TABLE_METRICS) + 1))
    for name, values in rows.items():
        # without the baselines (--no-baselines) there is no Laplacian row to count against
        wins = f"{sum(values[m] > laplacian[m] for m in TABLE_METRICS)}/8" if laplacian else "–"
        cells = " | ".join(f"{values[m]:.3f}" for m in TABLE_METRICS)
        copy = " (a copy of one source)" if is_copy(values) else ""
        print(f"| {name}{copy} | {cells} | {wins} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "pairs": sum(len(p) for p in domains.values()),
                    "seed": split.get("split_seed"),
                    "split": split,
                    "domain_pairs": {
                        domain: [item["name"] for item in pairs] for domain, pairs in domains.items()
                    },
                    "scores": rows,
                    "domains": by_domain,
                },
                indent=2,
            )
        )
    if args.grid:  # after the scores are written: a grid that fails loses no score
        print(f"grid: {write_grid(Path(args.grid), fusers, domains, args.grid_pairs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
