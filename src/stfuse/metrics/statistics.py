"""Moment metrics: standard deviation (SD), correlation coefficient (CC), sum of the correlations of
differences (SCD). All presets agree on them (correlations are scale-free, so Tang's 0–1 data changes
nothing), apart from the uint8 SD of ``tang2022`` (:func:`sd_uint8_saturated`).
"""

from __future__ import annotations

import torch

from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset


def pixel_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ x·y over each image's pixels (N×H×W → N), with torch's cascaded summation: a BLAS dot is twice
    as fast but its running sums lose ~1e-13 relative on a 0.4 MP image, ~100× more."""
    return (x * y).sum(dim=(-2, -1))


def centred(x: torch.Tensor) -> torch.Tensor:
    """Each image minus its mean (N×H×W)."""
    return x - x.mean(dim=(-2, -1), keepdim=True)


def _pearson_centred(xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
    return pixel_dot(xc, yc) / torch.sqrt(pixel_dot(xc, xc) * pixel_dot(yc, yc))


def _centred(batch: FusionBatch, role: str) -> torch.Tensor:
    """``centred(batch.<role>)``, shared by SD, CC and SCD."""
    return batch.shared(f"centred:{role}", lambda: centred(getattr(batch, role)))


def sd_uint8_saturated(levels: torch.Tensor) -> torch.Tensor:
    """SD as Tang's 2022 ``SD_evaluation.m`` computes it on a uint8 image F (N×H×W levels 0..255 → N).

    ``u = mean(mean(F))`` is a double; ``F - u`` is uint8, so MATLAB rounds it half away from zero and
    saturates it to 0..255 (every pixel below the mean counts 0); ``.^2`` is uint8 again and stops at 255;
    only ``sum`` returns a double. The result is √(Σ min(sat(round(F − u))², 255) / (H·W)).
    """
    x = levels.to(torch.float64)
    u = x.mean(dim=-2, keepdim=True).mean(dim=-1, keepdim=True)  # the mean of the column means
    d = x - u
    low = d.floor()
    deviation = torch.where(d - low >= 0.5, low + 1.0, low).clamp_(0.0, 255.0)  # round, then saturate
    squares = deviation.mul_(deviation).clamp_max_(255.0)
    return torch.sqrt(squares.sum(dim=(-2, -1)) / (x.shape[-2] * x.shape[-1]))


def sd_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """Population standard deviation of F on 0–255 (``tang2022``: the uint8 form, :func:`sd_uint8_saturated`).

    Tang's toolkit computed SD on the uint8 image until 2023-03-03, and tables made with it show that
    (its own spreadsheet: SeAFusion on pair 01, SD 8.90 against 48.15), so ``tang2022`` keeps it; ``tang``
    follows the current code, which is the correct form.
    """
    if preset.sd_uint8:
        f = batch.fused if batch.integer_levels else batch.fused.round().clamp(0.0, 255.0)
        return sd_uint8_saturated(f)
    f = _centred(batch, "fused")
    return torch.sqrt(pixel_dot(f, f) / (f.shape[-2] * f.shape[-1]))


def cc_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """½·(corr(A, F) + corr(B, F)), Pearson over all pixels."""
    batch.sources()
    f, a, b = (_centred(batch, role) for role in ("fused", "ir", "vi"))
    return 0.5 * (_pearson_centred(a, f) + _pearson_centred(b, f))


def scd_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """corr(A, F − B) + corr(B, F − A): how much of each source the fused image holds beyond the other.

    F − B is centred as F′ − B′ (the difference of the centred images), which is centred up to rounding.
    """
    batch.sources()
    f, a, b = (_centred(batch, role) for role in ("fused", "ir", "vi"))
    return _pearson_centred(a, f - b) + _pearson_centred(b, f - a)
