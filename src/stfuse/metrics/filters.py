"""Separable window filters shared by the metrics (VIF, SSIM, MS-SSIM), vectorised over leading dims.

The reference code filters with ``scipy.signal.convolve2d`` / MATLAB ``filter2`` in 'valid' mode on
float64 data. Local variances of 0–255 images are differences of numbers near 65 025, so float32 would
lose the digits that matter; everything here stays float64. On the CPU the windows are applied as two
1-D passes by OpenCV's ``sepFilter2D`` (direct sums in double, 2.7× faster than our FFT for VIF's
17-tap window and 3–7× faster than shifted sums in eager torch); on other devices large windows go
through the FFT (the Gaussian windows are separable and symmetric, so the kernel spectrum is an outer
product of two 1-D spectra) and small ones use shifted sums, which are cheaper below about 9 taps.
Qabf's Sobel kernels use the same OpenCV call (:func:`correlate_separable_same`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

#: Windows with at least this many taps are applied in the frequency domain (off the CPU).
FFT_MIN_TAPS = 9


@functools.cache
def opencv() -> object:
    """OpenCV, pinned to one thread as everywhere in stfuse (its pool does not survive a fork); callers
    that want several cores run images side by side instead (``stfuse evaluate``)."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def _opencv_planes(x: torch.Tensor, apply: object, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Apply ``apply(src_plane, dst_plane)`` to every H×W plane of a CPU tensor; full-size output of
    ``dtype`` (default: ``x``'s)."""
    source = x.detach().contiguous().numpy()
    planes = source.reshape(-1, *source.shape[-2:])
    out = np.empty(
        planes.shape, dtype={torch.float64: np.float64, torch.float32: np.float32}[dtype or x.dtype]
    )
    for index in range(planes.shape[0]):
        apply(planes[index], out[index])  # type: ignore[operator]
    return torch.from_numpy(out.reshape(source.shape))


def _filter_valid_opencv(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    cv2 = opencv()
    k = taps.numel()
    h, w = x.shape[-2:]
    kernel = taps.detach().cpu().numpy()

    def apply(src: np.ndarray, dst: np.ndarray) -> None:
        cv2.sepFilter2D(src, -1, kernel, kernel, dst=dst, borderType=cv2.BORDER_CONSTANT)  # type: ignore[attr-defined]

    # OpenCV centres the window (anchor K//2): the 'valid' outputs start K//2 in from each border.
    r = k // 2
    return _opencv_planes(x, apply)[..., r : r + h - k + 1, r : r + w - k + 1]


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


def correlate_separable_same(
    x: torch.Tensor, row_taps: torch.Tensor, column_taps: torch.Tensor
) -> torch.Tensor:
    """Correlate the last two dims of a float CPU tensor with ``outer(column_taps, row_taps)`` (odd
    lengths), zero padding, same size (OpenCV): ``out[i, j] = Σ_uv column_taps[u]·row_taps[v]·x[i+u−c, j+v−r]``
    with c, r the taps' centres."""
    cv2 = opencv()
    dtype = np.float64 if x.dtype == torch.float64 else np.float32
    kx, ky = row_taps.numpy().astype(dtype), column_taps.numpy().astype(dtype)

    def apply(src: np.ndarray, dst: np.ndarray) -> None:
        cv2.sepFilter2D(src, -1, kx, ky, dst=dst, borderType=cv2.BORDER_CONSTANT)  # type: ignore[attr-defined]

    return _opencv_planes(x, apply)


def filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Filter the last two dims with the separable symmetric window ``outer(taps, taps)``, 'valid' mode.

    Output is (H−K+1)×(W−K+1), the same as ``convolve2d(x, outer(taps, taps), 'valid')`` (on the CPU a
    view into a full-size result).
    """
    k = taps.numel()
    h, w = x.shape[-2:]
    if h < k or w < k:
        raise ValueError(f"image {h}×{w} is smaller than the {k}×{k} window")
    taps = taps.to(device=x.device, dtype=x.dtype)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return _filter_valid_opencv(x, taps)
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


def window_sums_valid(
    x: torch.Tensor, size: int, dim: int, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Sum of every run of ``size`` consecutive values along ``dim`` (−1 or −2), computed and returned in
    ``dtype`` (default ``x``'s; float32 input with ``dtype=torch.float64`` is summed in double).

    On the CPU OpenCV's separable filter does it with a window of ones (its vectorised direct sums beat
    its own box filter 3×); elsewhere shifted adds. The summation order differs, so results agree
    exactly whenever every partial sum is representable: integer grey levels and their products in
    float32, or float32 values on a common 2⁻²⁶ grid in float64 (what :mod:`stfuse.metrics.ssim` uses).
    """
    if dim not in (-1, -2):
        raise ValueError(f"dim must be -1 or -2, got {dim}")
    length = x.shape[dim] - size + 1
    if length < 1:
        raise ValueError(f"size {size} is larger than dimension {dim} ({x.shape[dim]})")
    dtype = x.dtype if dtype is None else dtype
    if (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and dtype in (torch.float32, torch.float64)
    ):
        cv2 = opencv()
        depth = cv2.CV_64F if dtype == torch.float64 else cv2.CV_32F  # type: ignore[attr-defined]
        ones = np.ones(size, dtype=np.float64 if dtype == torch.float64 else np.float32)
        kx, ky = (ones, ones[:1]) if dim == -1 else (ones[:1], ones)

        def apply(src: np.ndarray, dst: np.ndarray) -> None:
            cv2.sepFilter2D(src, depth, kx, ky, dst=dst, borderType=cv2.BORDER_CONSTANT)  # type: ignore[attr-defined]

        return _opencv_planes(x, apply, dtype).narrow(dim, size // 2, length)
    x = x.to(dtype)
    total = x.narrow(dim, 0, length).clone()
    for offset in range(1, size):
        total += x.narrow(dim, offset, length)
    return total
