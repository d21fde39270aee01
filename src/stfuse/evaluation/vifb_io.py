"""Reading images for the ``vifb`` preset: with their channels as stored, like MATLAB's ``imread``.

VIFB scores a colour fused image channel by channel and converts colour sources of a grey fused image
with MATLAB's ``rgb2gray`` (:mod:`stfuse.metrics.vifb`), so under that preset ``stfuse evaluate`` keeps
every image's channels: a grey file (grey PNG, one-component JPEG) gives one channel, a colour file three,
even when the three are identical (as MATLAB returns IR JPEGs stored with three equal channels). Alpha is
dropped and 16-bit files become 8-bit as in :func:`~stfuse.evaluation.io.read_gray_255`. Baselines and
thumbnails still use the grey reading, derived here from the same decode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from stfuse.evaluation.io import EvaluationInputError
from stfuse.metrics import FusionMetrics


def read_as_stored(path: str | os.PathLike) -> np.ndarray:
    """C×H×W uint8 (C = 1 for a grey file, 3 in RGB order for a colour one)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise EvaluationInputError(f"cannot decode image: {path}")
    if image.ndim == 2:
        return image[None]
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))


def grey_of_stored(stored: np.ndarray) -> np.ndarray:
    """H×W uint8 equal to ``read_gray_255`` of the same file (OpenCV weights in float32, rounded)."""
    if stored.shape[0] == 1:
        return stored[0]
    bgr = np.ascontiguousarray(stored[::-1].transpose(1, 2, 0)).astype(np.float32)
    return np.round(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).astype(np.uint8)


def _as_batch(images: Sequence[np.ndarray] | torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """One N×C×H×W tensor when every image has the same channel count, else one 1×C×H×W per image."""
    if isinstance(images, torch.Tensor):
        return [images.to(device)]
    if len({image.shape for image in images}) == 1:
        return [torch.from_numpy(np.stack(images)).to(device)]
    return [torch.from_numpy(image)[None].to(device) for image in images]


def update_as_stored(
    metrics: FusionMetrics,
    fused: Sequence[np.ndarray] | torch.Tensor,
    ir: Sequence[np.ndarray],
    vi: Sequence[np.ndarray],
    device: torch.device,
) -> None:
    """``metrics.update`` for a batch whose images may differ in channel count: one update when the
    channel counts agree within each role, otherwise one per pair in order (so per-image values keep
    the batch's order)."""
    parts = [_as_batch(x, device) for x in (fused, ir, vi)]
    if all(len(p) == 1 for p in parts):
        metrics.update(parts[0][0], parts[1][0], parts[2][0])
        return
    for index in range(len(ir)):
        f, a, b = (p[0][index : index + 1] if len(p) == 1 else p[index] for p in parts)
        metrics.update(f, a, b)
