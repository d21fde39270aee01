"""The whole transfer objective L = λ_int·L_int + λ_grad·L_grad + λ_ssim·L_ssim + λ_g·L_g + λ_src·L_src
(+ λ_smooth·L_smooth, the edge-aware smoothness of the select head's base-level weights, and λ_target·L_target,
the intensity term on the infrared targets).

All seven weights live here; the IVIF stage only runs the student, the frozen teacher and the replayed source
batch, passes their outputs in and logs the terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stfuse.losses.fusion import IVIFFusionLoss, MFIFLoss, SelectionSmoothness
from stfuse.losses.guidance import GuidanceLoss, GuidanceMode


class TransferObjective(nn.Module):
    """IVIF fusion terms, the guidance term L_g against the MFIF teacher and the replayed MFIF loss L_src.

    ``forward`` returns the unweighted terms ``int``, ``grad``, ``ssim`` (always), ``target`` (when
    λ_target > 0: the intensity term on the infrared targets, stfuse.losses.fusion.IVIFFusionLoss), ``g``
    (when the teacher's outputs are given and λ_g > 0), ``src`` (when a replay batch is given and λ_src > 0),
    ``smooth`` (when λ_smooth > 0: :class:`stfuse.losses.fusion.SelectionSmoothness` on the ``select`` feature
    maps, which needs ``select_levels``, the network's pyramid levels) and the weighted ``total``. λ_g can be
    overridden per call, for a schedule that changes it over the run.
    """

    def __init__(
        self,
        lambda_int: float = 1.0,
        lambda_grad: float = 1.0,
        lambda_ssim: float = 1.0,
        lambda_g: float = 1.0,
        lambda_src: float = 0.5,
        guidance: GuidanceMode = "feature_in",
        alpha: float = 1.0,
        beta: float = 1.0,
        guidance_layers: Sequence[str] | None = None,
        guidance_levels: Sequence[int] | None = None,
        guidance_centering: str = "none",
        guidance_detail_tau: float | None = None,
        guidance_branch: str = "both",
        lambda_smooth: float = 0.0,
        smooth_edge_scale: float = 0.05,
        select_levels: int | None = None,
        lambda_target: float = 0.0,
    ) -> None:
        super().__init__()
        if lambda_smooth < 0:
            raise ValueError(f"lambda_smooth must be ≥ 0, got {lambda_smooth}")
        if lambda_smooth > 0 and select_levels is None:
            raise ValueError(
                "lambda_smooth > 0 smooths the select head's weight maps: it needs select_levels (the network's "
                "pyramid levels), and a network with the select head"
            )
        self.fusion = IVIFFusionLoss(
            lambda_int=lambda_int,
            lambda_grad=lambda_grad,
            lambda_ssim=lambda_ssim,
            lambda_target=lambda_target,
        )
        self.guidance = GuidanceLoss(
            mode=guidance,
            layers=guidance_layers,
            levels=guidance_levels,
            centering=guidance_centering,
            detail_tau=guidance_detail_tau,
            branch=guidance_branch,
        )
        self.replay = MFIFLoss(alpha=alpha, beta=beta)
        self.lambda_g = float(lambda_g)
        self.lambda_src = float(lambda_src)
        self.lambda_smooth = float(lambda_smooth)
        self.smoothness = (
            SelectionSmoothness(select_levels, edge_scale=smooth_edge_scale) if lambda_smooth > 0 else None
        )

    def forward(
        self,
        fused: torch.Tensor,
        ir: torch.Tensor,
        vi: torch.Tensor,
        *,
        features: Sequence[torch.Tensor] = (),
        feature_groups: Sequence[str] | None = None,
        teacher_fused: torch.Tensor | None = None,
        teacher_features: Sequence[torch.Tensor] = (),
        replay_fused: torch.Tensor | None = None,
        replay_target: torch.Tensor | None = None,
        lambda_g: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """fused, ir, vi: N×1×H×W; replay_fused/replay_target: the student on a source-task batch and its truth.

        ``feature_groups`` names the group of each feature map (``STFuseNet.feature_groups()``), for
        ``guidance_layers``.
        """
        terms = self.fusion(fused, ir, vi)
        total = terms["total"]
        lambda_g = self.lambda_g if lambda_g is None else float(lambda_g)
        if teacher_fused is not None and lambda_g > 0:
            terms["g"] = self.guidance(
                fused, teacher_fused, features, teacher_features, groups=feature_groups, sources=(ir, vi)
            )
            total = total + lambda_g * terms["g"]
        if self.smoothness is not None:
            select = [f for f, g in zip(features, feature_groups or ()) if g == "select"]
            if len(select) != 1:
                raise ValueError(
                    "lambda_smooth > 0 needs the student's select weight maps among its features (one map "
                    f"of group 'select'), got groups {list(feature_groups or ())}"
                )
            terms["smooth"] = self.smoothness(select[0], ir, vi)
            total = total + self.lambda_smooth * terms["smooth"]
        if replay_fused is not None and replay_target is not None and self.lambda_src > 0:
            terms["src"] = self.replay(replay_fused, replay_target)["total"]
            total = total + self.lambda_src * terms["src"]
        terms["total"] = total
        return terms


__all__ = ["TransferObjective"]
