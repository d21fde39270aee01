"""STFuse networks: plain nn.Modules (no Lightning) and a small preset registry."""

from __future__ import annotations

import inspect
from typing import Any

from stfuse.models.cem import CEM_MODES, ChannelAttention, CrossFeatureEnhancement
from stfuse.models.net import DEFAULT_PRESET, HEAD_MODES, OUTPUT_MODES, PRESETS, STFuseNet

__all__ = [
    "CEM_MODES",
    "HEAD_MODES",
    "OUTPUT_MODES",
    "DEFAULT_PRESET",
    "PRESETS",
    "ChannelAttention",
    "CrossFeatureEnhancement",
    "STFuseNet",
    "build_network",
    "list_presets",
]


def list_presets() -> list[str]:
    """Names accepted as ``preset``."""
    return sorted(PRESETS)


def build_network(config: dict[str, Any] | None = None) -> STFuseNet:
    """Build an STFuseNet from a config dict (e.g. ``hparams["net"]`` or ``net.config``).

    Unknown keys are an error rather than silently ignored, so a typo in a YAML does not train the wrong
    architecture.
    """
    config = dict(config or {})
    if config.get("cem") is False:
        # YAML 1.1 (and jsonargparse's parsing of untyped values) reads a bare `off` as False.
        config["cem"] = "off"
    allowed = set(inspect.signature(STFuseNet.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"unknown network config keys {unknown}; allowed: {sorted(allowed)}")
    return STFuseNet(**config)
