"""Fusion losses: the unsupervised IVIF objective and the supervised MFIF objective L_src."""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from stfuse.losses.functional import (
    check_same_shape,
    gradient_magnitude,
    sobel_gradients,
    ssim_distance,
    warm_target_mask,
)
from stfuse.models.blend import pyr_down, usable_levels
from stfuse.models.blocks import pad_to_multiple


class SSIMLoss(nn.Module):
    """1 − SSIM(x, y), averaged over pixels and the batch.

    Not ``kornia.losses.SSIMLoss``, which returns half of this value.
    """

    def __init__(self, window_size: int = 11, max_val: float = 1.0) -> None:
        super().__init__()
        if window_size < 1 or window_size % 2 == 0:
            raise ValueError(f"window_size must be a positive odd integer, got {window_size}")
        self.window_size = int(window_size)
        self.max_val = float(max_val)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_same_shape(x=x, y=y)
        return ssim_distance(x, y, window_size=self.window_size, max_val=self.max_val)


class IVIFFusionLoss(nn.Module):
    """Unsupervised IVIF objective λ_int·L_int + λ_grad·L_grad + λ_ssim·L_ssim.

    - L_int  = |F − max(A, B)|₁: keep the brighter (salient) intensity, typically the IR target;
    - L_grad = | |∇F| − max(|∇A|, |∇B|) |₁: keep the stronger texture at every pixel (Sobel, L1 magnitude);
    - L_ssim = 1 − ½·(SSIM(F, A) + SSIM(F, B));
    - L_target (when ``lambda_target`` > 0) = Σ m·|F − max(A, B)| / Σ m, the intensity term on the infrared
      targets only: m = clamp((A − G_σ(A)) / ``target_contrast``, 0, 1) marks where the infrared image is
      brighter than its own surroundings (G_σ a Gaussian of σ ``target_sigma`` pixels), the warm persons and
      vehicles. L_int averages over every pixel, so a target of a few hundred pixels barely counts and comes out
      grey; normalised by the mask's own area, it counts as much as the whole image does in L_int. A batch
      without such pixels gives 0.

    ``forward`` returns ``{"int", "grad", "ssim", "total"}`` and ``"target"`` when ``lambda_target`` > 0
    (scalars; only ``total`` is weighted).
    """

    def __init__(
        self,
        lambda_int: float = 1.0,
        lambda_grad: float = 1.0,
        lambda_ssim: float = 1.0,
        window_size: int = 11,
        lambda_target: float = 0.0,
        target_sigma: float = 8.0,
        target_contrast: float = 0.1,
    ) -> None:
        super().__init__()
        if not lambda_target >= 0:
            raise ValueError(f"lambda_target must be ≥ 0, got {lambda_target}")
        if not target_sigma > 0 or not target_contrast > 0:
            raise ValueError(
                f"target_sigma and target_contrast must be > 0, got {target_sigma} and {target_contrast}"
            )
        self.lambda_int = float(lambda_int)
        self.lambda_grad = float(lambda_grad)
        self.lambda_ssim = float(lambda_ssim)
        self.lambda_target = float(lambda_target)
        self.target_sigma = float(target_sigma)
        self.target_contrast = float(target_contrast)
        self.ssim = SSIMLoss(window_size=window_size)

    def target_mask(self, a: torch.Tensor) -> torch.Tensor:
        """m in [0, 1]: where the infrared image ``a`` (N×1×H×W) is brighter than its Gaussian surroundings."""
        return warm_target_mask(a, self.target_sigma, self.target_contrast)

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """fused, a, b: N×1×H×W in [0, 1] (a = infrared, b = visible luminance)."""
        check_same_shape(fused=fused, a=a, b=b)
        loss_int = (fused - torch.maximum(a, b)).abs().mean()
        target_grad = torch.maximum(gradient_magnitude(a), gradient_magnitude(b))
        loss_grad = (gradient_magnitude(fused) - target_grad).abs().mean()
        loss_ssim = 0.5 * (self.ssim(fused, a) + self.ssim(fused, b))
        total = self.lambda_int * loss_int + self.lambda_grad * loss_grad + self.lambda_ssim * loss_ssim
        terms = {"int": loss_int, "grad": loss_grad, "ssim": loss_ssim}
        if self.lambda_target > 0:
            mask = self.target_mask(a).detach()
            error = (fused - torch.maximum(a, b)).abs()
            terms["target"] = (mask * error).sum() / mask.sum().clamp_min(1.0)
            total = total + self.lambda_target * terms["target"]
        return {**terms, "total": total}


