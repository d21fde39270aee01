"""Bringing metric inputs to the scale every definition assumes: grey, float64, 8-bit levels 0–255.

Every code base evaluates 8-bit images read from disk, so the metrics see integer grey levels 0..255.
Tensors from a network are floats in [0, 1]; :func:`to_gray_255` maps them onto the same scale:

* ``uint8`` tensors are taken as 8-bit levels (``data_range`` is ignored);
* float tensors are divided by ``data_range`` (default 1.0, i.e. [0, 1] input) and multiplied by 255.
  Values above ``data_range`` by more than a rounding error raise, so 0–255 floats passed with the
  default are caught instead of being silently scaled 255× too high (pass ``data_range=255`` for them);
* with ``quantize=True`` the result is clamped to 0..255 and rounded half-to-even (as ``numpy.round``),
  which is what writing the fused image to an 8-bit PNG and reading it back does;
* colour (C = 3, RGB order) becomes grey with OpenCV's weights 0.299 R + 0.587 G + 0.114 B, computed in
  float32 as ``cv2.cvtColor`` does, and rounded when ``quantize`` is on, as CDDFuse's reader does.

Float64 carries everything afterwards: variances of 0–255 data lose their low digits in float32.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from data_modules.io import LUMA_WEIGHTS
from stfuse.metrics.presets import MetricPreset

if TYPE_CHECKING:  # annotations only: the registry names this module's classes by string
    from stfuse.metrics.registry import MetricDefinition

_T = TypeVar("_T")

#: Relative slack for float inputs that exceed ``data_range`` through rounding (e.g. 1.0000001).
_RANGE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FusionBatch:
    """Fused and source images as grey N×H×W float64 on the 0–255 scale (sources may be absent)."""

    fused: torch.Tensor
    ir: torch.Tensor | None
    vi: torch.Tensor | None
    #: All values are integer grey levels (8-bit input or quantised), which some metrics exploit for
    #: exact float32 sums.
    integer_levels: bool = False
    #: Intermediate results that several metrics of this batch share (:meth:`shared`).
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_images(self) -> int:
        return int(self.fused.shape[0])

    def shared(self, key: str, compute: Callable[[], _T]) -> _T:
        """``compute()`` once per batch: the metrics updated with one batch (a ``FusionMetrics`` or a
        ``MetricSuite`` hands every metric the same batch) reuse its result under ``key``."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def sources(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ir, vi)``; raises when the batch was built without them."""
        if self.ir is None or self.vi is None:
            raise ValueError("this metric compares the fused image with its sources: pass fused, ir and vi")
        return self.ir, self.vi


def as_nchw(image: torch.Tensor, role: str) -> torch.Tensor:
    """``image`` as N×C×H×W (from H×W, C×H×W or N×C×H×W) with C = 1 or 3; ``role`` names it in errors."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{role}: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[None, None]
    elif image.ndim == 3 and image.shape[0] in (1, 3):
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"{role}: expected N×C×H×W (or H×W, C×H×W), got shape {tuple(image.shape)}")
    if image.shape[1] not in (1, 3):
        raise ValueError(f"{role}: expected 1 (grey) or 3 (RGB) channels, got {image.shape[1]}")
    return image


def rgb_to_gray_255(rgb: torch.Tensor) -> torch.Tensor:
    """N×3×H×W on 0–255 → N×H×W grey, OpenCV's weights in float32 (unrounded)."""
    rgb32 = rgb.to(torch.float32)
    w_r, w_g, w_b = LUMA_WEIGHTS
    gray = rgb32[:, 2] * w_b + rgb32[:, 1] * w_g + rgb32[:, 0] * w_r  # OpenCV's B, G, R summation order
    return gray.to(torch.float64)


