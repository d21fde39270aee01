"""Pixel-domain visual information fidelity (Sheikh & Bovik's VIFp), summed over both sources.

CDDFuse calls this ``VIFF`` but computes VIFp, as Tang's ``vifp_mscale`` does: 4 scales, Gaussian
windows N = 17, 9, 5, 3 with σ = N/5, 'valid' filtering, the image filtered with the next scale's window
and subsampled by 2 between scales, σ²_n = 2, and VIF = Σ num / Σ den over all scales. All presets agree
but ``tang2022``: Tang's 2022 toolkit ran it on uint8 images, where the first scale's products saturate
at 255 (:func:`vifp_pair_sums`).

The reference spends ~86 % of its time here (direct 17×17 ``convolve2d``). This version filters the
eight moment maps (μ_A, μ_B, μ_F, E[A²], E[B²], E[F²], E[AF], E[BF]) of a whole batch per scale, in
float64 so the variances of 0–255 data keep their digits: on the CPU as two 1-D passes of the separable
Gaussian (:func:`~stfuse.metrics.filters.filter_valid`, OpenCV), elsewhere in one batched FFT per scale.
"""

from __future__ import annotations

import math

import torch

from stfuse.metrics.filters import FFT_MIN_TAPS, fast_fft_length, filter_valid, gaussian_window_1d
from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset

SIGMA_N_SQ = 2.0
#: Where uint8 arithmetic saturates (``tang2022``'s first-scale products).
UINT8_MAX = 255.0
EPS = 1e-10
NUM_SCALES = 4
LN10 = math.log(10.0)


#: Most factors multiplied before one logarithm in :func:`_sum_log1p`.
LOG_CHUNK = 64


def _sum_log1p(x: torch.Tensor) -> torch.Tensor:
    """Σ log(1 + x) over the last two dims for x ≥ 0, overwriting ``x``: on the CPU the log of products
    of up to :data:`LOG_CHUNK` factors (1 + x), one logarithm per chunk instead of per pixel.

    The chunk is shortened so that no product can overflow (factors here stay below ~10⁴, where 64
    fit easily). Each product adds at most one rounding per factor, ~1e-14 per chunk, which is
    negligible against sums of 10⁵ terms of order 1; ``log(1 + x)`` is also the reference's form.
    """
    if x.device.type != "cpu":  # logarithms are cheap there, and the chunk choice would sync with the host
        return torch.log1p(x).sum(dim=(-2, -1))
    lead = x.shape[:-2]
    flat = x.add_(1.0).reshape(*lead, -1)
    if flat.shape[-1] == 0:
        return flat.sum(dim=-1)
    largest = float(flat.amax())
    chunk = min(LOG_CHUNK, int(1000.0 / math.log2(largest))) if largest > 2.0 else LOG_CHUNK
    if chunk < 2 or not math.isfinite(largest):
        return flat.log().sum(dim=-1)
    whole = flat.shape[-1] // chunk * chunk
    head = flat[..., :whole].reshape(*lead, -1, chunk).prod(dim=-1).log_().sum(dim=-1)
    return head + flat[..., whole:].log().sum(dim=-1)


#: ``x > _BELOW_EPS`` ⇔ ``x >= EPS`` (``torch.threshold`` keeps values strictly above its threshold).
_BELOW_EPS = math.nextafter(EPS, 0.0)


