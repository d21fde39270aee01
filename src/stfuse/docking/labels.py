"""YOLO box labels of the MSRS detection set, parsed strictly.

Each label file holds one ``class cx cy w h`` line per object, coordinates normalised to [0, 1] of the
image. The ``fusion/`` files of the shipped set separate fields by two spaces and carry trailing
spaces, so fields are split on any whitespace.

Missing versus empty: the data set ships one file per image, and an *empty* file means "no objects"
(33 of the 361 MSRS test stems have an empty ``fusion`` file). A *missing* file is treated as an error,
because it far more often means a wrong folder or a typo than an image without objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from stfuse.docking.errors import DockingError

#: class index -> name, as in the data set's ``classes.txt``
MSRS_CLASSES: tuple[str, ...] = ("person", "bicycle", "car")


class LabelError(DockingError):
    """A label file that cannot be read as YOLO boxes."""


@dataclass(frozen=True)
class Boxes:
    """The boxes of one image: ``labels`` (K,) int64 and ``xyxy`` (K×4) float32, normalised to [0, 1]."""

    labels: torch.Tensor
    xyxy: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())


def parse_yolo_file(path: str | Path, num_classes: int = len(MSRS_CLASSES)) -> Boxes:
    """Read one YOLO label file; raise :class:`LabelError` with ``file:line`` on any malformed line."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(
            f"{path}: label file is missing (an image without objects needs an empty file, not no file)"
        )
    labels: list[int] = []
    boxes: list[list[float]] = []
    text = path.read_text(encoding="utf-8-sig")
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise LabelError(
                f"{path}:{line_no}: expected 5 fields 'class cx cy w h', got {len(fields)}: {line.strip()!r}"
            )
        try:
            cls = int(fields[0])
        except ValueError:
            raise LabelError(f"{path}:{line_no}: class id {fields[0]!r} is not an integer") from None
        if not 0 <= cls < num_classes:
            raise LabelError(f"{path}:{line_no}: class id {cls} is out of range [0, {num_classes - 1}]")
        try:
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise LabelError(
                f"{path}:{line_no}: coordinates must be numbers, got {' '.join(fields[1:])!r}"
            ) from None
        if not all(math.isfinite(v) for v in (cx, cy, w, h)):
            raise LabelError(f"{path}:{line_no}: coordinates must be finite, got {line.strip()!r}")
        if not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0 and 0.0 < w <= 1.0 and 0.0 < h <= 1.0):
            raise LabelError(
                f"{path}:{line_no}: box 'cx cy w h' = {cx} {cy} {w} {h} is not normalised to [0, 1] "
                "(or has zero size)"
            )
        labels.append(cls)
        boxes.append([max(cx - w / 2, 0.0), max(cy - h / 2, 0.0), min(cx + w / 2, 1.0), min(cy + h / 2, 1.0)])
    return Boxes(
        labels=torch.tensor(labels, dtype=torch.int64),
        xyxy=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
    )


def read_label_dir(
    label_dir: str | Path, stems: list[str], num_classes: int = len(MSRS_CLASSES)
) -> dict[str, Boxes]:
    """Labels for the given stems from ``label_dir/<stem>.txt``; every stem must have a file."""
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise LabelError(f"{label_dir}: label folder does not exist")
    missing = [s for s in stems if not (label_dir / f"{s}.txt").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise LabelError(
            f"{label_dir}: {len(missing)} stem(s) have no label file ({shown}); "
            "an image without objects needs an empty file"
        )
    return {s: parse_yolo_file(label_dir / f"{s}.txt", num_classes) for s in stems}


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names from a ``classes.txt`` with lines ``<index> <name>`` (or one name per line)."""
    path = Path(path)
    names: dict[int, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) >= 2 and fields[0].isdigit():
            names[int(fields[0])] = " ".join(fields[1:])
        else:
            names[len(names)] = " ".join(fields)
        if set(names) != set(range(len(names))):
            raise LabelError(f"{path}:{line_no}: class indices must run 0, 1, 2, ... without gaps")
    if not names:
        raise LabelError(f"{path}: no class names found")
    return tuple(names[i] for i in range(len(names)))
