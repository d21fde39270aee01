"""Guidance loss L_g: transfer the teacher's fusion *structure* while filtering out task attributes."""

from __future__ import annotations

import torch
from torch import nn

from stfuse.losses.functional import check_same_shape, gradient_magnitude, instance_norm, local_contrast_norm

GUIDANCE_MODES = ("feature_in", "output_grad", "none")


class GuidanceLoss(nn.Module):
    """Match the student S to the frozen MFIF teacher T on the same IVIF pair.

    Modes:
        ``feature_in`` (default): Σ_l mean|IN(φ_l^S) − IN(φ_l^T)| over the network's guidance features.
            Instance normalisation removes each map's mean and scale (focus-blur level, modality intensity),
            so only the spatial selection structure is matched.
        ``output_grad``: mean|N(|∇F_S|) − N(|∇F_T|)| with N a local contrast normalisation; independent of
            the teacher's global brightness and contrast, which are MFIF attributes.
        ``none``: a zero that still back-propagates (plain fine-tuning).

    The teacher side is detached: it is a fixed target, whatever the caller's grad mode.
    """

    def __init__(self, mode: str = "feature_in", eps: float = 1e-6, lcn_window: int = 7, lcn_eps: float = 1e-3) -> None:
        super().__init__()
        if mode not in GUIDANCE_MODES:
            raise ValueError(f"unknown guidance mode {mode!r}; expected one of {GUIDANCE_MODES}")
        self.mode = mode
        self.eps = float(eps)
        self.lcn_window = int(lcn_window)
        self.lcn_eps = float(lcn_eps)

    def forward(
        self,
        student_fused: torch.Tensor,
        teacher_fused: torch.Tensor,
        student_features: list[torch.Tensor] | tuple[torch.Tensor, ...],
        teacher_features: list[torch.Tensor] | tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        if self.mode == "none":
            return student_fused.new_zeros(()).requires_grad_(student_fused.requires_grad)
        if self.mode == "output_grad":
            check_same_shape(student_fused=student_fused, teacher_fused=teacher_fused)
            student = local_contrast_norm(gradient_magnitude(student_fused), self.lcn_window, eps=self.lcn_eps)
            teacher = local_contrast_norm(gradient_magnitude(teacher_fused.detach()), self.lcn_window, eps=self.lcn_eps)
            return (student - teacher).abs().mean()
        if len(student_features) != len(teacher_features) or not student_features:
            raise ValueError(
                "student and teacher must give the same non-empty number of feature maps, got "
                f"{len(student_features)} and {len(teacher_features)}"
            )
        total = student_fused.new_zeros(())
        for index, (phi_s, phi_t) in enumerate(zip(student_features, teacher_features)):
            if phi_s.shape != phi_t.shape:
                raise ValueError(
                    f"feature map {index}: student {tuple(phi_s.shape)} and teacher {tuple(phi_t.shape)} differ "
                    "(student and teacher need the same cem_depths, channels and downsample)"
                )
            total = total + (instance_norm(phi_s, self.eps) - instance_norm(phi_t.detach(), self.eps)).abs().mean()
        return total
