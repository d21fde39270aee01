"""Kornia-based fusion losses (plain nn.Modules, no Lightning)."""

from stfuse.losses.functional import (
    gradient_magnitude,
    instance_norm,
    local_contrast_norm,
    match_moments,
    sobel_gradients,
    ssim_distance,
    warm_target_mask,
)
from stfuse.losses.fusion import DecisionLoss, IVIFFusionLoss, MFIFLoss, SSIMLoss
from stfuse.losses.guidance import GUIDANCE_MODES, GuidanceLoss, GuidanceMode
from stfuse.losses.transfer import TransferObjective

__all__ = [
    "DecisionLoss",
    "GUIDANCE_MODES",
    "GuidanceLoss",
    "GuidanceMode",
    "IVIFFusionLoss",
    "MFIFLoss",
    "SSIMLoss",
    "TransferObjective",
    "gradient_magnitude",
    "instance_norm",
    "local_contrast_norm",
    "match_moments",
    "sobel_gradients",
    "ssim_distance",
    "warm_target_mask",
]
