"""Separable window filters shared by the metrics (VIF, SSIM, MS-SSIM), vectorised over leading dims.

The reference code filters with ``scipy.signal.convolve2d`` / MATLAB ``filter2`` in 'valid' mode on
float64 data. Local variances of 0–255 images are differences of numbers near 65 025, so float32 would
lose the digits that matter; everything here stays float64. Large windows go through the FFT (the
Gaussian windows are separable and symmetric, so the kernel spectrum is an outer product of two 1-D
spectra); small ones use shifted sums, which are cheaper below about 9 taps.
"""

from __future__ import annotations

import functools

import torch

#: Windows with at least this many taps are applied in the frequency domain.
FFT_MIN_TAPS = 9


def gaussian_window_1d(size: int, sigma: float, *, device: torch.device | str | None = None) -> torch.Tensor:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``, normalised to sum 1 (float64).

    ``fspecial`` zeroes values below ``eps·max``; for the windows used here (N ≤ 17, σ ≥ 0.6 with
    N/σ ≤ 7.4) the smallest corner is above 1e-5 of the peak, so that step never applies and the 2-D
    window is exactly the outer product of this vector with itself.
    """
    half = (size - 1) / 2.0
    x = torch.arange(size, dtype=torch.float64, device=device) - half
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


@functools.lru_cache(maxsize=512)
def fast_fft_length(n: int) -> int:
    """Smallest 2·3·5-smooth integer ≥ n (sizes every FFT backend handles quickly)."""
    m = max(n, 1)
    while True:
        rest = m
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return m
        m += 1


def _filter_valid_fft(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    k = taps.numel()
    h, w = x.shape[-2:]
    hf, wf = fast_fft_length(h), fast_fft_length(w)
    spectrum = torch.fft.rfft2(x, s=(hf, wf))
    kernel = torch.fft.fft(taps.to(torch.complex128), n=hf)[:, None] * torch.fft.rfft(taps, n=wf)[None, :]
    y = torch.fft.irfft2(spectrum * kernel, s=(hf, wf))
    # Circular convolution equals the linear one from index k−1 on; those are exactly the 'valid' outputs.
    return y[..., k - 1 : h, k - 1 : w]


def _filter_valid_direct(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    k = taps.numel()
    h, w = x.shape[-2:]
    weights = taps.tolist()
    ho, wo = h - k + 1, w - k + 1
    rows = x[..., :, 0:wo] * weights[0]
    for i in range(1, k):
        rows = rows + x[..., :, i : i + wo] * weights[i]
    out = rows[..., 0:ho, :] * weights[0]
    for i in range(1, k):
        out = out + rows[..., i : i + ho, :] * weights[i]
    return out


def filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Filter the last two dims with the separable symmetric window ``outer(taps, taps)``, 'valid' mode.

    Output is (H−K+1)×(W−K+1), the same as ``convolve2d(x, outer(taps, taps), 'valid')``.
    """
    k = taps.numel()
    h, w = x.shape[-2:]
    if h < k or w < k:
        raise ValueError(f"image {h}×{w} is smaller than the {k}×{k} window")
    taps = taps.to(device=x.device, dtype=x.dtype)
    if k >= FFT_MIN_TAPS:
        return _filter_valid_fft(x, taps)
    return _filter_valid_direct(x, taps)


def box_mean_valid(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over every size×size window that fits (running sums along each axis, float64)."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"image {h}×{w} is smaller than the {size}×{size} window")
    c = torch.nn.functional.pad(x, (1, 0)).cumsum(-1)
    rows = c[..., size:] - c[..., :-size]
    c = torch.nn.functional.pad(rows, (0, 0, 1, 0)).cumsum(-2)
    return (c[..., size:, :] - c[..., :-size, :]) / float(size * size)
