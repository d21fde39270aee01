"""LightningModules that compose the network, losses and metrics for each training stage.

The stage classes are imported on first access (:func:`stfuse.utils.lazy.lazy_exports`), so that
``stfuse.stages.checkpoint_format``, which inference uses to read stage checkpoints, imports no Lightning.
"""

from __future__ import annotations

from stfuse.utils.lazy import lazy_exports

_EXPORTS = {
    "FusedImageWriter": "stfuse.stages.writer",
    "FusionStageBase": "stfuse.stages.base",
    "IVIFTransferStage": "stfuse.stages.ivif",
    "MFIFStage": "stfuse.stages.mfif",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
