"""Edge-preservation metrics from Sobel responses: Qabf (Xydeas–Petrović) and Nabf (Kumar's artefacts).

Both compare the edge strength g and orientation α of the fused image with those of each source, pixel
by pixel, and weight the comparison by the source edge strength. They differ in kernels, padding and
constants, and each keeps its reference implementation's quirks:

* Qabf (CDDFuse ``Evaluator.Qabf``, Tang's ``analysis_Qabf``): computed in float32 like CDDFuse's
  (float32 images and kernels; Sobel responses of 8-bit data are exact integers there), with float64
  sums. Sobel by ``convolve2d(..., 'same')`` with zero padding; α = atan(S_y/S_x) with π/2 where
  S_x = 0; where g_A = g_F exactly the strength "ratio" is g_F itself, not 1. That quirk depends on the
  data scale: g_F on 0–255 for ``cddfuse`` and ``tang`` (Tang's toolkit passes ``im2double(x)*255``
  since 2023-03-03), g_F/255 for ``tang2022`` (0–1 data before that); ``vifb`` uses its own float64
  form on 255× data (:func:`qabf_vifb`).
* Nabf (Kumar's ``objective_fusion_perform_fn``): Sobel/8 by correlation over a mirrored border without
  repeating the edge pixel (``per_extn_im_fn``, i.e. reflect-101), weights g^1.5 above Td = 2 and 0.001
  below. Both Tang presets run it on 0–1 data, where no strength reaches Td, so all weights are 0.001.
  Comparisons between strengths are made on the exact 0–255 Sobel responses and only then scaled, so
  ties (g_F = g_A, common in max-type fusions) are decided exactly rather than by float noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stfuse.metrics.filters import correlate_separable_same
from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset


def sobel_same_zero(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(S_x, S_y) = ``convolve2d(x, h3, 'same')``, ``convolve2d(x, h1, 'same')`` with zero padding.

    h3 = [[-1,0,1],[-2,0,2],[-1,0,1]], h1 = [[1,2,1],[0,0,0],[-1,-2,-1]]; convolution flips them, so
    S_x = [1,2,1]ᵀ·(left − right) and S_y = [1,2,1]·(below − above). On the CPU these are OpenCV
    separable correlations (exact for 8-bit data, whose responses are small integers).
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        smooth, difference = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 0.0, -1.0])
        sx = correlate_separable_same(x, difference, smooth)  # left − right, smoothed down the columns
        sy = correlate_separable_same(x, smooth, -difference)  # below − above, smoothed along the rows
        return sx, sy
    xp = F.pad(x, (1, 1, 1, 1))
    dx = xp[..., :, :-2] - xp[..., :, 2:]
    sx = dx[..., :-2, :] + 2.0 * dx[..., 1:-1, :] + dx[..., 2:, :]
    dy = xp[..., 2:, :] - xp[..., :-2, :]
    sy = dy[..., :, :-2] + 2.0 * dy[..., :, 1:-1] + dy[..., :, 2:]
    return sx, sy


def sobel_reflect_eighth(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kumar's ``sobel_fn``: (g_v, g_h) = correlation with [[-1,0,1],[-2,0,2],[-1,0,1]]/8 and its
    transpose-like [[-1,-2,-1],[0,0,0],[1,2,1]]/8, over a reflect-101 border."""
    xp = F.pad(x.unsqueeze(-3), (1, 1, 1, 1), mode="reflect").squeeze(-3)
    dx = xp[..., :, 2:] - xp[..., :, :-2]
    gv = (dx[..., :-2, :] + 2.0 * dx[..., 1:-1, :] + dx[..., 2:, :]) / 8.0
    dy = xp[..., 2:, :] - xp[..., :-2, :]
    gh = (dy[..., :, :-2] + 2.0 * dy[..., :, 1:-1] + dy[..., :, 2:]) / 8.0
    return gv, gh


def _strength_orientation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sx, sy = sobel_same_zero(x.to(torch.float32))
    g = torch.sqrt(sx * sx + sy * sy)
    vertical = sx == 0
    alpha = torch.atan(sy.div_(sx)).masked_fill_(vertical, math.pi / 2)  # ±inf or NaN there, replaced
    return g, alpha


