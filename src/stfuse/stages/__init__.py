"""LightningModules that compose the network, losses and metrics for each training stage."""

from stfuse.stages.base import FusionStageBase
from stfuse.stages.ivif import IVIFTransferStage
from stfuse.stages.mfif import MFIFStage
from stfuse.stages.writer import FusedImageWriter

__all__ = ["FusedImageWriter", "FusionStageBase", "IVIFTransferStage", "MFIFStage"]