class SelectionSmoothness(nn.Module):
    """Edge-aware total variation of the select head's base-level weight map, at the base level's scale.

    The base (coarsest) level of the Laplacian blend carries each region's brightness. Where neither source
    has an edge (a sky, a road) the IVIF terms hardly constrain which source's brightness to take, and the
    texture term (weighted 80×) follows each source's noise, so the base weight flips between the sources
    in blotches and the blend paints dark or bright patches with soft seams into flat regions. This term
    charges each flip of the base weight, |∂x W| + |∂y W| (Sobel) at the base level's resolution, by
    exp(−e / ``edge_scale``), with e = max(|∇A|, |∇B|) at that resolution: a flip costs little on a source edge
    (an infrared target's outline) and fully in flat regions. The detail levels are left alone.

    ``levels``: the network's pyramid levels (``STFuseNet.levels``); ``weights`` is N×L×H×W (one map per
    level, the last the base) or N×1×H×W (one map shared by every level).
    """

    def __init__(self, levels: int, edge_scale: float = 0.05) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be ≥ 1, got {levels}")
        if edge_scale <= 0:
            raise ValueError(f"edge_scale must be positive, got {edge_scale}")
        self.levels = int(levels)
        self.edge_scale = float(edge_scale)

    def forward(self, weights: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """weights: N×L×H×W weights of source a; a, b: N×1×H×W sources. Returns a scalar ≥ 0."""
        check_same_shape(a=a, b=b)
        if weights.ndim != 4 or weights.shape[0] != a.shape[0] or weights.shape[-2:] != a.shape[-2:]:
            raise ValueError(
                f"weights must be N×L×H×W over the sources' N×1×H×W, got {tuple(weights.shape)} and "
                f"{tuple(a.shape)}"
            )
        if weights.shape[1] not in (1, self.levels):
            raise ValueError(
                f"weights need 1 or {self.levels} channels (one per level), got {weights.shape[1]}"
            )
        levels = usable_levels(*a.shape[-2:], self.levels)
        base = weights[:, levels - 1 : levels] if weights.shape[1] > 1 else weights
        stack = pad_to_multiple(torch.cat([base, a, b], dim=1), 2 ** (levels - 1))
        for _ in range(levels - 1):  # the blend's own pyramid: the base weight at the base level's scale
            stack = pyr_down(stack)
        flips = gradient_magnitude(stack[:, :1])
        edges = torch.maximum(gradient_magnitude(stack[:, 1:2]), gradient_magnitude(stack[:, 2:3])).detach()
        return (flips * torch.exp(-edges / self.edge_scale)).mean()


class MFIFLoss(nn.Module):
    """Supervised multi-focus objective L_src = |F − G|₁ + α·(1 − SSIM(F, G)) + β·|∇F − ∇G|₁.

    The gradient term compares the signed Sobel derivatives (∂x, ∂y), so an edge of the right strength but
    the wrong polarity or place is still penalised. ``forward`` returns ``{"l1", "ssim", "grad", "total"}``.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, window_size: int = 11) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.ssim = SSIMLoss(window_size=window_size)

    def forward(self, fused: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """fused, target: N×1×H×W in [0, 1]; target is the all-in-focus ground truth G."""
        check_same_shape(fused=fused, target=target)
        loss_l1 = (fused - target).abs().mean()
        loss_ssim = self.ssim(fused, target)
        loss_grad = (sobel_gradients(fused) - sobel_gradients(target)).abs().mean()
        total = loss_l1 + self.alpha * loss_ssim + self.beta * loss_grad
        return {"l1": loss_l1, "ssim": loss_ssim, "grad": loss_grad, "total": total}


class DecisionLoss(nn.Module):
    """Supervised selection: BCE between the predicted weights of A and the synthetic focus mask M.

    The source stage knows the exact mask (A is in focus where M = 1), so the ``select`` head's weight maps are
    pulled towards it directly, the most direct form of MFIF's "complementary selection" knowledge. Where A
    and B are (nearly) equal the choice is unidentifiable and costs nothing in the image, so each pixel is
    weighted by min(1, blur(|A − B|) / ``tau``): flat and unblurred regions carry no decision loss.
    """

    def __init__(self, tau: float = 0.02, sigma: float = 2.0, eps: float = 1e-4) -> None:
        super().__init__()
        if tau <= 0 or sigma <= 0:
            raise ValueError(f"tau and sigma must be positive, got {tau} and {sigma}")
        self.tau = float(tau)
        self.sigma = float(sigma)
        self.eps = float(eps)

    def informative(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """N×1×H×W in [0, 1]: how much the choice between a and b matters at each pixel."""
        size = 2 * int(round(3 * self.sigma)) + 1
        diff = kornia.filters.gaussian_blur2d((a - b).abs(), (size, size), (self.sigma, self.sigma))
        return (diff / self.tau).clamp(max=1.0)

    def forward(
        self, weights: torch.Tensor, mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        """weights: N×L×H×W weights of A in (0, 1); mask: N×1×H×W, 1 where A is in focus; a, b: N×1×H×W."""
        check_same_shape(mask=mask, a=a, b=b)
        if weights.ndim != 4 or weights.shape[0] != mask.shape[0] or weights.shape[-2:] != mask.shape[-2:]:
            raise ValueError(
                f"weights must be N×L×H×W over the mask's N×1×H×W, got {tuple(weights.shape)} and "
                f"{tuple(mask.shape)}"
            )
        pixel_weight = self.informative(a, b).detach()
        bce = F.binary_cross_entropy(
            weights.clamp(self.eps, 1 - self.eps), mask.expand_as(weights), reduction="none"
        )
        denominator = pixel_weight.sum().clamp_min(1.0) * weights.shape[1]
        return (bce * pixel_weight).sum() / denominator
