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
* ``tang``, ``tang2022``: Tang's toolkit reports MEF-SSIM (Ma et al. 2015), a different metric; not provided here.

MS-SSIM is Wang et al.'s (2003) five-scale form, as in their ``msssim.m``: 11×11 Gaussian σ = 1.5,
L = 255, contrast–structure terms at scales 1–4 and full SSIM at scale 5, weights
[0.0448, 0.2856, 0.3001, 0.2363, 0.1333], 2×2 averaging (symmetric border) between scales. It needs at
least 161 pixels on the short side. A negative contrast–structure mean raised to a fractional weight
gives NaN, as it gives a complex number in MATLAB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stfuse.metrics.filters import box_mean_valid, filter_valid, gaussian_window_1d, window_sums_valid
from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset, ms_ssim_refusal, ssim_refusal

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: ceil(161 / 16) = 11: the smallest side whose fifth scale still holds one 11×11 window.
MS_SSIM_MIN_SIDE = 161


def _window_sums(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Sum of every run of ``size`` consecutive values along ``dim`` (−1 or −2), by shifted adds."""
    length = x.shape[dim] - size + 1
    total = x.narrow(dim, 0, length).clone()
    for offset in range(1, size):
        total += x.narrow(dim, offset, length)
    return total


def _uniform_mean_float32(x: torch.Tensor, size: int, *, integer_levels: bool) -> torch.Tensor:
    """``scipy.ndimage.uniform_filter`` of float32 maps (…×H×W), valid windows only, rounded as SciPy
    rounds it: axis 0 first, each pass summed in double and stored as float32.

    With integer grey levels (and their products) the first pass is exact in float32 already (7 values
    below 2^16 sum below 2^24); the second pass adds float32 means k/7, all multiples of 2⁻²⁶ below 2^16,
    whose sums double holds exactly. Exact sums make the summation order irrelevant, so those passes may
    use :func:`~stfuse.metrics.filters.window_sums_valid` (OpenCV on the CPU).
    """
    if integer_levels:
        cols = window_sums_valid(x, size, -2).div_(size)
        return window_sums_valid(cols, size, -1, dtype=torch.float64).div_(size).to(torch.float32)
    cols = _window_sums(x.to(torch.float64), size, -2).div_(size).to(torch.float32)
    return _window_sums(cols.to(torch.float64), size, -1).div_(size).to(torch.float32)


def _ssim_from_moments(
    ux: torch.Tensor, uy: torch.Tensor, uxx: torch.Tensor, uyy: torch.Tensor, uxy: torch.Tensor,
    *, data_range: float, win_size: int,
) -> torch.Tensor:  # fmt: skip
    """scikit-image's SSIM map from window means, in their dtype and its operation order; mean (N)."""
    cov_norm = win_size * win_size / (win_size * win_size - 1.0)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    a1 = 2 * ux * uy + c1
    a2 = 2 * vxy + c2
    b1 = ux**2 + uy**2 + c1
    b2 = vx + vy + c2
    s = (a1 * a2) / (b1 * b2)
    return s.sum(dim=(-2, -1), dtype=torch.float64) / (s.shape[-2] * s.shape[-1])


def ssim_skimage_pair_sum(
    fused: torch.Tensor,
    ir: torch.Tensor,
    vi: torch.Tensor,
    *,
    data_range: float = 2.0,
    win_size: int = 7,
    emulate_float32: bool = False,
    integer_levels: bool = False,
) -> torch.Tensor:
    """SSIM(F, A) + SSIM(F, B) with scikit-image's defaults and an explicit ``data_range`` (N).

    ``emulate_float32`` repeats scikit-image's float32 arithmetic on float32 input (what CDDFuse's
    reader produces) operation by operation; float64 otherwise. The two differ by up to ~2e-4 relative on
    TNO: in flat regions the float32 variances are rounding noise against the tiny data_range = 2
    stabilisers. The window means of F and F² are shared by both pairs.
    """
    h, w = fused.shape[-2:]
    if min(h, w) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}×{win_size} pixels, got {h}×{w}")
    dtype = torch.float32 if emulate_float32 else torch.float64
    f, a, b = (x.to(dtype) for x in (fused, ir, vi))
    maps = torch.stack([f, a, b, f * f, a * a, b * b, f * a, f * b], dim=1)
    if emulate_float32:
        means = _uniform_mean_float32(maps, win_size, integer_levels=integer_levels)
    else:
        means = box_mean_valid(maps, win_size)
    # Both pairs at once (N×2 views, F's means broadcast): the same arithmetic per element, half the calls.
    uf, uff, us, uss, ufs = means[:, 0:1], means[:, 3:4], means[:, 1:3], means[:, 4:6], means[:, 6:8]
    per_pair = _ssim_from_moments(uf, us, uff, uss, ufs, data_range=data_range, win_size=win_size)
    return per_pair[:, 0] + per_pair[:, 1]


