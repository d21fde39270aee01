"""Sharpness metrics: spatial frequency (SF) and average gradient (AG).

The code bases agree on the formulas and disagree on the denominators and the data scale:

* SF: ``cddfuse`` and both Tang presets average each squared-difference field over its own pair
  count, H·(W−1) horizontally and (H−1)·W vertically; ``vifb`` divides both sums by H·W. ``tang2022``
  computes SF on 0–1 data (Tang's toolkit before 2023-03-03), so its values are 255× smaller; ``tang``
  follows the current toolkit, which passes ``im2double(x)*255``.
* AG: ``cddfuse`` takes the mean over all H·W pixels; the Tang presets and ``vifb`` divide the same sum
  by (H−1)(W−1).
"""

from __future__ import annotations

import torch

from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset


def spatial_frequency(x: torch.Tensor, *, denominator: str = "valid") -> torch.Tensor:
    """√(RF² + CF²) per image (N×H×W → N); ``denominator`` is "valid" or "pixels" (see module doc)."""
    h, w = x.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"SF needs an image of at least 2×2 pixels, got {h}×{w}")
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    sum_x = (dx * dx).sum(dim=(-2, -1))
    sum_y = (dy * dy).sum(dim=(-2, -1))
    if denominator == "valid":
        return torch.sqrt(sum_x / (h * (w - 1)) + sum_y / ((h - 1) * w))
    if denominator == "pixels":
        return torch.sqrt((sum_x + sum_y) / (h * w))
    raise ValueError(f"unknown SF denominator {denominator!r}; use 'valid' or 'pixels'")


def numpy_style_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``numpy.gradient`` / MATLAB ``gradient`` of the last two dims: central differences inside,
    one-sided at the borders. Returns (d/dx along columns, d/dy along rows)."""
    gx = torch.empty_like(x)
    gy = torch.empty_like(x)
    gx[..., :, 1:-1] = (x[..., :, 2:] - x[..., :, :-2]) / 2
    gx[..., :, 0] = x[..., :, 1] - x[..., :, 0]
    gx[..., :, -1] = x[..., :, -1] - x[..., :, -2]
    gy[..., 1:-1, :] = (x[..., 2:, :] - x[..., :-2, :]) / 2
    gy[..., 0, :] = x[..., 1, :] - x[..., 0, :]
    gy[..., -1, :] = x[..., -1, :] - x[..., -2, :]
    return gx, gy


def average_gradient(x: torch.Tensor, *, denominator: str = "pixels") -> torch.Tensor:
    """Σ √((gx² + gy²)/2) divided by H·W ("pixels") or (H−1)(W−1) ("interior"); N×H×W → N."""
    h, w = x.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"AG needs an image of at least 2×2 pixels, got {h}×{w}")
    gx, gy = numpy_style_gradient(x)
    total = gx.mul_(gx).add_(gy.mul_(gy)).div_(2).sqrt_().sum(dim=(-2, -1))  # √((gx² + gy²)/2), in place
    if denominator == "pixels":
        return total / (h * w)
    if denominator == "interior":
        return total / ((h - 1) * (w - 1))
    raise ValueError(f"unknown AG denominator {denominator!r}; use 'pixels' or 'interior'")


def sf_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """Spatial frequency of F (preset conventions in the module docstring)."""
    sf = spatial_frequency(batch.fused, denominator=preset.sf_denominator)
    return sf * (preset.sf_scale / 255.0)


def ag_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """Average gradient of F on 0–255 (preset conventions in the module docstring)."""
    return average_gradient(batch.fused, denominator=preset.ag_denominator)
