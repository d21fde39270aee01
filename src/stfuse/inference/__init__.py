"""Inference: the ``Fuser`` Python API, tiled fusion of large images, ``stfuse fuse`` and ``stfuse export``.

Names are imported lazily so that ``stfuse fuse`` can set OpenMP's environment before torch loads.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Fuser": "stfuse.inference.fuser",
    "NoDefaultWeightsError": "stfuse.inference.fuser",
    "fuse_tiled": "stfuse.inference.tiling",
    "export_network": "stfuse.inference.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stfuse.inference' has no attribute {name!r}")
