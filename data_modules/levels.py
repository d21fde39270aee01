"""Pixel levels: floats in [0, 1] as the integers of an 8- or 16-bit image.

The one quantiser behind ``write_image``, ``stfuse fuse`` and the ``Fuser``'s uint8/uint16 results.
"""

from __future__ import annotations

import numpy as np
import torch

#: the largest level of each stored integer bit depth
MAX_LEVELS: dict[int, int] = {8: 255, 16: 65535}


def quantise(unit: np.ndarray | torch.Tensor, bit_depth: int) -> np.ndarray | torch.Tensor:
    """Floats in [0, 1] as the levels of an 8- or 16-bit image (uint8 / uint16): scaled by 255 or 65535,
    rounded half to even, clipped; NaN becomes 0.

    A NumPy array gives an array, a tensor a tensor on its own device. The arithmetic runs in the input's
    float precision (float16/bfloat16 and integers in float32): float64 rounds the exact product, float32
    is faster and what the fused images of ``stfuse fuse`` and the ``Fuser`` use.
    """
    if bit_depth not in MAX_LEVELS:
        raise ValueError(f"bit depth must be one of {sorted(MAX_LEVELS)}, got {bit_depth!r}")
    scale = float(MAX_LEVELS[bit_depth])
    if isinstance(unit, torch.Tensor):
        values = unit if unit.dtype in (torch.float32, torch.float64) else unit.float()
        levels = torch.nan_to_num(values, nan=0.0).mul(scale).round_().clamp_(0.0, scale)
        return levels.to(torch.uint8) if bit_depth == 8 else levels.to(torch.int32).to(torch.uint16)
    values = np.asarray(unit)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float32)
    levels = np.clip(np.rint(np.nan_to_num(values, nan=0.0) * scale), 0, scale)
    return levels.astype(np.uint8 if bit_depth == 8 else np.uint16)


__all__ = ["MAX_LEVELS", "quantise"]
