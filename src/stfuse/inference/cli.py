"""``stfuse fuse`` and ``stfuse export``.

    stfuse fuse --ckpt ivif.ckpt --ir data/ir --vi data/vi --out fused/
    stfuse fuse --ckpt ivif.ckpt --dataset tno --root ../shared/data --out fused/tno
    stfuse fuse --baseline laplacian --ir ir.png --vi vi.png --out fused.png
    stfuse export --ckpt ivif.ckpt --format onnx --out stfuse.onnx

Exit codes: 0 success, 1 some pairs failed (listed in the summary), 2 unusable arguments or checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stfuse.validation import non_negative_float, non_negative_int, positive_int

__all__ = ["build_export_parser", "build_fuse_parser", "export_main", "fuse_main"]


def _prefer_passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning, unless the user chose otherwise.

    On a machine shared with other processes, spinning threads fight for the cores: the small preset
    measured 0.5 images/s with two spinning threads against 5.9 with passive ones on a loaded 2-core box.
    It only takes effect before torch is imported, which is why this package imports torch lazily.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _default_workers(pairs: int) -> int:
    """One decoding worker beside the network when there are two cores or more; else decode inline.

    Decoding and colour conversion cost about a third of a small-preset forward pass on the CPU, so one
    worker keeps up; the network then gets the remaining cores (see ``configure_cpu_threads``). For a
    handful of pairs, starting the worker process costs more than it saves.
    """
    from stfuse.inference.compute import physical_cores

    return 1 if physical_cores() >= 2 and pairs >= 4 else 0


def _default_batch_size(device_type: str) -> int:
    """Batch 1 on the CPU (cache-friendly: measured faster per image than 2 or 4), 8 on a GPU."""
    return 1 if device_type == "cpu" else 8


def build_fuse_parser() -> argparse.ArgumentParser:
    from stfuse.inference.options import (
        DEFAULT_MAX_PIXELS,
        DEFAULT_TILE_OVERLAP,
        OUTPUT_FORMATS,
        network_presets,
    )
    from stfuse.runtime import DEVICE_CHOICES

    parser = argparse.ArgumentParser(
        prog="stfuse fuse",
        description="Fuse infrared/visible pairs (matched by file stem) with a trained STFuse network.",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--ckpt", type=Path, help="checkpoint (.ckpt, .pt/.pth, .safetensors); default: packaged weights"
    )
    model.add_argument(
        "--baseline", help="fuse with a classical rule from stfuse.baselines instead of a network"
    )
    presets = network_presets()

    def preset(text: str) -> str:
        if text not in presets:
            raise argparse.ArgumentTypeError(f"unknown preset {text!r}; choose from {', '.join(presets)}")
        return text

    model.add_argument(
        "--preset",
        type=preset,
        help=f"refuse a checkpoint whose network is not this preset ({', '.join(presets)})",
    )

    inputs = parser.add_argument_group("inputs: --ir/--vi, or --dataset/--root")
    inputs.add_argument("--ir", type=Path, help="infrared folder or file")
    inputs.add_argument("--vi", type=Path, help="visible folder or file")
    from data_modules.layouts import LAYOUT_NAMES

    inputs.add_argument("--dataset", help=f"data-set layout name ({', '.join([*LAYOUT_NAMES, 'auto'])})")
    inputs.add_argument(
        "--root", type=Path,
        help="data root holding ivif/<dataset>/ (as make's DATA_ROOT and stfuse evaluate --root); "
        "a data set's own folder also works",
    )  # fmt: skip
    inputs.add_argument("--split", help="split of --dataset (train/test) for layouts that have splits")

    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, required=True, help="output folder (or a file name for one pair)")
    output.add_argument("--format", dest="output_format", choices=sorted(OUTPUT_FORMATS), default="png")
    output.add_argument(
        "--bit-depth",
        choices=("auto", "8", "16"),
        default="auto",
        help="auto: 16-bit when an input is 16-bit and the format allows it",
    )
    output.add_argument(
        "--gray", action="store_true", help="write the fused luminance only, even for colour VIS"
    )
    output.add_argument("--skip-existing", action="store_true", help="keep outputs that exist (resume a run)")

    speed = parser.add_argument_group("speed and memory")
    speed.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default: auto)")
    speed.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    speed.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="same-size pairs fused together (default: 1 on CPU, 8 on GPU)",
    )
    speed.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help="decoding processes (default: 1 with two cores or more)",
    )
    speed.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (default: physical cores less one, at least 1)",
    )
    speed.add_argument("--compile", action="store_true", help="torch.compile the network")
    speed.add_argument("--no-channels-last", action="store_true", help="keep the NCHW memory layout")
    speed.add_argument(
        "--tile", type=non_negative_int, default=None, help="tile side for large images; 0: never tile"
    )
    speed.add_argument("--tile-overlap", type=non_negative_int, default=DEFAULT_TILE_OVERLAP)
    speed.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="tile images above this many pixels",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _error(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _dataset_folder(root: Path, name: str | None) -> Path:
    """The folder of data set ``name`` under the data root ``root`` (``root/ivif/<name>``, ``root/<name>``), or
    ``root`` itself when it is the data set's own folder (or the layout is to be detected)."""
    if name and name.lower() not in ("auto", "generic"):
        for candidate in (root / "ivif" / name.lower(), root / name.lower()):
            if candidate.is_dir():
                return candidate
    return root


