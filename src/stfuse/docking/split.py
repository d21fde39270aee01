"""The fixed train/test split of the docking protocol.

The split is committed as ``experiments/docking/msrs_det_split.json`` so that every user scores the same
30 test images. :func:`make_split` is the rule that produced it, kept here so that a test can re-derive
the file from the data.

Rule: stems are grouped by their last letter (``D`` day, ``N`` night) and sorted by frame number. In each
group, the test set is ``blocks`` (5) contiguous runs of ``block_size`` (3) stems centred in equal parts of the
group. MSRS frames come from driving videos, so neighbouring stems can show nearly the same scene; taking
contiguous runs (instead of every k-th stem) keeps most test frames away from their training neighbours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stfuse.docking.errors import DockingError

SPLIT_FILE_NAME = "msrs_det_split.json"


@dataclass(frozen=True)
class Split:
    """Sorted train and test stems."""

    train: tuple[str, ...]
    test: tuple[str, ...]


def stem_group(stem: str) -> str:
    """``"D"`` (day) or ``"N"`` (night), from the last letter of an MSRS stem."""
    tag = stem[-1:].upper()
    if tag not in ("D", "N"):
        raise DockingError(f"stem {stem!r} does not end with D (day) or N (night)")
    return tag


def make_split(stems: list[str], block_size: int = 3, blocks: int = 5) -> Split:
    """Apply the documented rule: ``blocks × block_size`` test stems per day/night group."""
    groups: dict[str, list[str]] = {"D": [], "N": []}
    for stem in sorted(set(stems)):
        groups[stem_group(stem)].append(stem)
    test: list[str] = []
    for name, members in groups.items():
        n = len(members)
        if n < blocks * block_size:
            raise DockingError(
                f"group {name} has {n} stems, fewer than the {blocks * block_size} test stems it must give"
            )
        for i in range(blocks):
            centre = (i + 0.5) * n / blocks
            start = min(max(int(round(centre - block_size / 2)), 0), n - block_size)
            test.extend(members[start : start + block_size])
    test_set = set(test)
    train = [s for s in sorted(set(stems)) if s not in test_set]
    return Split(train=tuple(train), test=tuple(sorted(test_set)))


def load_split(path: str | Path) -> Split:
    """Read and validate a split file: two disjoint lists of unique stems."""
    path = Path(path)
    if not path.is_file():
        raise DockingError(f"{path}: split file not found (pass --split)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DockingError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("train"), list)
        or not isinstance(data.get("test"), list)
    ):
        raise DockingError(f"{path}: expected an object with 'train' and 'test' lists of stems")
    train, test = [str(s) for s in data["train"]], [str(s) for s in data["test"]]
    for name, stems in (("train", train), ("test", test)):
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})
            raise DockingError(f"{path}: '{name}' lists stems more than once: {', '.join(dup[:5])}")
        if not stems:
            raise DockingError(f"{path}: '{name}' is empty")
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise DockingError(f"{path}: stems in both train and test: {', '.join(overlap[:5])}")
    return Split(train=tuple(sorted(train)), test=tuple(sorted(test)))


def default_split_path() -> Path | None:
    """The committed split: ``experiments/docking/`` under the working directory or the source checkout."""
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / "experiments" / "docking" / SPLIT_FILE_NAME]
    if len(here.parents) > 3:
        candidates.append(here.parents[3] / "experiments" / "docking" / SPLIT_FILE_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None
