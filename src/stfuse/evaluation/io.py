"""Reading images exactly as the reference evaluator does, so ``stfuse evaluate`` reproduces its numbers."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


class EvaluationInputError(ValueError):
    """A fused or source image is missing, unreadable or of the wrong size; the message names it."""


def read_gray_255(path: str | os.PathLike) -> np.ndarray:
    """CDDFuse's ``image_read_cv2(path, 'GRAY')``: OpenCV ``imread`` (3-channel 8-bit BGR) → float32 →
    ``COLOR_BGR2GRAY`` in float32 → ``np.round`` (halves to even). Returns H×W float32 with values 0..255.

    Deliberately not ``data_modules.io``'s reader: reference parity needs OpenCV's own 8-bit decode and grey
    rounding (16-bit files are cut to 8 bits, alpha and equal channels pass through BGR2GRAY), so the numbers
    match the published tables to the last digit. Everything else reads images through ``data_modules.io``."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"image not found: {path}")
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise EvaluationInputError(f"cannot decode image: {path}")
    gray = cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2GRAY)
    return np.round(gray)
