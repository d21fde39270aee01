"""The STFuseNet preset registry and option names: plain data, no torch, so that command-line help can list
them without loading torch (``stfuse.inference.options.network_presets`` reads this file with ``ast``)."""

from __future__ import annotations

from typing import Any

OUTPUT_MODES = ("sigmoid", "clamp")
#: how the decoder forms the fused image: ``paint`` the pixels, or ``select`` (weight maps for a pyramid blend)
HEAD_MODES = ("paint", "select")
#: ``select`` weight maps: one per pyramid level, or one shared by every level
WEIGHT_MAPS = ("level", "shared")
#: ``select`` detail levels: ``convex`` (W·L(A) + (1 − W)·L(B)) or ``independent`` (W·L(A) + V·L(B), V its own map)
DETAIL_MODES = ("convex", "independent")
#: the select head's base (coarsest) level: the predicted weight map, the brighter source, the brighter source
#: shifted by the predicted weight, or the source farther from its own image mean (stfuse.models.blend)
BASE_RULES = ("learned", "max", "prior", "salient")

PRESETS: dict[str, dict[str, Any]] = {
    # The reference CPU model: encoder, CEM and decoder at 1/2 resolution with a 16-channel full-resolution
    # head that predicts the weight maps of a 4-level Laplacian-pyramid blend of the sources (the select head).
    # docs/results.md ("what moved the metrics") shows why.
    "compact": {
        "channels": 24,
        "num_blocks": 2,
        "cem_depths": [2],
        "heads": 2,
        "downsample": 2,
        "head_channels": 16,
        "block": "residual",
        "average_prior": False,
        "head": "select",
    },
    # The fastest model: everything but the output head at 1/4 resolution.
    "small": {
        "channels": 24,
        "num_blocks": 2,
        "cem_depths": [2],
        "heads": 2,
        "downsample": 4,
        "head_channels": 8,
        "block": "residual",
        "average_prior": True,
        "head": "select",
    },
    "base": {
        "channels": 48,
        "num_blocks": 4,
        "cem_depths": [2, 4],
        "heads": 4,
        "downsample": 2,
        "head_channels": 16,
        "block": "residual",
        "average_prior": True,
        "head": "select",
    },
    # About 16 thousand parameters: seconds per step on one CPU core, for tests, notebooks and smoke runs.
    "tiny": {
        "channels": 8,
        "num_blocks": 1,
        "cem_depths": [1],
        "heads": 2,
        "downsample": 4,
        "head_channels": 8,
        "block": "residual",
        "average_prior": True,
        "head": "select",
    },
}

#: the preset a stage builds when its config names none: the packaged model's
DEFAULT_PRESET = "compact"

__all__ = [
    "BASE_RULES",
    "DEFAULT_PRESET",
    "DETAIL_MODES",
    "HEAD_MODES",
    "OUTPUT_MODES",
    "PRESETS",
    "WEIGHT_MAPS",
]
