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
"ratio" quirk stores 255·g_F; it computes in float64. :func:`~stfuse.metrics.edge.qabf_vifb` does the
same (the preset's ``qabf_precision`` selects it).

Which metrics take which path is each definition's business (``vifb_colour``, ``vifb_grey_sources`` in
:mod:`stfuse.metrics.registry`), not a list of names here.

Metrics VIFB does not have (SCD, VIF, CC, MSE, FMI, Nabf, MS-SSIM) are scored with the same
per-channel wrapper and take the rounded grey sources, which is what VIFB's wrapper would do with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stfuse.metrics.edge import qabf_vifb
from stfuse.metrics.inputs import ColourConvention, FusionBatch, as_nchw, to_gray_255
from stfuse.metrics.presets import MetricPreset
from stfuse.metrics.registry import METRICS, MetricDefinition

__all__ = [
    "FLOAT_GREY_METRICS",
    "MATLAB_GREY_WEIGHTS",
    "VIFBBatch",
    "VIFBChannels",
    "matlab_rgb2gray",
    "prepare_vifb_batch",
    "qabf_vifb",
    "vifb_values",
]

#: MATLAB ``rgb2gray`` weights (the first row of the inverse YIQ matrix, to full double precision).
MATLAB_GREY_WEIGHTS = (0.2989360212937754, 0.5870430744511212, 0.11402090425510336)
#: Metrics whose VIFB code converts the sources to double before ``rgb2gray``, so a grey fused image is
#: compared with floating-point grey sources; every other metric sees the rounded 8-bit grey. From each
#: definition's ``vifb_grey_sources``.
FLOAT_GREY_METRICS = frozenset(name for name, info in METRICS.items() if info.vifb_grey_sources == "float")


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
    image = as_nchw(image, role)
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


class VIFBChannels(ColourConvention):
    """VIFB's convention (module docstring): images keep their channels (:func:`prepare_vifb_batch`), and
    each metric is scored per channel or on MATLAB's grey as its definition's ``vifb_colour`` and
    ``vifb_grey_sources`` say (:func:`vifb_values`)."""

    keeps_channels = True

    def prepare(
        self,
        fused: torch.Tensor | FusionBatch | VIFBBatch,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
        *,
        data_range: float = 1.0,
        quantize: bool = True,
    ) -> VIFBBatch:
        return prepare_vifb_batch(fused, ir, vi, data_range=data_range, quantize=quantize)

    def values(self, definition: MetricDefinition, preset: MetricPreset, batch: VIFBBatch) -> torch.Tensor:
        return vifb_values(definition, preset, batch)


def vifb_values(definition: MetricDefinition, preset: MetricPreset, batch: VIFBBatch) -> torch.Tensor:
    """Per-image values (N) of ``definition`` under VIFB's colour or grey convention (module docstring)."""
    f = batch.fused
    n, channels, h, w = f.shape
    if batch.colour:
        if definition.vifb_colour == "side_by_side":
            side_by_side = f.permute(0, 2, 1, 3).reshape(n, h, channels * w)  # R | G | B
            return definition.values(FusionBatch(side_by_side, None, None, batch.integer_levels), preset)
        per_channel = FusionBatch(
            f.reshape(n * channels, h, w),
            _channel_stack(batch.ir, channels),
            _channel_stack(batch.vi, channels),
            batch.integer_levels,
        )
        return definition.values(per_channel, preset).reshape(n, channels).mean(dim=1)
    rounded = batch.integer_levels and definition.vifb_grey_sources == "rounded"
    ir, vi = _grey(batch.ir, rounded=rounded), _grey(batch.vi, rounded=rounded)
    colour_source = any(x is not None and x.shape[1] == 3 for x in (batch.ir, batch.vi))
    integer_levels = batch.integer_levels and (rounded or not colour_source)
    return definition.values(FusionBatch(f[:, 0], ir, vi, integer_levels), preset)