def _gather_pairs(
    args: argparse.Namespace,
) -> tuple[list[tuple[str, Path, Path]], list[tuple[str, str]], str]:
    """The pairs, the files left unpaired, and where they were looked for (for a message naming the folders)."""
    from stfuse.inference.runner import collect_pairs

    if args.dataset or args.root:
        if args.ir or args.vi:
            raise ValueError("give either --ir/--vi or --dataset/--root, not both")
        if not args.root:
            raise ValueError("--dataset needs --root (the data-set folder)")
        from data_modules.layouts import detect_layout

        layout = detect_layout(
            _dataset_folder(args.root, args.dataset), split=args.split, name=args.dataset or "auto"
        )
        if args.split and layout.split is None:
            raise ValueError(
                f"--split {args.split}: '{layout.root}' has no splits ({layout.name} layout: "
                f"'{layout.ir_dir.name}/' and '{layout.vi_dir.name}/' directly); drop --split"
            )
        pairs, problems = collect_pairs(layout.ir_dir, layout.vi_dir)
        return pairs, problems, f"'{layout.ir_dir}' and '{layout.vi_dir}'"
    if not (args.ir and args.vi):
        raise ValueError("give the inputs as --ir and --vi (folders or files), or --dataset and --root")
    for flag, path in (("--ir", args.ir), ("--vi", args.vi)):
        if not path.exists():
            raise ValueError(f"{flag} '{path}' does not exist")
    pairs, problems = collect_pairs(args.ir, args.vi)
    return pairs, problems, f"--ir '{args.ir}' and --vi '{args.vi}'"


def _os_error(flag: str, error: OSError) -> str:
    """``--out 'x/y': Not a directory`` rather than ``[Errno 20] Not a directory: 'x/y'``."""
    where = error.filename if error.filename is not None else ""
    reason = error.strerror or str(error)
    return f"{flag} '{where}': {reason}" if where else f"{flag}: {reason}"


def fuse_main(argv: list[str] | None = None) -> int:
    """``stfuse fuse``; returns 0 when every pair was fused (or skipped), 1 when some failed, 2 on bad input."""
    _prefer_passive_openmp()
    args = build_fuse_parser().parse_args(argv)
    prog = "stfuse fuse"
    if args.ckpt and args.baseline:
        return _error(prog, "give --ckpt or --baseline, not both")
    if args.bit_depth == "16" and args.output_format in ("jpg", "bmp"):
        return _error(
            prog, f"{args.output_format} stores 8 bits only; use --format png or tif for --bit-depth 16"
        )
    try:
        pairs, problems, where = _gather_pairs(args)
    except ValueError as error:
        return _error(prog, str(error))
    except OSError as error:
        return _error(prog, _os_error("--ir/--vi" if args.ir else "--root", error))
    if not pairs and not problems:
        return _error(prog, f"no image pairs found in {where} (images matched by file stem)")

    from stfuse.inference.compute import configure_cpu_threads
    from stfuse.inference.fuser import Fuser, NoDefaultWeightsError
    from stfuse.inference.runner import fuse_pairs
    from stfuse.models.checkpoint import CheckpointError
    from stfuse.runtime import resolve_device

    try:
        resolve_device(args.device)
    except (ValueError, TypeError) as error:
        return _error(prog, f"--device: {error}")

    workers = _default_workers(len(pairs)) if args.workers is None else args.workers
    options = {
        "device": args.device,
        "precision": args.precision,
        "channels_last": not args.no_channels_last,
        "compile": args.compile,
        "tile": args.tile,
        "tile_overlap": args.tile_overlap,
        "max_pixels": args.max_pixels,
        "progress": not args.quiet,
    }
    try:
        if args.baseline:
            fuser = Fuser.from_baseline(args.baseline, **options)
        else:
            expected = {"preset": args.preset} if args.preset else None
            fuser = Fuser.from_checkpoint(args.ckpt, expected_config=expected, **options)
    except (CheckpointError, NoDefaultWeightsError, ValueError) as error:
        return _error(prog, str(error))
    if fuser.device.type == "cpu":
        # One core stays free for decoding and writing, with or without a worker process: on a shared machine
        # a torch thread waiting for a busy core stalls every parallel operation (one 640×480 pass took 0.2 s
        # on one thread and 1.3-3 s on two, on 2 cores beside other jobs).
        configure_cpu_threads(1, args.threads)

    try:
        report = fuse_pairs(
            fuser,
            pairs,
            args.out,
            problems=problems,
            output_format=args.output_format,
            bit_depth=args.bit_depth,
            gray=args.gray,
            skip_existing=args.skip_existing,
            batch_size=args.batch_size or _default_batch_size(fuser.device.type),
            workers=workers,
            progress=not args.quiet,
        )
    except ValueError as error:
        return _error(prog, str(error))
    except OSError as error:
        return _error(prog, _os_error("--out", error))
    print(f"{prog}: {report.summary()}", file=sys.stderr)
    if report.fused:
        print(f"{prog}: outputs in '{args.out}'", file=sys.stderr)
    return report.exit_code


