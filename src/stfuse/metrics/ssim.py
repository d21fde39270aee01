"""Structural similarity: SSIM(F, A) + SSIM(F, B) and MS-SSIM(F, A) + MS-SSIM(F, B).

SSIM conventions by preset:

* ``cddfuse``: scikit-image's ``structural_similarity`` defaults — 7×7 uniform window, sample covariance
  (× 49/48), K1 = 0.01, K2 = 0.03, the mean over windows that fit inside the image (scikit-image crops a
  3-pixel border) and **data_range = 2**, which scikit-image 0.19 (pinned by CDDFuse) guessed for any float
  input. The stabilisers are then negligible against 0–255 statistics, so these values are not
  comparable with SSIM at L = 255. scikit-image computes in float32 for CDDFuse's float32 images, and in
  flat regions that float32 rounding decides the value; the ``cddfuse`` preset repeats that arithmetic
  (``emulate_float32``) and so matches the reference to ~1e-7 instead of ~2e-4.
* ``vifb``: 11×11 Gaussian window σ = 1.5, L = 255, 'valid' filtering, population moments.
* ``tang``: Tang's toolkit reports MEF-SSIM (Ma et al. 2015), a different metric; not provided here.

MS-SSIM is Wang et al.'s (2003) five-scale form, as in their ``msssim.m``: 11×11 Gaussian σ = 1.5,
L = 255, contrast–structure terms at scales 1–4 and full SSIM at scale 5, weights
[0.0448, 0.2856, 0.3001, 0.2363, 0.1333], 2×2 averaging (symmetric border) between scales. It needs at
least 161 pixels on the short side. A negative contrast–structure mean raised to a fractional weight
gives NaN, as it gives a complex number in MATLAB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stfuse.metrics.base import FusionMetric
from stfuse.metrics.filters import box_mean_valid, filter_valid, gaussian_window_1d
from stfuse.metrics.inputs import FusionBatch

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: ceil(161 / 16) = 11: the smallest side whose fifth scale still holds one 11×11 window.
MS_SSIM_MIN_SIDE = 161


def _uniform_mean_float32(x: torch.Tensor, size: int) -> torch.Tensor:
    """``scipy.ndimage.uniform_filter`` of float32 maps (…×H×W), valid windows only, rounded as SciPy
    rounds it: axis 0 first, each pass summed in double and stored as float32."""
    shape = x.shape
    x4 = x.reshape(-1, 1, *shape[-2:]).to(torch.float64)
    cols = F.avg_pool2d(x4, (size, 1), stride=1).to(torch.float32)
    means = F.avg_pool2d(cols.to(torch.float64), (1, size), stride=1).to(torch.float32)
    return means.reshape(*shape[:-2], *means.shape[-2:])


def ssim_skimage(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 2.0,
    win_size: int = 7,
    emulate_float32: bool = False,
) -> torch.Tensor:
    """scikit-image ``structural_similarity`` with its defaults and an explicit ``data_range`` (N).

    ``emulate_float32`` repeats scikit-image's float32 arithmetic on float32 input (what CDDFuse's
    reader produces) operation by operation; float64 otherwise. The two differ by up to ~2e-4 relative on
    TNO: in flat regions the float32 variances are rounding noise against the tiny data_range = 2
    stabilisers.
    """
    h, w = x.shape[-2:]
    if min(h, w) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}×{win_size} pixels, got {h}×{w}")
    cov_norm = win_size * win_size / (win_size * win_size - 1.0)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    if emulate_float32:
        x32, y32 = x.to(torch.float32), y.to(torch.float32)
        stack = torch.stack([x32, y32, x32 * x32, y32 * y32, x32 * y32], dim=1)
        ux, uy, uxx, uyy, uxy = _uniform_mean_float32(stack, win_size).unbind(dim=1)
    else:
        stack = torch.stack([x, y, x * x, y * y, x * y], dim=1)
        ux, uy, uxx, uyy, uxy = box_mean_valid(stack, win_size).unbind(dim=1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    a1 = 2 * ux * uy + c1
    a2 = 2 * vxy + c2
    b1 = ux**2 + uy**2 + c1
    b2 = vx + vy + c2
    s = (a1 * a2) / (b1 * b2)
    return s.to(torch.float64).mean(dim=(-2, -1))


def _gaussian_ssim_maps(
    x: torch.Tensor, y: torch.Tensor, taps: torch.Tensor, peak: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(SSIM map, contrast–structure map) with a Gaussian window, 'valid', population moments."""
    moments = filter_valid(torch.stack([x, y, x * x, y * y, x * y], dim=1), taps)
    ux, uy, uxx, uyy, uxy = moments.unbind(dim=1)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (0.01 * peak) ** 2
    c2 = (0.03 * peak) ** 2
    cs = (2 * vxy + c2) / (vx + vy + c2)
    luminance = (2 * ux * uy + c1) / (ux * ux + uy * uy + c1)
    return luminance * cs, cs


