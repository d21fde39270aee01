"""Classical fusion rules: the reference rows every learned method should beat.

All take ``ir`` and ``vi`` as N×C×H×W float tensors on the same scale (usually [0, 1]; any H×W, odd sizes
included) and return the fused tensor of the same shape, clamped to [0, ``data_range``]. They are plain
torch and run on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Burt & Adelson's 5-tap binomial generating kernel.
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def average_fusion(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Pixel-wise mean of the two sources."""
    return (ir + vi) / 2


def maximum_fusion(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Pixel-wise maximum: keeps hot IR targets and bright visible detail, and their noise."""
    return torch.maximum(ir, vi)


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Separable 5-tap binomial blur (each pass scaled by ``gain``) with mirrored borders, replicated
    where the image is too small to mirror."""
    c = x.shape[1]
    taps = torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device) / 16.0 * gain
    mode = "reflect" if min(x.shape[-2:]) > 2 else "replicate"
    x = F.pad(x, (2, 2, 2, 2), mode=mode)
    x = F.conv2d(x, taps.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, taps.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def _down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[..., ::2, ::2]


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-insertion ×2 upsampling followed by the blur (×4 gain), cropped to ``size``."""
    n, c, h, w = x.shape
    z = x.new_zeros((n, c, 2 * h, 2 * w))
    z[..., ::2, ::2] = x
    return _blur(z, gain=2.0)[..., : size[0], : size[1]]


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels (finest first) and the low-pass residual last; exact reconstruction by
    :func:`collapse_pyramid` for any image size. Stops early once a level would drop below 8 pixels."""
    pyramid = []
    current = x
    for _ in range(levels):
        if min(current.shape[-2:]) < 8:
            break
        smaller = _down(current)
        pyramid.append(current - _up(smaller, current.shape[-2:]))
        current = smaller
    pyramid.append(current)
    return pyramid


def collapse_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = band + _up(image, band.shape[-2:])
    return image


def laplacian_fusion(ir: torch.Tensor, vi: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Laplacian-pyramid fusion: the larger-magnitude coefficient on each band, the mean on the base."""
    pa, pb = laplacian_pyramid(ir, levels), laplacian_pyramid(vi, levels)
    fused = [torch.where(a.abs() >= b.abs(), a, b) for a, b in zip(pa[:-1], pb[:-1])]
    fused.append((pa[-1] + pb[-1]) / 2)
    return collapse_pyramid(fused)


def _activity(x: torch.Tensor, data_range: float) -> torch.Tensor:
    """Local edge energy: squared central-difference gradient, blurred twice (~2-pixel neighbourhood)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    return _blur(_blur(gx * gx + gy * gy)) / (data_range * data_range)


def gradient_weighted_fusion(ir: torch.Tensor, vi: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Weighted mean with weights ∝ local gradient energy (a mean where both sources are flat)."""
    wa = _activity(ir, data_range) + 1e-6
    wb = _activity(vi, data_range) + 1e-6
    return (wa * ir + wb * vi) / (wa + wb)
