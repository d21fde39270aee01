"""LightningModules that compose the network, losses and metrics for each training stage.

The stage classes are imported on first access (PEP 562), so that ``stfuse.stages.checkpoint_format``, which
inference uses to read stage checkpoints, imports no Lightning.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stfuse.stages.base import FusionStageBase
    from stfuse.stages.ivif import IVIFTransferStage
    from stfuse.stages.mfif import MFIFStage
    from stfuse.stages.writer import FusedImageWriter

__all__ = ["FusedImageWriter", "FusionStageBase", "IVIFTransferStage", "MFIFStage"]

_MODULES = {
    "FusedImageWriter": "stfuse.stages.writer",
    "FusionStageBase": "stfuse.stages.base",
    "IVIFTransferStage": "stfuse.stages.ivif",
    "MFIFStage": "stfuse.stages.mfif",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_MODULES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
