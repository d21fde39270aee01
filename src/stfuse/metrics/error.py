"""Error metrics against both sources: MSE and PSNR, with each code base's scale and peak.

* ``cddfuse``: MSE = ½(MSE_AF + MSE_BF) on 0–255; PSNR = 10·log10(max(F)² / MSE) with the fused image's
  own maximum as the peak.
* ``tang``, ``tang2022``: MSE on 0–1 data (255² smaller); PSNR = 20·log10(255 / √MSE₀₁), i.e. the
  textbook value plus 20·log10(255) ≈ 48.13 dB (the "66 dB" tables).
* ``vifb``: MSE as ``cddfuse`` (VIFB has no MSE metric). VIFB's PSNR takes m_X = √(Σ(X−F)²)/(H·W) — a
  root of the sum, not a mean square — and reports 20·log10(255/√(½(m_A + m_B))), about 58–62 dB.
"""

from __future__ import annotations

import torch

from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset
from stfuse.metrics.statistics import pixel_dot


def squared_error_sum(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image Σ(x − y)² (N×H×W → N); exact for integer levels, whatever the summation order."""
    d = x - y
    return pixel_dot(d, d)


def _source_sse(batch: FusionBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ(A − F)², Σ(B − F)²), shared by MSE and PSNR."""
    ir, vi = batch.sources()
    return batch.shared(
        "sse:sources", lambda: (squared_error_sum(ir, batch.fused), squared_error_sum(vi, batch.fused))
    )


def fusion_mse_255(batch: FusionBatch) -> torch.Tensor:
    sse_a, sse_b = _source_sse(batch)
    pixels = batch.fused.shape[-2] * batch.fused.shape[-1]
    return 0.5 * (sse_a / pixels + sse_b / pixels)


def mse_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """½(MSE(A, F) + MSE(B, F)); 0–255 units except the Tang presets (0–1 units)."""
    scale = preset.mse_scale / 255.0
    return fusion_mse_255(batch) * (scale * scale)


def psnr_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """PSNR of F against both sources, with the preset's peak and MSE form (module docstring)."""
    variant = preset.psnr_variant
    f = batch.fused
    if variant == "fused_peak":
        peak = f.amax(dim=(-2, -1))
        return 10.0 * torch.log10(peak * peak / fusion_mse_255(batch))
    if variant == "unit_mse":
        mse_unit = fusion_mse_255(batch) / (255.0 * 255.0)
        return 20.0 * torch.log10(255.0 / torch.sqrt(mse_unit))
    if variant == "vifb_root":
        sse_a, sse_b = _source_sse(batch)
        pixels = f.shape[-2] * f.shape[-1]
        root_a = torch.sqrt(sse_a) / pixels
        root_b = torch.sqrt(sse_b) / pixels
        return 20.0 * torch.log10(255.0 / torch.sqrt(0.5 * (root_a + root_b)))
    raise ValueError(f"unknown PSNR variant {variant!r}")
