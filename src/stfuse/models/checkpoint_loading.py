"""Safe loading of network weights: ``safetensors`` files, ``torch.load`` restricted to tensors and plain
containers, and the checks every loaded state passes (finite values).

A checkpoint is data, never code: every ``torch.load`` here runs with ``weights_only=True`` and a file that
needs anything beyond tensors and plain containers is refused, never retried unsafely. This module reads

* ``.safetensors`` written by :func:`stfuse.models.checkpoint.save_network` (config and provenance in its metadata);
* a plain ``.pt``/``.pth`` state dict, or a ``{"config": ..., "state_dict": ...}`` dict (optionally with
  ``"metadata"``);
* any other dict (a training checkpoint) through the checkpoint readers (:mod:`stfuse.models.checkpoint_readers`).
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stfuse.models.checkpoint_readers import CheckpointError, NetworkState, checkpoint_readers

__all__ = ["FORMAT_VERSION", "check_finite_weights", "read_network_state", "safe_torch_load"]

#: bumped when the layout of the safetensors metadata changes incompatibly.
FORMAT_VERSION = 1
#: prefixes a trained network's keys may carry in a state dict that was not written by save_network.
_STRIP_PREFIXES = ("net.", "module.", "_orig_mod.")
_MAX_LISTED = 5
#: the keys of a ``{"config": ..., "state_dict": ...}`` dict; a dict with any other key is a reader's business.
_BUNDLE_KEYS = frozenset({"config", "state_dict", "metadata"})


def read_network_state(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> NetworkState:
    """Read ``(state_dict, config or None, metadata)`` of the network stored in ``path``, building nothing.

    The state dict has no ``net.`` prefix. Useful to copy weights into a network that is built elsewhere.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file")
    if _sniff(path) == "safetensors":
        found = _read_safetensors(path, map_location)
    else:
        found = _interpret_torch_object(path, safe_torch_load(path, map_location))
    check_finite_weights(path, found[0])
    return found


def check_finite_weights(path: str | os.PathLike[str], state: Mapping[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or infinite values (a diverged run, a corrupted file): a network built from
    them fuses every image to a constant, which no later check would notice."""
    bad = [
        key
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.device.type != "meta"
        and not bool(torch.isfinite(value).all())
    ]
    if bad:
        listed = ", ".join(bad[:_MAX_LISTED]) + (", ..." if len(bad) > _MAX_LISTED else "")
        raise CheckpointError(
            f"{path}: {len(bad)} of {len(state)} weight tensors hold NaN or infinite values ({listed}); "
            "the weights are unusable (a diverged run or a corrupted file), pick an earlier checkpoint"
        )


def _sniff(path: Path) -> str:
    """``safetensors`` or ``torch`` from the file's first bytes, so a misnamed file still loads."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        header_size = int.from_bytes(head[:8], "little")
        if 0 < header_size <= path.stat().st_size - 8:
            return "safetensors"
    return "torch"


def _read_safetensors(path: Path, map_location: str | torch.device) -> NetworkState:
    from safetensors import safe_open

    device = str(map_location) if not isinstance(map_location, str) else map_location
    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            raw_metadata = dict(handle.metadata() or {})
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own Rust-side error types
        raise CheckpointError(
            f"{path}: not a readable safetensors file (corrupt or truncated?): {error}"
        ) from error
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    for key, text in raw_metadata.items():
        if key == "format":
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # metadata written by another tool: keep the raw string
        if key == "config":
            if not isinstance(value, dict):
                raise CheckpointError(f"{path}: the 'config' metadata entry is not a JSON object")
            config = value
        else:
            metadata[key] = value
    if "format_version" in metadata:
        version = metadata["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: written in checkpoint format version {version!r}; this STFuse reads up to "
                f"{FORMAT_VERSION}. Upgrade stfuse."
            )
    return _strip_prefix(state), config, metadata


def safe_torch_load(path: str | os.PathLike[str], map_location: str | torch.device) -> Any:
    """``torch.load`` restricted to tensors and plain containers; every failure becomes a CheckpointError."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        offenders = _unsafe_globals(path, message) if "Weights only load failed" in message else []
        if offenders:
            raise CheckpointError(
                f"{path}: refused to load: the file contains pickled Python objects other than tensors and "
                f"plain containers ({', '.join(offenders)}). Unpickling them could run arbitrary code, so "
                "STFuse never does. Save only the network's weights (e.g. with "
                "stfuse.models.checkpoint.save_network)."
            ) from None
        reason = re.search(r"(Unsupported operand \d+|invalid load key[^\n]*)", message)
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (corrupt, wrong file or unsupported pickle): "
            f"{reason.group(1) if reason else message.splitlines()[0]}"
        ) from None
    except (
        Exception
    ) as error:  # the weights-only unpickler raises many types on corrupt data; all mean unreadable
        first_line = str(error).splitlines()[0] if str(error) else ""
        summary = first_line if isinstance(error, RuntimeError) else f"{type(error).__name__} {first_line}"
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (corrupt, truncated or wrong file?): {summary.strip()}"
        ) from None


def _unsafe_globals(path: Path, message: str) -> list[str]:
    """Name the offending globals, to tell the user what the file holds; this never executes the pickle."""
    found = re.findall(r"GLOBAL ([\w.]+)", message)
    try:
        found += torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # only zip checkpoints can be scanned; the message above is then all we have
        pass
    return list(dict.fromkeys(found))


def _interpret_torch_object(path: Path, obj: Any) -> NetworkState:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of weights, found a {type(obj).__name__}")
    if _is_state_dict(obj):
        return _strip_prefix(dict(obj)), None, {}
    if isinstance(obj.get("state_dict"), Mapping) and set(obj) <= _BUNDLE_KEYS:
        return _read_bundle(path, obj)
    readers = checkpoint_readers()
    for reader in readers.values():
        found = reader(path, obj)
        if found is not None:
            return found
    keys = ", ".join(sorted(map(str, obj))[:_MAX_LISTED])
    if not isinstance(obj.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: no state dict found (top-level keys: {keys})")
    if readers:
        # No registered format claims it: a plain bundle with extra bookkeeping keys (epoch, optimizer, ...),
        # read as before the registry existed; the extra keys are ignored.
        return _read_bundle(path, obj)
    raise CheckpointError(
        f"{path}: no checkpoint reader recognised this file; is stfuse installed (pip install -e .)? "
        f"(top-level keys: {keys}; readers: {', '.join(readers) or 'none'})"
    )


def _read_bundle(path: Path, obj: Mapping[str, Any]) -> NetworkState:
    """``{"config": ..., "state_dict": ..., "metadata": ...}``, config and metadata optional."""
    state = {k: v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
    config: dict[str, Any] | None = None
    if obj.get("config") is not None:
        if not isinstance(obj["config"], Mapping):
            raise CheckpointError(f"{path}: 'config' should be a dict of network kwargs")
        config = dict(obj["config"])
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items()}
    return _strip_prefix(state), config, metadata


def _is_state_dict(obj: Mapping[Any, Any]) -> bool:
    return len(obj) > 0 and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the wrapper prefixes every key shares; of a module that holds the network as ``net`` beside other
    submodules (a training wrapper's whole state dict), keep the ``net.`` keys."""
    if any(k.startswith("net.") for k in state) and not all(k.startswith("net.") for k in state):
        state = {k: v for k, v in state.items() if k.startswith("net.")}
    stripped = True
    while stripped and state:
        stripped = False
        for prefix in _STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped = True
    return state
