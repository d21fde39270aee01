"""Saving and building STFuse networks; the home of the checkpoint API.

:func:`save_network` writes ``.safetensors`` with the network config and provenance in the metadata;
:func:`load_network`/:func:`load_network_with_metadata` build the network stored in any file that
:func:`read_network_state` reads (safe loading lives in :mod:`stfuse.models.checkpoint_loading`, the reader
registry for training checkpoints in :mod:`stfuse.models.checkpoint_readers`; both are re-exported here). A
bare state dict needs ``config=`` or is matched against the known presets.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from stfuse import __version__ as _STFUSE_VERSION
from stfuse.models.checkpoint_loading import (
    FORMAT_VERSION,
    check_finite_weights,
    read_network_state,
    safe_torch_load,
)
from stfuse.models.checkpoint_readers import (
    READER_ENTRY_POINT_GROUP,
    CheckpointError,
    CheckpointReader,
    NetworkState,
    checkpoint_readers,
    register_checkpoint_reader,
)

if TYPE_CHECKING:
    from stfuse.models.net import STFuseNet

__all__ = [
    "FORMAT_VERSION",
    "READER_ENTRY_POINT_GROUP",
    "CheckpointError",
    "CheckpointReader",
    "NetworkState",
    "check_finite_weights",
    "network_config_differences",
    "checkpoint_readers",
    "load_network",
    "load_network_with_metadata",
    "read_network_state",
    "register_checkpoint_reader",
    "safe_torch_load",
    "save_network",
]

_FORMAT_NAME = "stfuse-network"
_RESERVED_KEYS = ("format", "format_version", "stfuse_version", "torch_version", "config")
_MAX_LISTED = 5


# --------------------------------------------------------------------------------------------- saving
def _unwrap(net: nn.Module) -> nn.Module:
    """``torch.compile`` and DDP wrap the network; the weights and config belong to the inner module."""
    for attribute in ("_orig_mod", "module"):
        inner = getattr(net, attribute, None)
        if isinstance(inner, nn.Module):
            return _unwrap(inner)
    return net


def save_network(
    net: nn.Module, path: str | os.PathLike[str], extra_metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``net`` to ``path`` as ``.safetensors`` with its config and provenance in the metadata.

    The file is written to a temporary name beside ``path`` and renamed, so a crash never leaves a
    half-written checkpoint under the real name. ``extra_metadata`` values must be JSON-serialisable; they
    come back unchanged from :func:`load_network_with_metadata`.
    """
    from safetensors.torch import save as safetensors_dumps

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: save_network writes .safetensors files; use that suffix")
    inner = _unwrap(net)
    config = getattr(inner, "config", None)
    if not isinstance(config, Mapping):
        raise CheckpointError(
            f"{path}: {type(inner).__name__} has no `config` dict; only networks that can be rebuilt from "
            "their config (STFuseNet) can be saved"
        )
    metadata = {
        "format": _FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "stfuse_version": _STFUSE_VERSION,
        "torch_version": torch.__version__.split("+")[0],
        "config": _to_json(dict(config), path, "network config"),
    }
    for key, value in (extra_metadata or {}).items():
        if key in _RESERVED_KEYS:
            raise CheckpointError(f"{path}: extra metadata key {key!r} is reserved; choose another name")
        metadata[str(key)] = _to_json(value, path, f"extra metadata {key!r}")
    # Cloning breaks storage sharing (shared encoders), which safetensors refuses to serialise.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in inner.state_dict().items()}
    payload = safetensors_dumps(tensors, metadata=metadata)
    _atomic_write_bytes(path, payload)
    return path