def ssim_gaussian(x: torch.Tensor, y: torch.Tensor, *, peak: float = 255.0) -> torch.Tensor:
    """SSIM with an 11×11 Gaussian window (σ 1.5), 'valid', as VIFB's ``metricsSsim`` (N)."""
    h, w = x.shape[-2:]
    if min(h, w) < 11:
        raise ValueError(f"SSIM (vifb) needs images of at least 11×11 pixels, got {h}×{w}")
    ssim_map, _ = _gaussian_ssim_maps(x, y, gaussian_window_1d(11, 1.5, device=x.device), peak)
    return ssim_map.mean(dim=(-2, -1))


def _halve(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric', 'same')`` followed by ``x(1:2:end, 1:2:end)``."""
    h, w = x.shape[-2:]
    x4 = x.unsqueeze(1)
    if h % 2 or w % 2:
        x4 = F.pad(x4, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x4, kernel_size=2, stride=2).squeeze(1)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, *, peak: float = 255.0) -> torch.Tensor:
    """Wang et al.'s five-scale MS-SSIM (module docstring) per image (N)."""
    h, w = x.shape[-2:]
    if min(h, w) < MS_SSIM_MIN_SIDE:
        raise ValueError(
            f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} pixels on the short side (an 11×11 window "
            f"at the fifth scale), got {h}×{w}"
        )
    taps = gaussian_window_1d(11, 1.5, device=x.device)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=x.device)
    terms = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim_map, cs_map = _gaussian_ssim_maps(x, y, taps, peak)
        last = level == len(MS_SSIM_WEIGHTS) - 1
        terms.append((ssim_map if last else cs_map).mean(dim=(-2, -1)))
        if not last:
            x, y = _halve(x), _halve(y)
    stacked = torch.stack(terms, dim=-1)  # N×5
    return torch.prod(stacked ** weights, dim=-1)


class SSIMMetric(FusionMetric):
    """SSIM(F, A) + SSIM(F, B) with the preset's window and data range (module docstring)."""

    name = "SSIM"

    def _check_preset(self) -> None:
        if self.preset.ssim_variant is None:
            raise ValueError(
                f"preset {self.preset.name!r} defines SSIM as MEF-SSIM (Ma et al. 2015), which stfuse does "
                "not implement; use preset 'cddfuse' or 'vifb' for SSIM"
            )

    def values_for(self, batch: FusionBatch) -> torch.Tensor:
        ir, vi = batch.sources()
        f = batch.fused
        if self.preset.ssim_variant == "gaussian":
            return ssim_gaussian(f, ir) + ssim_gaussian(f, vi)
        emulate = self.preset.ssim_float32
        return ssim_skimage(f, ir, emulate_float32=emulate) + ssim_skimage(f, vi, emulate_float32=emulate)


class MSSSIMMetric(FusionMetric):
    """MS-SSIM(F, A) + MS-SSIM(F, B), Wang et al.'s five-scale form (module docstring)."""

    name = "MS_SSIM"

    def _check_preset(self) -> None:
        if not self.preset.ms_ssim_supported:
            raise ValueError(
                f"preset {self.preset.name!r} reports a multi-exposure (MEF) MS-SSIM, which stfuse does not "
                "implement; use preset 'cddfuse' or 'vifb' for the standard MS-SSIM"
            )

    def values_for(self, batch: FusionBatch) -> torch.Tensor:
        ir, vi = batch.sources()
        return ms_ssim(batch.fused, ir) + ms_ssim(batch.fused, vi)
