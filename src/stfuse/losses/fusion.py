"""Fusion losses: the unsupervised IVIF objective and the supervised MFIF objective L_src."""

from __future__ import annotations

import torch
from torch import nn

from stfuse.losses.functional import check_same_shape, gradient_magnitude, sobel_gradients, ssim_distance


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
    - L_ssim = 1 − ½·(SSIM(F, A) + SSIM(F, B)).

    ``forward`` returns ``{"int", "grad", "ssim", "total"}`` (scalars; only ``total`` is weighted).
    """

    def __init__(
        self,
        lambda_int: float = 1.0,
        lambda_grad: float = 1.0,
        lambda_ssim: float = 1.0,
        window_size: int = 11,
    ) -> None:
        super().__init__()
        self.lambda_int = float(lambda_int)
        self.lambda_grad = float(lambda_grad)
        self.lambda_ssim = float(lambda_ssim)
        self.ssim = SSIMLoss(window_size=window_size)

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """fused, a, b: N×1×H×W in [0, 1] (a = infrared, b = visible luminance)."""
        check_same_shape(fused=fused, a=a, b=b)
        loss_int = (fused - torch.maximum(a, b)).abs().mean()
        target_grad = torch.maximum(gradient_magnitude(a), gradient_magnitude(b))
        loss_grad = (gradient_magnitude(fused) - target_grad).abs().mean()
        loss_ssim = 0.5 * (self.ssim(fused, a) + self.ssim(fused, b))
        total = self.lambda_int * loss_int + self.lambda_grad * loss_grad + self.lambda_ssim * loss_ssim
        return {"int": loss_int, "grad": loss_grad, "ssim": loss_ssim, "total": total}


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