def _to_json(value: Any, path: Path, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {what} is not JSON-serialisable: {error}") from error


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp creates 0600; a checkpoint is meant to be shared
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------- building
def load_network_with_metadata(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    expected_config: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> tuple[STFuseNet, dict[str, Any], dict[str, Any]]:
    """Build the network stored in ``path`` and return ``(net, config, metadata)``; ``net`` is in eval mode.

    ``config`` supplies the network kwargs for a bare state dict (it overrides nothing when the file has
    its own config, but must then agree with it). ``expected_config`` is what the caller needs: a
    checkpoint of another architecture or preset is refused with the differing keys listed.
    """
    from stfuse.models.net import STFuseNet

    path = Path(path)
    state, stored_config, metadata = read_network_state(path, map_location)
    if stored_config is not None and config is not None:
        _check_configs(path, stored_config, config, what="given config")
    net_config = stored_config if stored_config is not None else config
    if net_config is None:
        net_config = _infer_config(path, state)
    net = _build(path, STFuseNet, net_config)
    full_config = dict(net.config)
    if expected_config is not None:
        _check_configs(path, full_config, expected_config, what="expected")
    _load_weights(path, net, state)
    net.to(map_location)
    net.eval()
    return net, full_config, metadata


def load_network(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    expected_config: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> STFuseNet:
    """The network stored in ``path`` (see :func:`load_network_with_metadata`)."""
    return load_network_with_metadata(path, map_location, expected_config, config)[0]


def _build(path: Path, cls: type[STFuseNet], config: Mapping[str, Any]) -> STFuseNet:
    try:
        return cls(**cls.saved_config(dict(config)))
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"{path}: its network config cannot be built by this STFuse version ({error}); config: "
            f"{json.dumps(dict(config), sort_keys=True, default=str)}"
        ) from error


def _normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults by building the network, so {'preset': 'base'} compares equal to its full config."""
    from stfuse.models.net import STFuseNet

    try:
        return dict(STFuseNet(**STFuseNet.saved_config(dict(config))).config)
    except Exception:
        return dict(config)


def network_config_differences(
    have: Mapping[str, Any], want: Mapping[str, Any], what: str = "expected"
) -> list[str]:
    """``"key: checkpoint has X, <what> Y"`` for every key where two network configs differ once each is
    completed with its preset's defaults (an empty list: the same architecture)."""
    have_full = _normalised(have)
    want_full = _normalised(want)
    differences = []
    missing = object()
    for key in sorted(set(have_full) | set(want_full), key=lambda k: (k != "preset", k)):
        stored, wanted = have_full.get(key, missing), want_full.get(key, missing)
        if _json_equal(stored, wanted):
            continue
        stored_text = "(absent)" if stored is missing else repr(stored)
        wanted_text = "(absent)" if wanted is missing else repr(wanted)
        differences.append(f"{key}: checkpoint has {stored_text}, {what} {wanted_text}")
    return differences


def _check_configs(path: Path, stored: Mapping[str, Any], wanted: Mapping[str, Any], what: str) -> None:
    differences = network_config_differences(stored, wanted, what)
    if differences:
        raise CheckpointError(
            f"{path}: network architecture does not match the {what} config: " + "; ".join(differences)
        )


def _json_equal(a: Any, b: Any) -> bool:
    """Configs round-trip through JSON (tuples become lists), so compare them in that form."""
    try:
        return json.loads(json.dumps(a, sort_keys=True)) == json.loads(json.dumps(b, sort_keys=True))
    except (TypeError, ValueError):
        return a == b


def _infer_config(path: Path, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A bare state dict carries no config: accept the one preset whose keys and shapes match exactly."""
    from stfuse.models import net as net_module

    presets = getattr(net_module, "PRESETS", None)
    names = list(presets) if isinstance(presets, Mapping) else []
    matches = []
    for name in names:
        try:
            candidate = net_module.STFuseNet(preset=name)
        except Exception:
            continue
        if not _state_mismatch(candidate, state):
            matches.append(dict(candidate.config))
    if len(matches) == 1:
        return matches[0]
    hint = f" (known presets: {', '.join(names)}; none matched its weights)" if names else ""
    raise CheckpointError(
        f"{path}: a bare state dict holds no network config{hint}; pass config=... with the network kwargs "
        "or save the network with stfuse.models.checkpoint.save_network"
    )


def _state_mismatch(net: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    expected = net.state_dict()
    problems: list[str] = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches (checkpoint vs network)", shapes),
    ):
        if items:
            listed = ", ".join(items[:_MAX_LISTED]) + (", ..." if len(items) > _MAX_LISTED else "")
            problems.append(f"{len(items)} {label}: {listed}")
    return problems


def _load_weights(path: Path, net: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    problems = _state_mismatch(net, state)
    if problems:
        raise CheckpointError(
            f"{path}: weights do not fit the network built from its config; " + "; ".join(problems)
        )
    net.load_state_dict(dict(state), strict=True)