def ssim_skimage(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 2.0, win_size: int = 7
) -> torch.Tensor:
    """scikit-image ``structural_similarity(x, y, data_range=...)`` in float64 (N)."""
    stack = torch.stack([x, y, x * x, y * y, x * y], dim=1).to(torch.float64)
    ux, uy, uxx, uyy, uxy = box_mean_valid(stack, win_size).unbind(dim=1)
    return _ssim_from_moments(ux, uy, uxx, uyy, uxy, data_range=data_range, win_size=win_size)


def _gaussian_pair_maps(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, taps: torch.Tensor, peak: float
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(SSIM map, contrast–structure map) of (F, A), then of (F, B)]: Gaussian window, 'valid',
    population moments. The filtered F and F² serve both pairs."""
    moments = filter_valid(torch.stack([f, a, b, f * f, a * a, b * b, f * a, f * b], dim=1), taps)
    uf, ua, ub, uff, uaa, ubb, ufa, ufb = moments.unbind(dim=1)
    c1 = (0.01 * peak) ** 2
    c2 = (0.03 * peak) ** 2
    vf = uff - uf * uf
    out = []
    for us, uss, ufs in ((ua, uaa, ufa), (ub, ubb, ufb)):
        vs = uss - us * us
        vfs = ufs - uf * us
        cs = (2 * vfs + c2) / (vf + vs + c2)
        luminance = (2 * uf * us + c1) / (uf * uf + us * us + c1)
        out.append((luminance * cs, cs))
    return out


def ssim_gaussian_pair_sum(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, peak: float = 255.0
) -> torch.Tensor:
    """SSIM(F, A) + SSIM(F, B) with an 11×11 Gaussian window (σ 1.5), 'valid', as VIFB's
    ``metricsSsim`` (N)."""
    h, w = f.shape[-2:]
    if min(h, w) < 11:
        raise ValueError(f"SSIM (vifb) needs images of at least 11×11 pixels, got {h}×{w}")
    pairs = _gaussian_pair_maps(f, a, b, gaussian_window_1d(11, 1.5, device=f.device), peak)
    return sum(ssim_map.mean(dim=(-2, -1)) for ssim_map, _ in pairs)


def _halve(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric', 'same')`` followed by ``x(1:2:end, 1:2:end)``."""
    h, w = x.shape[-2:]
    x4 = x.unsqueeze(1)
    if h % 2 or w % 2:
        x4 = F.pad(x4, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x4, kernel_size=2, stride=2).squeeze(1)


def ms_ssim_pair_sum(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, peak: float = 255.0
) -> torch.Tensor:
    """MS-SSIM(F, A) + MS-SSIM(F, B), Wang et al.'s five-scale form (module docstring), per image (N)."""
    h, w = f.shape[-2:]
    if min(h, w) < MS_SSIM_MIN_SIDE:
        raise ValueError(
            f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} pixels on the short side (an 11×11 window "
            f"at the fifth scale), got {h}×{w}"
        )
    taps = gaussian_window_1d(11, 1.5, device=f.device)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=f.device)
    terms: list[list[torch.Tensor]] = [[], []]
    images = torch.stack([f, a, b], dim=1).to(torch.float64)
    for level in range(len(MS_SSIM_WEIGHTS)):
        last = level == len(MS_SSIM_WEIGHTS) - 1
        pairs = _gaussian_pair_maps(*images.unbind(dim=1), taps, peak)
        for index, (ssim_map, cs_map) in enumerate(pairs):
            terms[index].append((ssim_map if last else cs_map).mean(dim=(-2, -1)))
        if not last:
            images = _halve(images.flatten(0, 1)).view(images.shape[0], 3, *_halved_shape(images.shape[-2:]))
    return sum(torch.prod(torch.stack(t, dim=-1) ** weights, dim=-1) for t in terms)


def _halved_shape(shape: torch.Size) -> tuple[int, int]:
    return (shape[0] + 1) // 2, (shape[1] + 1) // 2


def check_ssim(preset: MetricPreset) -> None:
    """Raise unless ``preset`` defines SSIM as implemented here."""
    reason = ssim_refusal(preset)
    if reason is not None:
        raise ValueError(reason)


def ssim_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """SSIM(F, A) + SSIM(F, B) with the preset's window and data range (module docstring)."""
    ir, vi = batch.sources()
    f = batch.fused
    if preset.ssim_variant == "gaussian":
        return ssim_gaussian_pair_sum(f, ir, vi)
    return ssim_skimage_pair_sum(
        f, ir, vi, emulate_float32=preset.ssim_float32, integer_levels=batch.integer_levels
    )


def check_ms_ssim(preset: MetricPreset) -> None:
    """Raise unless ``preset`` defines the standard MS-SSIM."""
    reason = ms_ssim_refusal(preset)
    if reason is not None:
        raise ValueError(reason)


def ms_ssim_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """MS-SSIM(F, A) + MS-SSIM(F, B), Wang et al.'s five-scale form (module docstring)."""
    ir, vi = batch.sources()
    return ms_ssim_pair_sum(batch.fused, ir, vi)
