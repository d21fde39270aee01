"""``stfuse evaluate``: fusion metrics of one or more methods over a data set, as tables and a report.

Examples::

    stfuse evaluate --dataset tno --root ../shared/data --fused ours=outputs/tno --baseline avg,max,laplacian \\
        --out outputs/eval --report outputs/eval/report.html
    stfuse evaluate --ir data/ir --vi data/vi --fused a=fused_a --fused b=fused_b --preset tang --metrics all
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from stfuse.validation import positive_int

# Torch, the metrics and the readers are imported in main(), after the arguments are parsed: --help stays instant.

#: Exit status for bad inputs (missing or mis-sized images, unknown names, unwritable outputs, NaN results).
EXIT_INPUT_ERROR = 2
#: --fused names taken by the sources in the report and the thumbnails.
RESERVED_METHOD_NAMES = frozenset({"ir", "vi"})


def _fused_spec(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep:
        path = Path(text)
        return path.name or str(path), path
    if not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name, Path(folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stfuse evaluate",
        description="Compute fusion metrics (EN, SD, SF, AG, MI, FMI, SCD, VIF, Qabf, Nabf, SSIM, MS-SSIM, MSE, "
        "PSNR, CC) for fused images against their infrared/visible sources.",
    )
    sources = parser.add_argument_group("sources (either --ir and --vi, or --dataset and --root)")
    sources.add_argument("--ir", type=Path, help="folder of infrared images")
    sources.add_argument("--vi", type=Path, help="folder of visible images (same file stems)")
    sources.add_argument(
        "--dataset",
        help="named data set under --root: a data-layout name (docs/data.md; an unknown name lists them)",
    )
    sources.add_argument(
        "--root", type=Path,
        help="data root holding ivif/<dataset>/ (as make's DATA_ROOT, and as in stfuse fuse); a data set's own "
        "folder also works",
    )  # fmt: skip
    methods = parser.add_argument_group("methods")
    methods.add_argument(
        "--fused", action="append", default=[], type=_fused_spec, metavar="NAME=DIR",
        help="a method's fused images (same stems as the sources); repeat for several methods",
    )  # fmt: skip
    methods.add_argument(
        "--baseline",
        default="",
        help="classical baselines computed on the fly, e.g. avg,max,laplacian,gradient; copy_ir and copy_vi "
        "pass one source through (the copy rows)",
    )
    parser.add_argument(
        "--preset",
        default="cddfuse",
        help="metric conventions: cddfuse (default), tang, vifb, ... (docs/metrics.md)",
    )
    parser.add_argument(
        "--metrics", default=None,
        help="comma-separated subset of the metrics above, or 'all' (default: the preset's table)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:N or mps"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/evaluate"), help="folder for the CSV/Markdown/JSON tables"
    )
    parser.add_argument("--report", type=Path, help="also write a self-contained HTML report here")
    parser.add_argument(
        "--batch-pixels",
        type=positive_int,
        default=None,
        help="pixels per metric update (default: 8M on GPU, 1 image on CPU)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _resolve_device(name: str):  # -> torch.device
    from stfuse.evaluation.io import EvaluationInputError
    from stfuse.runtime import resolve_device

    try:
        return resolve_device(name)
    except (ValueError, TypeError) as error:
        raise EvaluationInputError(f"--device: {error}") from error


def _is_own_process(argv: list[str] | None) -> bool:
    """True when this command is the whole process (``stfuse evaluate …`` or ``python -m``), not a call
    from other Python code such as tests, so process-wide allocator settings are ours to choose."""
    return argv is None or list(argv) in (sys.argv[1:], sys.argv[2:])


def _check_writable(path: Path, flag: str, is_file: bool) -> None:
    """Fail before any work when an output cannot be written (the tables and the report come last)."""
    from stfuse.evaluation.io import EvaluationInputError

    folder = path.parent if is_file else path
    if is_file and path.is_dir():
        raise EvaluationInputError(
            f"{flag} '{path}' is a folder; give a file name such as {path / 'report.html'}"
        )
    if not is_file and path.exists() and not path.is_dir():
        raise EvaluationInputError(f"{flag} '{path}' is a file; give a folder for the tables")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise EvaluationInputError(
            f"{flag} '{path}': cannot write to '{folder}' ({reason}); choose a writable location"
        ) from None


def _check_not_an_input(out: Path, inputs: list[Path]) -> None:
    """The tables never go into a folder of images being evaluated (as ``stfuse fuse`` refuses)."""
    from stfuse.evaluation.io import EvaluationInputError

    resolved = out.resolve()
    for folder in inputs:
        if resolved == folder.resolve() or (
            out.exists() and folder.exists() and os.path.samefile(out, folder)
        ):
            raise EvaluationInputError(
                f"--out '{out}' is the input folder '{folder}'; choose another folder for the tables"
            )


def _check_method_names(names: list[str]) -> None:
    from stfuse.evaluation.io import EvaluationInputError

    for name in names:
        if name.lower() in RESERVED_METHOD_NAMES:
            raise EvaluationInputError(
                f"method name {name!r} is reserved for the {'infrared' if name.lower() == 'ir' else 'visible'} source; "
                f"name the fused images another way, e.g. --fused {name}_fused=DIR"
            )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    from stfuse.evaluation.evaluator import evaluate_pairs
    from stfuse.evaluation.io import EvaluationInputError
    from stfuse.evaluation.memory import keep_freed_memory
    from stfuse.evaluation.report import write_report
    from stfuse.evaluation.sources import find_pairs, resolve_dataset
    from stfuse.evaluation.tables import markdown_table, nan_note, write_tables

    try:
        device = _resolve_device(args.device)
        if args.dataset:
            if args.ir or args.vi:
                parser.error("give either --dataset/--root or --ir/--vi, not both")
            if args.root is None:
                parser.error("--dataset needs --root")
            ir_dir, vi_dir = resolve_dataset(args.dataset, args.root)
        elif args.ir and args.vi:
            ir_dir, vi_dir = args.ir, args.vi
        else:
            parser.error("give --ir and --vi, or --dataset and --root")
        fused_dirs: dict[str, Path] = {}
        for name, folder in args.fused:
            if name in fused_dirs:
                raise EvaluationInputError(f"--fused name {name!r} given twice")
            fused_dirs[name] = folder
        from stfuse.baselines import canonical_baseline_name

        try:  # aliases become registry names (ir → copy_ir), which are also the tables' method names
            baselines = [canonical_baseline_name(part) for part in args.baseline.split(",") if part.strip()]
        except ValueError as error:
            parser.error(f"--baseline: {error}")
        if not fused_dirs and not baselines:
            parser.error("nothing to evaluate: give --fused NAME=DIR and/or --baseline")
        _check_method_names([*fused_dirs, *baselines])
        _check_not_an_input(args.out, [Path(ir_dir), Path(vi_dir), *fused_dirs.values()])
        _check_writable(args.out, "--out", is_file=False)
        if args.report is not None:
            _check_writable(args.report, "--report", is_file=True)
        pairs = find_pairs(ir_dir, vi_dir)
        if _is_own_process(argv):
            keep_freed_memory()
        if args.threads:
            torch.set_num_threads(args.threads)

        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(pairs), desc="evaluate", unit="pair", file=sys.stderr)
        try:
            result = evaluate_pairs(
                pairs,
                fused_dirs,
                baselines,
                preset=args.preset,
                metrics=args.metrics,
                device=device,
                batch_pixels=args.batch_pixels,
                thumbnails=args.report is not None,
                progress=bar.update if bar is not None else None,
            )
        finally:
            if bar is not None:
                bar.close()
    except EvaluationInputError as error:
        print(f"stfuse evaluate: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except ValueError as error:  # unknown metric or baseline, metric not defined by the preset, …
        print(f"stfuse evaluate: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR

    try:
        paths = write_tables(result, args.out)
        print(markdown_table(result))
        print(
            f"per-image values: {paths['csv']}\nsummary: {paths['markdown']}, {paths['json']}",
            file=sys.stderr,
        )
        if args.report is not None:
            write_report(
                result,
                args.report,
                title=f"Fusion evaluation ({len(result.images)} pairs from {ir_dir.parent})",
            )
            print(f"report: {args.report}", file=sys.stderr)
    except OSError as error:
        where = getattr(error, "filename", None) or args.out
        print(
            f"stfuse evaluate: error: cannot write '{where}': {error.strerror or error}; choose a writable --out/--report",
            file=sys.stderr,
        )
        return EXIT_INPUT_ERROR
    undefined = nan_note(result)
    if undefined:
        print(f"stfuse evaluate: error: {undefined} (flagged in the tables and the report)", file=sys.stderr)
        return EXIT_INPUT_ERROR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
