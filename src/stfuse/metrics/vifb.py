"""VIFB's way of scoring colour and grey images (the ``vifb`` preset; docs/metrics.md, "VIFB's colour
and grey conventions").

VIFB's ``compute_metrics.m`` hands every metric the images as MATLAB's ``imread`` returns them, so a
colour file arrives with three channels and a grey file with one. Each ``metrics/metrics*.m`` then
branches on the number of fused channels:

* **colour fused image**: the metric is computed once per channel k, between fused channel k, visible
  channel k and infrared channel k (or the whole infrared image when it has one channel), and the three
  values are averaged. SF is the exception: it indexes the H×W×3 array with two subscripts, so it sees
  the three channels laid side by side as one H×3W image (R | G | B, seams included);
* **grey fused image**: a three-channel source is converted with MATLAB's ``rgb2gray``. Where the source
  is still 8-bit when converted (MI, SSIM) the result is rounded to 8 bits; where VIFB has already cast
  it to double (PSNR, Qabf) the result stays floating point.

VIFB's Qabf also runs on ``255·im2double(double(img))``, i.e. 255 × the 0–255 levels, so the g_A = g_F
"ratio" quirk stores 255·g_F; it computes in float64. :func:`qabf_vifb` does the same.

Metrics VIFB does not have (SCD, VIF, CC, MSE, FMI, Nabf, MS-SSIM) are scored with the same
per-channel wrapper and take the rounded grey sources, which is what VIFB's wrapper would do with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from stfuse.metrics.inputs import FusionBatch, _as_nchw, to_gray_255

if TYPE_CHECKING:
    from stfuse.metrics.base import FusionMetric

#: MATLAB ``rgb2gray`` weights (the first row of the inverse YIQ matrix, to full double precision).
MATLAB_GREY_WEIGHTS = (0.2989360212937754, 0.5870430744511212, 0.11402090425510336)
#: Metrics whose VIFB code converts the sources to double before ``rgb2gray``, so a grey fused image is
#: compared with floating-point grey sources; every other metric sees the rounded 8-bit grey.
FLOAT_GREY_METRICS = frozenset({"PSNR", "Qabf"})


@dataclass(frozen=True)
class VIFBBatch:
    """Fused and source images with their channels kept: N×C×H×W float64 on 0–255, C = 1 or 3 (RGB)."""

    fused: torch.Tensor
    ir: torch.Tensor | None
    vi: torch.Tensor | None
    #: All values are 8-bit levels (quantised or uint8 input): MATLAB would hold them as uint8, so its
    #: ``rgb2gray`` rounds.
    integer_levels: bool = False

    @property
    def num_images(self) -> int:
        return int(self.fused.shape[0])

    @property
    def colour(self) -> bool:
        return self.fused.shape[1] == 3

    def sources(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ir is None or self.vi is None:
            raise ValueError("this metric compares the fused image with its sources: pass fused, ir and vi")
        return self.ir, self.vi


def matlab_rgb2gray(rgb: torch.Tensor, *, rounded: bool) -> torch.Tensor:
    """MATLAB's ``rgb2gray`` of N×3×H×W RGB on 0–255 → N×H×W float64.

    The weighted sum is taken in float64 in MATLAB's order, (R·w_R + G·w_G) + B·w_B. ``rounded`` gives
    the uint8 result (half away from zero, as MATLAB casts); otherwise the double result, unrounded.
    """
    r, g, b = rgb.to(torch.float64).unbind(dim=1)
    w_r, w_g, w_b = MATLAB_GREY_WEIGHTS
    grey = (r * w_r + g * w_g) + b * w_b
    if not rounded:
        return grey
    floor = grey.floor()
    return torch.where(grey - floor >= 0.5, floor + 1.0, floor).clamp_(0.0, 255.0)


def _channels_255(image: torch.Tensor, *, data_range: float, quantize: bool, role: str) -> torch.Tensor:
    """N×C×H×W on 0–255 float64 with the channels kept, by :func:`to_gray_255`'s scaling rules."""
    image = _as_nchw(image, role)
    return torch.stack(
        [
            to_gray_255(image[:, k : k + 1], data_range=data_range, quantize=quantize, role=role)
            for k in range(image.shape[1])
        ],
        dim=1,
    )


