"""Moment metrics: standard deviation (SD), correlation coefficient (CC), sum of the correlations of
differences (SCD). All presets agree on them (correlations are scale-free, so Tang's 0–1 data changes
nothing), apart from one old bug noted on :class:`SDMetric`.
"""

from __future__ import annotations

import torch

from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation over all pixels (N×H×W → N); NaN for a constant image."""
    xc = x - x.mean(dim=(-2, -1), keepdim=True)
    yc = y - y.mean(dim=(-2, -1), keepdim=True)
    num = (xc * yc).sum(dim=(-2, -1))
    return num / torch.sqrt((xc * xc).sum(dim=(-2, -1)) * (yc * yc).sum(dim=(-2, -1)))


def standard_deviation(x: torch.Tensor) -> torch.Tensor:
    """Population standard deviation of each image (N×H×W → N)."""
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    return torch.sqrt((centred * centred).mean(dim=(-2, -1)))


def sd_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """Population standard deviation of F on 0–255 (all presets).

    An old version of Tang's ``SD_evaluation`` subtracted the mean from the uint8 image, which saturates
    negative deviations to zero; published tables made with the toolkit do not show that bug, so the
    ``tang`` preset uses the correct form too.
    """
    return standard_deviation(batch.fused)


def cc_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """½·(corr(A, F) + corr(B, F)), Pearson over all pixels."""
    ir, vi = batch.sources()
    return 0.5 * (pearson(ir, batch.fused) + pearson(vi, batch.fused))


def scd_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """corr(A, F − B) + corr(B, F − A): how much of each source the fused image holds beyond the other."""
    ir, vi = batch.sources()
    f = batch.fused
    return pearson(ir, f - vi) + pearson(vi, f - ir)