def qabf_preservation(
    g_s: torch.Tensor,
    a_s: torch.Tensor,
    g_f: torch.Tensor,
    a_f: torch.Tensor,
    *,
    equal_scale: float,
    tg: float,
    kg: float,
    dg: float,
    ta: float,
    ka: float,
    da: float,
) -> torch.Tensor:
    """Q_g·Q_α of a source (strength ``g_s``, orientation ``a_s``) against the fused image, per pixel; the
    strength ratio is ``g_f · equal_scale`` where the strengths are equal (the kept quirk)."""
    # The smaller strength over the larger (0/0 only where they are equal, which the quirk replaces).
    # In-place chains of the same operations as tg / (1 + exp(kg·(ratio − dg))), rounding included.
    ratio = torch.minimum(g_s, g_f).div_(torch.maximum(g_s, g_f))
    ratio = torch.where(g_s == g_f, g_f * equal_scale, ratio)
    q_g = ratio.sub_(dg).mul_(kg).exp_().add_(1.0).reciprocal_().mul_(tg)
    agreement = torch.abs(a_s - a_f).div_(math.pi / 2).neg_().add_(1.0)  # 1 − |Δα|/(π/2)
    q_a = agreement.sub_(da).mul_(ka).exp_().add_(1.0).reciprocal_().mul_(ta)
    return q_g.mul_(q_a)


def qabf(
    fused: torch.Tensor,
    ir: torch.Tensor,
    vi: torch.Tensor,
    *,
    equal_scale: float = 1.0,
    tg: float = 0.9994,
    kg: float = -15.0,
    dg: float = 0.5,
    ta: float = 0.9879,
    ka: float = -22.0,
    da: float = 0.8,
) -> torch.Tensor:
    """Q^{AB/F} per image (N×H×W on 0–255 → N). ``equal_scale`` scales the g_A = g_F quirk value
    (1 for 0–255 data, 1/255 for the 0–1 data of Tang's 2022 toolkit). Liu's MFIF toolbox variant uses kg=-10, dg=0.5,
    ka=-20, da=0.75."""
    # A, B and F through one set of operations (…×3×H×W), A and B against F as one …×2×H×W pair.
    g, alpha = _strength_orientation(torch.stack([ir, vi, fused], dim=-3))
    consts = dict(equal_scale=equal_scale, tg=tg, kg=kg, dg=dg, ta=ta, ka=ka, da=da)
    q = qabf_preservation(
        g[..., 0:2, :, :], alpha[..., 0:2, :, :], g[..., 2:3, :, :], alpha[..., 2:3, :, :], **consts
    )
    q.mul_(g[..., 0:2, :, :])
    g_a, g_b = g[..., 0, :, :], g[..., 1, :, :]
    num = (q[..., 0, :, :] + q[..., 1, :, :]).sum(dim=(-2, -1), dtype=torch.float64)
    return num / (g_a + g_b).sum(dim=(-2, -1), dtype=torch.float64)


NABF_TD = 2.0
NABF_WT_MIN = 0.001
NABF_L = 1.5
NABF_NRG, NABF_KG, NABF_SIGMA_G = 0.9999, 19.0, 0.5
NABF_NRA, NABF_KA, NABF_SIGMA_A = 0.9995, 22.0, 0.5


