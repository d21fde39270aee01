"""Histogram metrics: entropy (EN) and mutual information (MI) over the 256 grey levels.

Both work on integer levels 0..255 (inputs that are not quantised are rounded first, as the reference's
``np.uint8(np.round(img))`` does). The histograms of a whole batch come from one ``torch.bincount``
with the image index folded into the bin index, so the GPU path has no Python loop over images.
"""

from __future__ import annotations

import math

import torch

from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset

LEVELS = 256


def grey_levels(x: torch.Tensor) -> torch.Tensor:
    """N×H×W 0–255 floats → int64 levels 0..255 (rounded half-to-even, clamped)."""
    return x.round().clamp(0, LEVELS - 1).to(torch.int64)


def _with_image_offsets(index: torch.Tensor, bins: int) -> torch.Tensor:
    """Fold the image index into the bin index (N×H×W → flat), so one bincount serves a whole batch."""
    n = index.shape[0]
    if n > 1:
        index = index + torch.arange(n, device=index.device, dtype=index.dtype).view(n, 1, 1) * bins
    return index.reshape(-1)


def histograms(levels: torch.Tensor) -> torch.Tensor:
    """Per-image 256-bin counts, N×256 (int64)."""
    n = levels.shape[0]
    return torch.bincount(_with_image_offsets(levels, LEVELS), minlength=n * LEVELS).view(n, LEVELS)


def joint_histograms(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image 256×256 joint counts of two level images, N×256×256 (int64); rows index ``x``."""
    n = x.shape[0]
    index = _with_image_offsets(x * LEVELS + y, LEVELS * LEVELS)
    return torch.bincount(index, minlength=n * LEVELS * LEVELS).view(n, LEVELS, LEVELS)


def entropy_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits of each row of N×256 counts."""
    counts = counts.to(torch.float64)
    p = counts / counts.sum(dim=1, keepdim=True)
    return -torch.where(p > 0, p * torch.log2(torch.where(p > 0, p, 1.0)), 0.0).sum(dim=1)


def batch_levels(batch: FusionBatch, role: str) -> torch.Tensor:
    """The integer levels (int32) of ``batch.fused``/``ir``/``vi``, shared by EN and MI. Integer-level
    batches are converted without rounding (they hold 0..255 already)."""

    def convert() -> torch.Tensor:
        x = getattr(batch, role)
        return x.to(torch.int32) if batch.integer_levels else grey_levels(x).to(torch.int32)

    return batch.shared(f"levels:{role}", convert)


def mutual_information_nats(x_levels: torch.Tensor, y_levels: torch.Tensor) -> torch.Tensor:
    """MI(x, y) in nats from the exact joint histogram (as ``sklearn.metrics.mutual_info_score``).

    Like scikit-learn, a result that rounds below zero is clipped to 0. Computed from count entropies,
    MI = (Σ c log c − Σ cₓ log cₓ − Σ c_y log c_y) / T + log T with T pixels: three ``xlogy`` passes over the
    65 536 cells instead of a dozen (the bins, not the pixels, dominate on small images).
    """
    joint = joint_histograms(x_levels, y_levels).to(torch.float64)  # N×256×256
    total = joint.sum(dim=(1, 2))
    marginal_x, marginal_y = joint.sum(dim=2), joint.sum(dim=1)
    s_xy = torch.xlogy(joint, joint).sum(dim=(1, 2))
    s_x = torch.xlogy(marginal_x, marginal_x).sum(dim=1)
    s_y = torch.xlogy(marginal_y, marginal_y).sum(dim=1)
    mi = (s_xy - s_x - s_y) / total + torch.log(total)
    return mi.clamp_min(0.0)


#: The joint-histogram bin of levels 254 and 255 in Tang's ``Hab.m`` (0-based): it indexes its 256×256
#: counter with ``uint8 + 1``, which saturates at 255, so both levels land in the last row/column.
HAB_TOP_BIN = LEVELS - 2


def count_entropy_nats(counts: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Shannon entropy in nats of per-image counts over ``dims``: log T − Σ c log c / T."""
    counts = counts.to(torch.float64)
    total = counts.sum(dim=dims)
    return torch.log(total) - torch.xlogy(counts, counts).sum(dim=dims) / total


def mutual_information_hab_nats(
    x_levels: torch.Tensor, y_levels: torch.Tensor, x_entropy: torch.Tensor, y_entropy: torch.Tensor
) -> torch.Tensor:
    """MI(x, y) in nats as Tang's ``MI_evaluation.m`` computes it: H(x) + H(y) − H(x, y).

    The marginal entropies ``x_entropy`` and ``y_entropy`` (nats) come from exact 256-level histograms,
    as MATLAB's ``entropy()`` gives them. The joint entropy comes from ``Hab.m``'s histogram, in which
    ``uint8(level) + 1`` saturates, so levels 254 and 255 share one bin in each image. That quirk only
    lowers the joint entropy, so the result is the exact MI or above it, never clipped.
    """
    joint = joint_histograms(x_levels.clamp_max(HAB_TOP_BIN), y_levels.clamp_max(HAB_TOP_BIN))
    return x_entropy + y_entropy - count_entropy_nats(joint, (1, 2))


def en_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """EN of the fused image in bits (all presets)."""
    return entropy_from_counts(histograms(batch_levels(batch, "fused")))


def mi_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """MI(F, A) + MI(F, B) from 256-level joint histograms.

    ``cddfuse`` and ``vifb`` report nats (natural log) from exact histograms. VIFB min–max stretches each
    image before binning, which maps distinct levels to distinct bins and therefore leaves MI unchanged
    for 8-bit images. ``tang`` and ``tang2022`` report bits (nats / ln 2) with the joint histograms of
    ``Hab.m``, where levels 254 and 255 merge (:func:`mutual_information_hab_nats`).
    """
    batch.sources()
    f = batch_levels(batch, "fused")
    a, b = batch_levels(batch, "ir"), batch_levels(batch, "vi")
    if preset.mi_hab_saturation:
        h_f, h_a, h_b = (count_entropy_nats(histograms(x), (1,)) for x in (f, a, b))
        mi = mutual_information_hab_nats(f, a, h_f, h_a) + mutual_information_hab_nats(f, b, h_f, h_b)
    else:
        mi = mutual_information_nats(f, a) + mutual_information_nats(f, b)
    return mi / math.log(2.0) if preset.mi_unit == "bits" else mi
