"""Inference: the ``Fuser`` Python API, tiled fusion of large images, ``stfuse fuse`` and ``stfuse export``."""

from stfuse.inference.fuser import Fuser, NoDefaultWeightsError
from stfuse.inference.tiling import fuse_tiled

__all__ = ["Fuser", "NoDefaultWeightsError", "fuse_tiled"]
