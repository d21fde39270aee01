"""Where each loss term pulls: gradient norms of the IVIF fusion loss and of L_g, per part of the network.

    python experiments/gradient_norms.py --data-root ../shared/data \\
        --student outputs/reproduce/ivif_stfuse_s0 --student outputs/reproduce/ivif_no_guidance_s0

For each student network (a run folder with checkpoints/last.ckpt, or a checkpoint file) and for the teacher
itself, one batch of training crops (the CPU budget's crop size and batch size, the training pairs only: the
validation split's pairs and the test sets are never read) is fused, and each term's gradient is taken alone.
The output is one JSON line per (network, term): the term's value and the L2 norm of its gradient over the
encoder, the CEM and the decoder parameters (a shared encoder counted once).

It answers "what does L_g hold back?": a guidance term whose gradient lands where the fusion loss does its
work restrains that work, whatever its formulation. The recipe's weights apply: the fusion term is
λ_int·L_int + λ_grad·L_grad + λ_ssim·L_ssim with the stage's defaults, each L_g term unweighted (λ_g = 1).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import torch

from stfuse.runtime import find_data_root

REPO = Path(__file__).resolve().parents[1]
#: name → GuidanceLoss keyword arguments
GUIDANCE_TERMS: dict[str, dict[str, object]] = {
    "relation_cem": {"mode": "relation"},
    "relation_cem_vi": {"mode": "relation", "branch": "vi"},
    "feature_in_cem": {"mode": "feature_in", "layers": ["cem"]},
    "feature_in_encoder": {"mode": "feature_in", "layers": ["encoder"]},
    "output_grad": {"mode": "output_grad"},
}


def _checkpoint(path: Path) -> Path:
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no checkpoint (give a run folder with checkpoints/last.ckpt or a file)"
        )
    return path


def _batch(data_root: Path, crops: int, crop_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``crops`` random training crops (the training split of train/ivif/{roadscene,msrs})."""
    from data_modules import IVIFDataModule

    roots = [str(data_root / "train" / "ivif" / name) for name in ("roadscene", "msrs")]
    module = IVIFDataModule(
        train_roots=roots,
        crop_size=crop_size,
        batch_size=crops,
        num_workers=0,
        seed=seed,
        val_size=16,
        split_seed=0,
        val_strata="stratified",
        val_min_per_root=4,
    )
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    return batch["ir"], batch["vi"]


def _norms(net: torch.nn.Module) -> dict[str, float]:
    parts = {
        "encoder": net.encoder_parameters(),
        "cem": net.cem_parameters(),
        "decoder": net.decoder_parameters(),
    }
    return {
        name: float(sum(float((p.grad**2).sum()) for p in params if p.grad is not None) ** 0.5)
        for name, params in parts.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--teacher", type=Path, default=REPO / "outputs" / "reproduce" / "mfif")
    parser.add_argument("--student", type=Path, action="append", default=[], help="repeatable")
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--terms", nargs="+", default=list(GUIDANCE_TERMS), choices=list(GUIDANCE_TERMS))
    args = parser.parse_args(argv)

    from stfuse.losses import GuidanceLoss, IVIFFusionLoss
    from stfuse.models.checkpoint import load_network
    from stfuse.stages import IVIFTransferStage

    data_root = find_data_root(args.data_root)
    if not (data_root / "train" / "ivif").is_dir():
        print(f"error: no training pairs under {data_root}/train/ivif (pass --data-root)", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    teacher_path = _checkpoint(args.teacher)
    teacher = load_network(teacher_path).eval()
    ir, vi = _batch(data_root, args.crops, args.crop_size, args.seed)
    defaults = inspect.signature(IVIFTransferStage.__init__).parameters
    fusion = IVIFFusionLoss(**{k: defaults[k].default for k in ("lambda_int", "lambda_grad", "lambda_ssim")})
    with torch.no_grad():
        teacher_fused, teacher_features = teacher(ir, vi, return_features=True)
    for label, path in [("teacher", teacher_path)] + [(str(s), _checkpoint(s)) for s in args.student]:
        net = load_network(path)
        groups = net.feature_groups()
        for term in ["fusion", *args.terms]:
            net.zero_grad(set_to_none=True)
            fused, features = net(ir, vi, return_features=True)
            if term == "fusion":
                value = fusion(fused, ir, vi)["total"]
            else:
                value = GuidanceLoss(**GUIDANCE_TERMS[term])(  # type: ignore[arg-type]
                    fused, teacher_fused, features, teacher_features, groups=groups
                )
            if value.requires_grad:
                value.backward()
            row = {"network": label, "term": term, "value": round(float(value.detach()), 5)}
            row.update({f"grad_{k}": round(v, 4) for k, v in _norms(net).items()})
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