def _kumar_edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(8·g)², g and α of Kumar's Sobel/8. (8·g)² is an exact integer for 8-bit data, so comparisons
    between strengths use it and are exact. Float64: Nabf sums 1 − Q with Q close to 1."""
    gv, gh = sobel_reflect_eighth(x.to(torch.float64))
    gv8, gh8 = gv * 8.0, gh * 8.0
    squared = gv8 * gv8 + gh8 * gh8
    both_zero = squared == 0
    alpha = torch.where(both_zero, 0.0, torch.atan(gv8 / torch.where(both_zero, 1.0, gh8)))
    return squared, torch.sqrt(squared) / 8.0, alpha


def _kumar_preservation(
    sq_s: torch.Tensor, a_s: torch.Tensor, sq_f: torch.Tensor, a_f: torch.Tensor
) -> torch.Tensor:
    zero = (sq_s == 0) | (sq_f == 0)
    low = torch.minimum(sq_s, sq_f)
    high = torch.where(zero, 1.0, torch.maximum(sq_s, sq_f))
    ratio = torch.where(zero, 0.0, torch.sqrt(low / high))
    agreement = torch.abs(torch.abs(a_s - a_f) - math.pi / 2) * (2.0 / math.pi)
    q_g = NABF_NRG / (1.0 + torch.exp(-NABF_KG * (ratio - NABF_SIGMA_G)))
    q_a = NABF_NRA / (1.0 + torch.exp(-NABF_KA * (agreement - NABF_SIGMA_A)))
    return torch.sqrt(q_g * q_a)


def nabf(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """Kumar's modified fusion-artefact measure N^{AB/F} per image (N×H×W on 0–255 → N).

    ``scale`` is the data scale relative to 0–255 (1/255 reproduces Tang's 0–1 evaluation).
    """
    sq_a, g_a, a_a = _kumar_edges(ir)
    sq_b, g_b, a_b = _kumar_edges(vi)
    sq_f, _, a_f = _kumar_edges(fused)
    q_af = _kumar_preservation(sq_a, a_a, sq_f, a_f)
    q_bf = _kumar_preservation(sq_b, a_b, sq_f, a_f)
    # g·scale ≥ Td  ⇔  (8g)² ≥ (8·Td/scale)², tested on the exact squares.
    threshold = (8.0 * NABF_TD / scale) ** 2
    w_a = torch.where(sq_a >= threshold, (g_a * scale) ** NABF_L, NABF_WT_MIN)
    w_b = torch.where(sq_b >= threshold, (g_b * scale) ** NABF_L, NABF_WT_MIN)
    artefact = (sq_f > sq_a) & (sq_f > sq_b)
    num = torch.where(artefact, (1.0 - q_af) * w_a + (1.0 - q_bf) * w_b, 0.0).sum(dim=(-2, -1))
    return num / (w_a + w_b).sum(dim=(-2, -1))


def _qabf_edges_float64(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sx, sy = sobel_same_zero(255.0 * x.to(torch.float64))  # VIFB: 255·im2double of a double image
    g = torch.sqrt(sx * sx + sy * sy)
    alpha = torch.where(sx == 0, math.pi / 2, torch.atan(sy / torch.where(sx == 0, 1.0, sx)))
    return g, alpha


def qabf_vifb(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """VIFB's ``metricsQabf`` core per image (N×H×W on 0–255 → N): Xydeas–Petrović Q^{AB/F} with the
    shared constants, in float64 on 255× the 0–255 levels, so the g_A = g_F quirk stores 255·g_F."""
    constants = dict(equal_scale=1.0, tg=0.9994, kg=-15.0, dg=0.5, ta=0.9879, ka=-22.0, da=0.8)
    g_a, a_a = _qabf_edges_float64(ir)
    g_b, a_b = _qabf_edges_float64(vi)
    g_f, a_f = _qabf_edges_float64(fused)
    q_af = qabf_preservation(g_a, a_a, g_f, a_f, **constants)
    q_bf = qabf_preservation(g_b, a_b, g_f, a_f, **constants)
    return (q_af * g_a + q_bf * g_b).sum(dim=(-2, -1)) / (g_a + g_b).sum(dim=(-2, -1))


def qabf_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """Xydeas–Petrović Q^{AB/F} (see the module docstring for the conventions kept): float32 with the
    quirk value on the preset's ``qabf_scale``, or VIFB's float64 form (:func:`qabf_vifb`)."""
    ir, vi = batch.sources()
    if preset.qabf_precision == "float64":
        return qabf_vifb(batch.fused, ir, vi)
    return qabf(batch.fused, ir, vi, equal_scale=preset.qabf_scale / 255.0)


def nabf_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """Kumar's N^{AB/F} artefact measure; lower is better (module docstring)."""
    ir, vi = batch.sources()
    h, w = batch.fused.shape[-2:]
    if min(h, w) < 2:
        raise ValueError(f"Nabf needs images of at least 2×2 pixels, got {h}×{w}")
    return nabf(batch.fused, ir, vi, scale=preset.nabf_scale / 255.0)
