"""Finding what to evaluate: source pairs (ir/vi folders or a named data set) and each method's fused files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from data_modules.io import read_image_size
from data_modules.layouts import LAYOUT_NAMES
from data_modules.stems import index_by_stem, pair_by_stem
from stfuse.evaluation.io import EvaluationInputError

#: ``--dataset`` names: the data layer's named layouts, each under ``<root>/ivif/<name>``.
DATASETS: tuple[str, ...] = tuple(name for name in LAYOUT_NAMES if name != "generic")


@dataclass(frozen=True)
class SourcePair:
    """One infrared/visible pair, named by the shared file stem."""

    name: str
    ir: Path
    vi: Path


def _natural_key(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _images_by_stem(folder: Path) -> dict[str, Path]:
    """Stem → image; of several images with one stem, the first in path order."""
    if not folder.is_dir():
        raise EvaluationInputError(f"folder not found: {folder}")
    return index_by_stem(folder).first()


def find_pairs(ir_dir: Path, vi_dir: Path) -> list[SourcePair]:
    """Pairs by file stem, in natural order. Images present on one side only are an error."""
    ir_files, vi_files = _images_by_stem(Path(ir_dir)), _images_by_stem(Path(vi_dir))
    if not ir_files:
        raise EvaluationInputError(f"no images in {ir_dir}")
    pairing = pair_by_stem(ir_files, vi_files, key=_natural_key)
    only_ir, only_vi = pairing.only_first, pairing.only_second
    if only_ir or only_vi:
        parts = []
        if only_ir:
            parts.append(
                f"no visible image for {', '.join(only_ir[:5])}{' …' if len(only_ir) > 5 else ''} in {vi_dir}"
            )
        if only_vi:
            parts.append(
                f"no infrared image for {', '.join(only_vi[:5])}{' …' if len(only_vi) > 5 else ''} in {ir_dir}"
            )
        raise EvaluationInputError("; ".join(parts))
    return [SourcePair(stem, ir_files[stem], vi_files[stem]) for stem in pairing.common]


def resolve_dataset(name: str, root: Path) -> tuple[Path, Path]:
    """(ir_dir, vi_dir) of a named data set under ``root`` (``<root>/ivif/<name>``, or ``<root>/<name>``,
    or ``root`` itself), using the data layer's layout detection when available (test split where the
    layout has splits) and plain ``ir/`` + ``vi/`` folders otherwise."""
    key = name.strip().lower()
    if key not in DATASETS:
        raise EvaluationInputError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(root)
    candidates = [root / "ivif" / key, root / key, root]
    tried = []
    for folder in candidates:
        if not folder.is_dir():
            tried.append(str(folder))
            continue
        try:
            from data_modules.layouts import detect_layout

            layout = detect_layout(folder, split="test", name=key)
            return Path(layout.ir_dir), Path(layout.vi_dir)
        except Exception as error:  # the layout module's own errors: fall back to ir/ + vi/
            tried.append(f"{folder} ({error})")
        if (folder / "ir").is_dir() and (folder / "vi").is_dir():
            return folder / "ir", folder / "vi"
        tried.append(f"{folder} (no ir/ and vi/ folders)")
    raise EvaluationInputError(f"data set {name!r} not found under {root}; tried: {'; '.join(tried)}")


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header."""
    try:
        return read_image_size(path)
    except (OSError, ValueError) as error:
        raise EvaluationInputError(f"cannot read image {path}: {error}") from error


def match_fused(pairs: list[SourcePair], methods: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """``{method: {pair name: fused file}}``; every fused image must exist and match its pair's size.

    All problems are collected first, so one run reports every missing or mis-sized file (up to 10).
    """
    problems: list[str] = []
    matched: dict[str, dict[str, Path]] = {}
    sizes = {}
    for pair in pairs:
        ir_size, vi_size = image_size(pair.ir), image_size(pair.vi)
        if ir_size != vi_size:
            problems.append(
                f"{pair.name}: infrared {pair.ir} is {ir_size[1]}×{ir_size[0]} but visible {pair.vi} is {vi_size[1]}×{vi_size[0]}"
            )
        sizes[pair.name] = ir_size
    for method, folder in methods.items():
        files = _images_by_stem(Path(folder))
        matched[method] = {}
        for pair in pairs:
            path = files.get(pair.name)
            if path is None:
                problems.append(f"{method}: fused image for {pair.name} not found in {folder}")
                continue
            size = image_size(path)
            if size != sizes[pair.name]:
                expected = sizes[pair.name]
                problems.append(
                    f"{method}: fused image {path} is {size[1]}×{size[0]}, but its sources are {expected[1]}×{expected[0]}"
                )
                continue
            matched[method][pair.name] = path
    if problems:
        more = f"\n… and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise EvaluationInputError("\n".join(problems[:10]) + more)
    return matched
