"""Inference: the ``Fuser`` Python API, tiled fusion of large images, ``stfuse fuse`` and ``stfuse export``.

Names are imported lazily so that ``stfuse fuse`` can set OpenMP's environment before torch loads.
"""

from __future__ import annotations

from stfuse.utils.lazy import lazy_exports

_EXPORTS = {
    "Fuser": "stfuse.inference.fuser",
    "NoDefaultWeightsError": "stfuse.inference.fuser",
    "fuse_tiled": "stfuse.inference.tiling",
    "export_network": "stfuse.inference.export",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