def _vifp_terms(
    mu_r: torch.Tensor,
    e_rr: torch.Tensor,
    sigma_d: torch.Tensor,
    mu_d: torch.Tensor,
    e_rd: torch.Tensor,
    distorted_flat: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (numerator, denominator) sums of one scale, for reference r and distorted d.

    The reference applies its guards in sequence (flat reference → g = 0 and σ_r = 0; flat distorted →
    g = 0; negative gain → g = 0; σ_v ≥ eps). Every guard that zeroes g or σ_r zeroes that pixel's
    numerator term, so they collapse into one mask; a pixel with σ_r < eps adds nothing to either sum.
    Sums of log(1+x) are converted to log10 once per image. ``distorted_flat`` (σ_d < eps) may be passed
    in when several references share one distorted image.
    """
    if distorted_flat is None:
        distorted_flat = sigma_d < EPS
    sigma_r = torch.addcmul(e_rr, mu_r, mu_r, value=-1.0).clamp_min_(0.0)
    sigma_rd = torch.addcmul(e_rd, mu_r, mu_d, value=-1.0)
    gain = sigma_rd / (sigma_r + EPS)
    sv = torch.addcmul(sigma_d, gain, sigma_rd, value=-1.0).clamp_min_(EPS).add_(SIGMA_N_SQ)
    torch.threshold_(sigma_r, _BELOW_EPS, 0.0)  # σ_r < eps → 0
    gain.clamp_min_(0.0).masked_fill_(distorted_flat, 0.0)
    num = _sum_log1p(gain.mul_(gain).mul_(sigma_r).div_(sv))
    den = _sum_log1p(sigma_r.mul_(1.0 / SIGMA_N_SQ))
    return num / LN10, den / LN10


def _moment_maps(images: torch.Tensor, product_cap: float | None = None) -> torch.Tensor:
    """N×3×H×W (A, B, F) → N×8×H×W: A, B, F, A², B², F², AF, BF; the products clamped to
    ``product_cap`` when given (uint8 arithmetic saturates at 255)."""
    n, _, h, w = images.shape
    maps = images.new_empty((n, 8, h, w))
    maps[:, 0:3] = images
    torch.mul(images, images, out=maps[:, 3:6])
    torch.mul(images[:, 0:2], images[:, 2:3], out=maps[:, 6:8])
    if product_cap is not None:
        maps[:, 3:8].clamp_max_(product_cap)
    return maps


def _gaussian_spectrum(size: int, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    taps = gaussian_window_1d(size, size / 5.0, device=device)
    hf, wf = shape
    return torch.fft.fft(taps.to(torch.complex128), n=hf)[:, None] * torch.fft.rfft(taps, n=wf)[None, :]


def vifp_pair_sums(
    fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, *, uint8_products: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Σ-over-scales (num, den) of VIFp(ir→F) and VIFp(vi→F); each N-vectors.

    ``uint8_products``: the first scale's products A², B², F², AF, BF saturate at 255, as ``ref.*ref``
    does on the uint8 images of Tang's 2022 toolkit; later scales filter doubles and are unaffected.
    """
    cap = UINT8_MAX if uint8_products else None
    if fused.device.type == "cpu":
        return _vifp_pair_sums_separable(fused, ir, vi, cap)
    return _vifp_pair_sums_fft(fused, ir, vi, cap)


def _scale_sums(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One scale's (num_A, den_A, num_B, den_B) from its N×8×H'×W' filtered moment maps.

    Both sources go through one set of operations (N×2×H'×W' views, F's maps broadcast), which halves
    the operation count without changing any element's arithmetic.
    """
    mu_r, e_rr, e_rf = moments[:, 0:2], moments[:, 3:5], moments[:, 6:8]  # A and B
    mu_f, e_ff = moments[:, 2:3], moments[:, 5:6]
    sigma_f = torch.addcmul(e_ff, mu_f, mu_f, value=-1.0).clamp_min_(0.0)
    num, den = _vifp_terms(mu_r, e_rr, sigma_f, mu_f, e_rf, sigma_f < EPS)  # N×2 each
    return num[:, 0], den[:, 0], num[:, 1], den[:, 1]


def _vifp_pair_sums_separable(
    fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, first_cap: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct separable filtering (the CPU path): about 34 multiply–adds per map and pixel at scale 1."""
    images = torch.stack([ir, vi, fused], dim=1).to(torch.float64)  # N×3×H×W
    totals = [torch.zeros(fused.shape[0], dtype=torch.float64) for _ in range(4)]
    for scale in range(1, NUM_SCALES + 1):
        size = 2 ** (NUM_SCALES - scale + 1) + 1
        taps = gaussian_window_1d(size, size / 5.0)
        if scale > 1:
            images = filter_valid(images, taps)[..., ::2, ::2].contiguous()
        maps = _moment_maps(images, first_cap if scale == 1 else None)
        for total, part in zip(totals, _scale_sums(filter_valid(maps, taps))):
            total += part
    return totals[0], totals[1], totals[2], totals[3]


def _vifp_pair_sums_fft(
    fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, first_cap: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The FFT path (GPUs): one batched FFT of the eight moment maps per scale.

    Scales with ≥ 9-tap windows filter in the frequency domain, and the spectra of A, B, F computed for
    one scale are reused to low-pass them for the next scale (circular convolution at the padded size
    is exact on the 'valid' region for any window up to the padding).
    """
    n = fused.shape[0]
    num_a = torch.zeros(n, dtype=torch.float64, device=fused.device)
    den_a, num_b, den_b = num_a.clone(), num_a.clone(), num_a.clone()
    images = torch.stack([ir, vi, fused], dim=1).to(torch.float64)  # N×3×H×W
    smoothed_spectra: torch.Tensor | None = None  # A, B, F low-passed for the next scale, in frequency
    fft_shape = (0, 0)
    for scale in range(1, NUM_SCALES + 1):
        size = 2 ** (NUM_SCALES - scale + 1) + 1
        next_size = (size - 1) // 2 + 1
        h, w = images.shape[-2:]
        if scale > 1:
            if smoothed_spectra is not None:
                smooth = torch.fft.irfft2(smoothed_spectra, s=fft_shape)
                images = smooth[..., size - 1 : h, size - 1 : w][..., ::2, ::2]
            else:
                images = filter_valid(images, gaussian_window_1d(size, size / 5.0, device=fused.device))[
                    ..., ::2, ::2
                ]
            h, w = images.shape[-2:]
        maps = _moment_maps(images, first_cap if scale == 1 else None)
        smoothed_spectra = None
        if size >= FFT_MIN_TAPS:
            fft_shape = (fast_fft_length(h), fast_fft_length(w))
            spectra = torch.fft.rfft2(maps, s=fft_shape)
            if scale < NUM_SCALES:
                smoothed_spectra = spectra[:, 0:3] * _gaussian_spectrum(next_size, fft_shape, fused.device)
            spectra.mul_(_gaussian_spectrum(size, fft_shape, fused.device))
            moments = torch.fft.irfft2(spectra, s=fft_shape)[..., size - 1 : h, size - 1 : w]
        else:
            moments = filter_valid(maps, gaussian_window_1d(size, size / 5.0, device=fused.device))
        na, da, nb, db = _scale_sums(moments)
        num_a += na
        den_a += da
        num_b += nb
        den_b += db
    return num_a, den_a, num_b, den_b


def vifp_sum(
    fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, *, uint8_products: bool = False
) -> torch.Tensor:
    """VIFp(A→F) + VIFp(B→F) per image; a 0/0 ratio (flat images) counts as 1, as in the reference.
    ``uint8_products`` as in :func:`vifp_pair_sums`."""
    num_a, den_a, num_b, den_b = vifp_pair_sums(fused, ir, vi, uint8_products=uint8_products)
    vif_a = num_a / den_a
    vif_b = num_b / den_b
    return torch.where(torch.isnan(vif_a), 1.0, vif_a) + torch.where(torch.isnan(vif_b), 1.0, vif_b)


def vif_values(batch: FusionBatch, preset: MetricPreset) -> torch.Tensor:
    """VIFp(A→F) + VIFp(B→F) (module docstring). Needs images of at least 41×41 pixels.

    ``tang2022`` saturates the first scale's products on uint8 (:func:`vifp_pair_sums`); inputs that are
    not 8-bit levels are rounded to them first, as that code only ever saw uint8 images.
    """
    ir, vi = batch.sources()
    f = batch.fused
    h, w = f.shape[-2:]
    if min(h, w) < 41:
        raise ValueError(f"VIF needs images of at least 41×41 pixels (4 scales), got {h}×{w}")
    if preset.vif_uint8_products and not batch.integer_levels:
        f, ir, vi = (x.round().clamp(0.0, 255.0) for x in (f, ir, vi))
    return vifp_sum(f, ir, vi, uint8_products=preset.vif_uint8_products)