def build_export_parser() -> argparse.ArgumentParser:
    from stfuse.inference.options import EXPORT_FORMATS, MIN_ONNX_OPSET

    parser = argparse.ArgumentParser(
        prog="stfuse export",
        description="Export a trained network to ONNX (dynamic batch, height and width).",
    )
    parser.add_argument(
        "--ckpt", type=Path, help="checkpoint (.ckpt, .pt/.pth, .safetensors); default: packaged weights"
    )

    parser.add_argument(
        "--format",
        dest="fmt",
        choices=EXPORT_FORMATS,
        default=EXPORT_FORMATS[0],
        help=f"graph format: {', '.join(EXPORT_FORMATS)} (default: {EXPORT_FORMATS[0]})",
    )
    parser.add_argument("--out", type=Path, required=True, help="output file (.onnx)")
    parser.add_argument(
        "--opset",
        type=positive_int,
        default=MIN_ONNX_OPSET,
        help=f"ONNX opset version ({MIN_ONNX_OPSET} or newer)",
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip the comparison against the eager network"
    )
    parser.add_argument(
        "--atol", type=non_negative_float, default=1e-4, help="largest accepted difference from eager (≥ 0)"
    )
    return parser


def export_main(argv: list[str] | None = None) -> int:
    """``stfuse export``; returns 0 on a verified export, 2 otherwise."""
    _prefer_passive_openmp()
    args = build_export_parser().parse_args(argv)
    prog = "stfuse export"
    from stfuse.inference.export import ExportError, export_network
    from stfuse.inference.fuser import DEFAULT_WEIGHTS, NoDefaultWeightsError
    from stfuse.models.checkpoint import CheckpointError, load_network

    ckpt = args.ckpt
    if ckpt is None:
        if not DEFAULT_WEIGHTS.is_file():
            return _error(
                prog,
                str(
                    NoDefaultWeightsError(
                        f"no default weights are packaged with this STFuse installation (expected {DEFAULT_WEIGHTS}); "
                        "pass --ckpt"
                    )
                ),
            )
        ckpt = DEFAULT_WEIGHTS
    if ckpt.resolve() == args.out.resolve():
        return _error(prog, f"--out '{args.out}' is the checkpoint itself")
    if args.out.is_dir():
        return _error(
            prog, f"--out '{args.out}' is a folder; give a file name such as {args.out / 'stfuse.onnx'}"
        )
    from stfuse.inference.export import check_opset

    try:
        check_opset(args.opset)
    except ValueError as error:
        return _error(prog, f"--opset: {error}")
    try:
        net = load_network(ckpt)
        path = export_network(
            net, args.out, args.fmt, opset=args.opset, check=not args.no_check, atol=args.atol
        )
    except (CheckpointError, ExportError, ValueError, ImportError) as error:
        return _error(prog, str(error))
    print(
        f"{prog}: wrote {args.fmt} graph to '{path}' (inputs ir, vi: N×1×H×W float32 in [0, 1])",
        file=sys.stderr,
    )
    return 0