def to_gray_255(
    image: torch.Tensor, *, data_range: float = 1.0, quantize: bool = True, role: str = "image"
) -> torch.Tensor:
    """One image batch as grey N×H×W float64 on 0–255 (see the module docstring for the rules)."""
    image = as_nchw(image, role)
    if image.is_complex() or image.dtype == torch.bool:
        raise TypeError(f"{role}: unsupported dtype {image.dtype}")
    if image.dtype == torch.uint8:
        scaled = image.to(torch.float64)
        needs_rounding = False
    elif image.is_floating_point():
        if data_range <= 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        values = image.detach()
        if values.numel():
            low, high = torch.aminmax(values)
            low_value, peak = float(low), float(high)  # NaN and ±inf propagate into the extremes
            if not (math.isfinite(low_value) and math.isfinite(peak)):
                raise ValueError(f"{role} holds NaN or infinite values")
            if peak > data_range * (1.0 + _RANGE_TOLERANCE):
                hint = " (pass data_range=255 for 0–255 floats)" if data_range == 1.0 else ""
                raise ValueError(f"{role} has values up to {peak:g}, above data_range={data_range:g}{hint}")
        scaled = values.to(torch.float64) * (255.0 / data_range)  # always a new tensor
        needs_rounding = True
    else:
        raise TypeError(f"{role}: expected a uint8 or floating-point tensor, got {image.dtype}")
    if quantize and needs_rounding:
        scaled = scaled.round_().clamp_(0.0, 255.0)
    if scaled.shape[1] == 3:
        gray = rgb_to_gray_255(scaled)
        return gray.round_() if quantize else gray
    return scaled[:, 0]


def _is_uint8_grey(image: torch.Tensor) -> bool:
    return image.dtype == torch.uint8 and (image.ndim == 2 or image.shape[-3] == 1)


def prepare_batch(
    fused: torch.Tensor | FusionBatch,
    ir: torch.Tensor | None = None,
    vi: torch.Tensor | None = None,
    *,
    data_range: float = 1.0,
    quantize: bool = True,
) -> FusionBatch:
    """Convert a (fused, ir, vi) triplet once; a :class:`FusionBatch` passes through unchanged."""
    if isinstance(fused, FusionBatch):
        return fused
    if (ir is None) != (vi is None):
        raise ValueError("pass both source images (ir and vi) or neither")
    f = to_gray_255(fused, data_range=data_range, quantize=quantize, role="fused")
    integer_levels = quantize or _is_uint8_grey(fused)
    a = b = None
    if ir is not None and vi is not None:
        a = to_gray_255(ir, data_range=data_range, quantize=quantize, role="ir")
        b = to_gray_255(vi, data_range=data_range, quantize=quantize, role="vi")
        if a.shape != f.shape or b.shape != f.shape:
            raise ValueError(
                f"fused, ir and vi must have the same N×H×W; got fused {tuple(f.shape)}, "
                f"ir {tuple(a.shape)}, vi {tuple(b.shape)}"
            )
        if a.device != f.device or b.device != f.device:
            raise ValueError(
                f"fused, ir and vi must be on one device; got {f.device}, {a.device}, {b.device}"
            )
        integer_levels = quantize or all(_is_uint8_grey(x) for x in (fused, ir, vi))
    return FusionBatch(f, a, b, integer_levels)


class ColourConvention(ABC):
    """How a code base hands images to its metrics: the batch it converts them to once, and a metric's
    values on that batch. A preset names its convention (``MetricPreset.colour``;
    :func:`stfuse.metrics.colour.colour_convention`)."""

    #: ``stfuse evaluate`` reads images with their stored channels (else as grey, like CDDFuse's reader).
    keeps_channels: ClassVar[bool] = False

    @abstractmethod
    def prepare(
        self,
        fused: Any,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
        *,
        data_range: float = 1.0,
        quantize: bool = True,
    ) -> Any:
        """The converted batch (a converted batch of this convention passes through)."""

    @abstractmethod
    def values(self, definition: MetricDefinition, preset: MetricPreset, batch: Any) -> torch.Tensor:
        """Per-image values (N) of ``definition`` under ``preset`` on a batch from :meth:`prepare`."""


class GreyFirst(ColourConvention):
    """Every image becomes grey first (:func:`prepare_batch`), and every metric reads that batch."""

    def prepare(
        self,
        fused: torch.Tensor | FusionBatch,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
        *,
        data_range: float = 1.0,
        quantize: bool = True,
    ) -> FusionBatch:
        return prepare_batch(fused, ir, vi, data_range=data_range, quantize=quantize)

    def values(self, definition: MetricDefinition, preset: MetricPreset, batch: FusionBatch) -> torch.Tensor:
        return definition.values(batch, preset)
