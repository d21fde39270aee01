"""The layout of a Lightning checkpoint of an STFuse stage, read without importing Lightning.

A stage saves the network kwargs as ``hyper_parameters["net"]`` and holds the trained network as ``self.net``,
so its weights are under ``net.`` in the checkpoint's state dict; the IVIF teacher's are under ``teacher.``
and, like the optimizer and loop states, are ignored. :func:`read_stage_checkpoint` is declared in the
``stfuse.checkpoint_readers`` entry-point group (setup.cfg), through which
:func:`stfuse.models.checkpoint.load_network` reads ``.ckpt`` files: inference loads a stage checkpoint
without Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stfuse.models.checkpoint_readers import CheckpointError, NetworkState

__all__ = ["NET_PREFIX", "read_stage_checkpoint"]

#: the state-dict prefix of the stage's trained network (``FusionStageBase.net``).
NET_PREFIX = "net."
#: the checkpoint entries kept as metadata.
_METADATA_KEYS = ("epoch", "global_step", "pytorch-lightning_version", "hparams_name")


def read_stage_checkpoint(path: Path, checkpoint: Mapping[str, Any]) -> NetworkState | None:
    """``(state_dict, config, metadata)`` of the network in a stage checkpoint, or None for any other dict."""
    if "hyper_parameters" not in checkpoint or not isinstance(checkpoint.get("state_dict"), Mapping):
        return None
    hparams = checkpoint["hyper_parameters"] or {}
    net_config = hparams.get("net") if isinstance(hparams, Mapping) else None
    config: dict[str, Any] | None = None
    if net_config is not None:
        if not isinstance(net_config, Mapping):
            raise CheckpointError(
                f"{path}: hyper_parameters['net'] should be the network kwargs dict, "
                f"found a {type(net_config).__name__}"
            )
        config = dict(net_config)
    metadata = {key: checkpoint[key] for key in _METADATA_KEYS if key in checkpoint}
    state = {
        key[len(NET_PREFIX) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(NET_PREFIX) and isinstance(value, torch.Tensor)
    }
    if not state:
        raise CheckpointError(
            f"{path}: Lightning checkpoint without network weights (no '{NET_PREFIX}' keys in its state dict)"
        )
    return state, config, metadata