def prepare_vifb_batch(
    fused: torch.Tensor | FusionBatch | VIFBBatch,
    ir: torch.Tensor | None = None,
    vi: torch.Tensor | None = None,
    *,
    data_range: float = 1.0,
    quantize: bool = True,
) -> VIFBBatch:
    """Convert a (fused, ir, vi) triplet once, keeping channels. A :class:`VIFBBatch` passes through; a
    :class:`FusionBatch` is taken as already grey."""
    if isinstance(fused, VIFBBatch):
        return fused
    if isinstance(fused, FusionBatch):
        grey = lambda x: None if x is None else x[:, None]  # noqa: E731
        return VIFBBatch(grey(fused.fused), grey(fused.ir), grey(fused.vi), fused.integer_levels)
    if (ir is None) != (vi is None):
        raise ValueError("pass both source images (ir and vi) or neither")
    inputs = {"fused": fused, "ir": ir, "vi": vi}
    converted = {
        role: None if x is None else _channels_255(x, data_range=data_range, quantize=quantize, role=role)
        for role, x in inputs.items()
    }
    f = converted["fused"]
    assert f is not None
    for role in ("ir", "vi"):
        x = converted[role]
        if x is None:
            continue
        if x.shape[0] != f.shape[0] or x.shape[-2:] != f.shape[-2:]:
            raise ValueError(
                f"fused, ir and vi must have the same N, H and W; got fused {tuple(f.shape)}, {role} {tuple(x.shape)}"
            )
        if x.device != f.device:
            raise ValueError(f"fused, ir and vi must be on one device; got {f.device} and {x.device}")
    integer_levels = quantize or all(x.dtype == torch.uint8 for x in inputs.values() if x is not None)
    return VIFBBatch(f, converted["ir"], converted["vi"], integer_levels)


def _channel_stack(source: torch.Tensor | None, channels: int) -> torch.Tensor | None:
    """N×C×H×W → (N·channels)×H×W: channel k for colour, the one channel repeated for grey."""
    if source is None:
        return None
    if source.shape[1] == 1:
        source = source.expand(-1, channels, -1, -1)
    return source.reshape(-1, *source.shape[-2:])


def _grey(source: torch.Tensor | None, *, rounded: bool) -> torch.Tensor | None:
    if source is None:
        return None
    return source[:, 0] if source.shape[1] == 1 else matlab_rgb2gray(source, rounded=rounded)


def _grey_values(metric: FusionMetric, batch: FusionBatch) -> torch.Tensor:
    if metric.name == "Qabf":
        return qabf_vifb(batch.fused, *batch.sources())
    return metric.values_for(batch)


def vifb_values(metric: FusionMetric, batch: VIFBBatch) -> torch.Tensor:
    """Per-image values (N) of ``metric`` under VIFB's colour or grey convention (module docstring)."""
    f = batch.fused
    n, channels, h, w = f.shape
    if batch.colour:
        if metric.name == "SF":
            side_by_side = f.permute(0, 2, 1, 3).reshape(n, h, channels * w)  # R | G | B
            return metric.values_for(FusionBatch(side_by_side, None, None, batch.integer_levels))
        per_channel = FusionBatch(
            f.reshape(n * channels, h, w),
            _channel_stack(batch.ir, channels),
            _channel_stack(batch.vi, channels),
            batch.integer_levels,
        )
        return _grey_values(metric, per_channel).reshape(n, channels).mean(dim=1)
    rounded = batch.integer_levels and metric.name not in FLOAT_GREY_METRICS
    ir, vi = _grey(batch.ir, rounded=rounded), _grey(batch.vi, rounded=rounded)
    colour_source = any(x is not None and x.shape[1] == 3 for x in (batch.ir, batch.vi))
    integer_levels = batch.integer_levels and (rounded or not colour_source)
    return _grey_values(metric, FusionBatch(f[:, 0], ir, vi, integer_levels))


def _qabf_edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from stfuse.metrics.edge import sobel_same_zero

    sx, sy = sobel_same_zero(255.0 * x.to(torch.float64))  # VIFB: 255·im2double of a double image
    g = torch.sqrt(sx * sx + sy * sy)
    alpha = torch.where(sx == 0, math.pi / 2, torch.atan(sy / torch.where(sx == 0, 1.0, sx)))
    return g, alpha


def qabf_vifb(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """VIFB's ``metricsQabf`` core per image (N×H×W on 0–255 → N): Xydeas–Petrović Q^{AB/F} with the
    shared constants, in float64 on 255× the 0–255 levels, so the g_A = g_F quirk stores 255·g_F."""
    from stfuse.metrics.edge import _qabf_preservation

    constants = dict(equal_scale=1.0, tg=0.9994, kg=-15.0, dg=0.5, ta=0.9879, ka=-22.0, da=0.8)
    g_a, a_a = _qabf_edges(ir)
    g_b, a_b = _qabf_edges(vi)
    g_f, a_f = _qabf_edges(fused)
    q_af = _qabf_preservation(g_a, a_a, g_f, a_f, **constants)
    q_bf = _qabf_preservation(g_b, a_b, g_f, a_f, **constants)
    return (q_af * g_a + q_bf * g_b).sum(dim=(-2, -1)) / (g_a + g_b).sum(dim=(-2, -1))
