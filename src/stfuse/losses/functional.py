"""Differentiable image operators shared by the fusion and guidance losses (kornia-based)."""

from __future__ import annotations

import kornia
import torch


def check_same_shape(**tensors: torch.Tensor) -> None:
    """Raise a ValueError naming the tensors when they are not all N×C×H×W of one shape."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    for name, shape in shapes.items():
        if len(shape) != 4:
            raise ValueError(f"{name} must be N×C×H×W, got shape {shape}")
    if len(set(shapes.values())) > 1:
        raise ValueError(f"tensors must share one shape, got {shapes}")


def ssim_distance(
    x: torch.Tensor, y: torch.Tensor, window_size: int = 11, max_val: float = 1.0
) -> torch.Tensor:
    """1 − mean SSIM(x, y), a scalar in [0, 2].

    ``kornia.losses.ssim_loss`` returns the mean of (1 − SSIM)/2, hence the factor 2.
    """
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd integer, got {window_size}")
    return 2.0 * kornia.losses.ssim_loss(
        x, y, window_size=window_size, max_val=float(max_val), reduction="mean"
    )


def sobel_gradients(x: torch.Tensor) -> torch.Tensor:
    """Normalised Sobel derivatives (∂x, ∂y): N×C×H×W → N×C×2×H×W.

    Borders are replicated, so the image frame is not an edge. A unit-per-pixel ramp gives a derivative of
    1 (the kernels are divided by 8).
    """
    return kornia.filters.spatial_gradient(x, mode="sobel", order=1, normalized=True)


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|∂x| + |∂y| of the Sobel derivatives: N×C×H×W.

    The L1 magnitude is 0 (up to float rounding) on flat regions, unlike ``kornia.filters.sobel`` whose
    sqrt(∂x² + ∂y² + 1e-6) leaves 1e-3 everywhere, and it has no infinite derivative at 0.
    """
    return sobel_gradients(x).abs().sum(dim=2)


def warm_target_mask(ir: torch.Tensor, sigma: float = 8.0, contrast: float = 0.1) -> torch.Tensor:
    """m in [0, 1], N×1×H×W: clamp((IR − G_σ(IR)) / ``contrast``, 0, 1), where the infrared image is brighter
    than its own Gaussian surroundings (σ ``sigma`` pixels, replicated borders): the warm persons and vehicles.
    A flat image gives 0 everywhere."""
    if not sigma > 0 or not contrast > 0:
        raise ValueError(f"sigma and contrast must be > 0, got {sigma} and {contrast}")
    size = 2 * max(1, round(3 * sigma)) + 1
    surround = kornia.filters.gaussian_blur2d(ir, (size, size), (sigma, sigma), border_type="replicate")
    return ((ir - surround) / contrast).clamp(0.0, 1.0)


def instance_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample, per-channel standardisation over the spatial axes of an N×C×H×W map.

    It removes each map's own mean and scale, the "attribute" part (blur level, modality intensity) that the
    guidance loss must not transfer.
    """
    if x.ndim != 4:
        raise ValueError(f"instance_norm expects an N×C×H×W map, got shape {tuple(x.shape)}")
    mean = x.mean(dim=(-2, -1), keepdim=True)
    var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


def local_contrast_norm(
    x: torch.Tensor, window_size: int = 7, sigma: float = 2.0, eps: float = 1e-3
) -> torch.Tensor:
    """(x − μ_local) / sqrt(σ²_local + eps²) with Gaussian-weighted local moments.

    Invariant (up to ``eps``) to x → αx + β for α > 0, so global contrast and brightness do not count.
    ``eps`` keeps flat regions from amplifying noise and the square root differentiable at σ = 0.
    """
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd integer, got {window_size}")
    kernel = (window_size, window_size)
    sigmas = (float(sigma), float(sigma))
    mean = kornia.filters.gaussian_blur2d(x, kernel, sigmas, border_type="replicate")
    mean_sq = kornia.filters.gaussian_blur2d(x * x, kernel, sigmas, border_type="replicate")
    var = (mean_sq - mean * mean).clamp_min(0.0)
    return (x - mean) / torch.sqrt(var + eps * eps)


def match_moments(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Give both images of each pair their common global mean and standard deviation, clamped to [0, 1].

    a, b: N×C×H×W. Per pair, each image is standardised over C×H×W and rescaled to the pair's mean of the two
    means and mean of the two standard deviations, so the pair differs only in its structure, as a multi-focus
    pair does (blur keeps the mean and nearly the spread). A flat image (std < ``eps``) keeps its own values,
    shifted to the common mean.
    """
    check_same_shape(a=a, b=b)
    dims = tuple(range(1, a.ndim))
    mean_a, mean_b = a.mean(dims, keepdim=True), b.mean(dims, keepdim=True)
    std_a, std_b = a.std(dims, keepdim=True), b.std(dims, keepdim=True)
    mean, std = 0.5 * (mean_a + mean_b), 0.5 * (std_a + std_b)

    def rescale(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        scale = torch.where(sigma >= eps, std / sigma.clamp_min(eps), torch.ones_like(sigma))
        return ((x - mu) * scale + mean).clamp(0.0, 1.0)

    return rescale(a, mean_a, std_a), rescale(b, mean_b, std_b)
