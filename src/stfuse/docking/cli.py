"""``stfuse dock``: train one detector per image source on MSRS and compare their mAP.

Examples::

    stfuse dock --preset cpu --baseline avg,max,laplacian --out outputs/dock
    stfuse dock --preset cpu --out outputs/dock --ckpt stfuse=checkpoints/ivif.ckpt   # adds one row
    stfuse dock --preset full --device cuda --fused tardal=/data/fused/tardal
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stfuse.docking.errors import DockingError
from stfuse.docking.settings import COLOR_MODES, DOCKING_PRESETS, LABEL_SETS, DockingConfig
from stfuse.runtime import DEVICE_CHOICES
from stfuse.validation import non_negative_int, positive_float, positive_int

# The protocol, the detector and torch are imported in main(), after the arguments are parsed: --help
# stays instant (docs/inference.md).


def _named(value: str, flag: str) -> tuple[str, str]:
    name, sep, location = value.partition("=")
    if not sep or not name or not location:
        raise argparse.ArgumentTypeError(f"{flag} expects NAME=PATH, got {value!r}")
    return name.strip(), location.strip()


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--image-size expects WxH such as 320x240, got {value!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"--image-size {value}: both sides must be at least 32")
    return w, h


def _ints(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stfuse dock",
        description="Train the same small detector on IR, VIS and fused images of MSRS (person/bicycle/car) "
        "and compare mAP@0.5 and mAP@0.5:0.95 over several seeds.",
    )
    src = parser.add_argument_group("sources (in table order: --sources, --baseline, --fused, --ckpt)")
    src.add_argument(
        "--sources",
        default="ir,vi",
        help="data-set sources to include, from ir,vi (default: ir,vi; '' for none)",
    )
    src.add_argument(
        "--baseline",
        default="",
        help="classical fusion on the fly, e.g. avg,max,laplacian (stfuse.baselines)",
    )
    src.add_argument(
        "--fused",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a folder of fused images named <stem>.<ext> (repeatable)",
    )
    src.add_argument(
        "--ckpt",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="fuse on the fly with stfuse.Fuser.from_checkpoint(PATH) (repeatable)",
    )
    parser.add_argument(
        "--root",
        default=None,
        help="data root holding docking/msrs_det/ (ir/, vi/, label/), as make's DATA_ROOT and "
        "--root in fuse and evaluate (default: $STFUSE_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--split", default=None, help="split file (default: experiments/docking/msrs_det_split.json)"
    )
    parser.add_argument("--out", default="outputs/dock", help="output folder (default: outputs/dock)")
    parser.add_argument(
        "--preset",
        default="full",
        choices=tuple(DOCKING_PRESETS),
        help="tiny: tests; cpu: the documented CPU table; full: GPU (default)",
    )
    parser.add_argument(
        "--labels",
        default=None,
        choices=LABEL_SETS,
        help="which label version scores every source (default: fusion)",
    )
    parser.add_argument(
        "--color",
        default=None,
        choices=COLOR_MODES,
        help="luma: every source as 1-channel luminance (default); rgb: grey replicated to 3",
    )
    parser.add_argument("--seeds", type=_ints, default=None, help="comma-separated seeds (preset: 0,1,2)")
    parser.add_argument("--epochs", type=positive_int, default=None)
    parser.add_argument("--image-size", type=_size, default=None, metavar="WxH")
    parser.add_argument(
        "--crop-size",
        type=_size,
        default=None,
        metavar="WxH",
        help="training crop size (preset: the whole image for full, 192x144 for cpu)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument("--lr", type=positive_float, default=None)
    parser.add_argument("--width", type=positive_int, default=None, help="detector width multiplier")
    parser.add_argument(
        "--limit-train", type=positive_int, default=None, help="use N evenly spaced train stems"
    )
    parser.add_argument(
        "--limit-test", type=positive_int, default=None, help="use N evenly spaced test stems"
    )
    parser.add_argument(
        "--num-qualitative", type=non_negative_int, default=None, help="test images in detections.png"
    )
    parser.add_argument("--score-threshold", type=float, default=None, help="drawing threshold (default 0.3)")
    parser.add_argument("--device", default=None, help=f"{DEVICE_CHOICES} (default: auto)")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads; 1 is fastest on a busy shared machine",
    )
    parser.add_argument("--force", action="store_true", help="retrain even where stored runs match")
    return parser


def sources_from_args(args: argparse.Namespace) -> list:  # list[SourceSpec]
    """The source list in table order; raises DockingError on a bad name."""
    from stfuse.docking.sources import SourceSpec

    specs = [SourceSpec(name.strip(), "dataset") for name in args.sources.split(",") if name.strip()]
    specs += [
        SourceSpec(name.strip(), "baseline", name.strip())
        for name in args.baseline.split(",")
        if name.strip()
    ]
    for flag, kind, values in (("--fused", "folder", args.fused), ("--ckpt", "checkpoint", args.ckpt)):
        for value in values:
            name, location = _named(value, flag)
            specs.append(SourceSpec(name, kind, location))
    return specs


def _docking_folder(args: argparse.Namespace) -> str | None:
    """The MSRS docking folder from ``--root`` (the data root, or the folder itself)."""
    from pathlib import Path

    if args.root:
        nested = Path(args.root) / "docking" / "msrs_det"
        return str(nested) if nested.is_dir() else args.root
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``stfuse dock``; returns 0 on success and 2 on bad input."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    from stfuse.docking.protocol import run_docking
    from stfuse.docking.train import select_device

    try:
        specs = sources_from_args(args)
        config = DockingConfig.preset(
            args.preset,
            labels=args.labels,
            color=args.color,
            seeds=args.seeds,
            epochs=args.epochs,
            image_size=args.image_size,
            crop_size=args.crop_size,
            batch_size=args.batch_size,
            lr=args.lr,
            width=args.width,
            limit_train=args.limit_train,
            limit_test=args.limit_test,
            num_qualitative=args.num_qualitative,
            score_threshold=args.score_threshold,
            device=args.device,
            threads=args.threads,
        )
        if args.preset == "full" and select_device(config.device).type == "cpu":
            print(
                "stfuse dock: note: preset 'full' on the CPU takes hours; '--preset cpu' is the CPU protocol",
                file=sys.stderr,
            )
        run_docking(
            specs, args.out, config, data_root=_docking_folder(args), split_path=args.split, force=args.force
        )
    except (DockingError, argparse.ArgumentTypeError) as exc:
        print(f"stfuse dock: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
