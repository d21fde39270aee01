"""Safe saving and loading of STFuse networks.

A checkpoint is data, never code: every ``torch.load`` here runs with ``weights_only=True`` and a file that
needs anything beyond tensors and plain containers is refused, never retried unsafely. This module reads

* ``.safetensors`` written by :func:`save_network` (the network config and provenance live in its metadata);
* a plain ``.pt``/``.pth`` state dict, or a ``{"config": ..., "state_dict": ...}`` dict (optionally with
  ``"metadata"``); a bare state dict needs ``config=`` or is matched against the known presets.

Any other dict (a training checkpoint) goes to the checkpoint readers: functions registered with
:func:`register_checkpoint_reader` or declared in the ``stfuse.checkpoint_readers`` entry-point group, which
is loaded the first time such a dict is met. The package itself declares the reader of its stages'
Lightning checkpoints there (``stfuse.stages.checkpoint_format``), so this module knows no stage.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from stfuse import __version__ as _STFUSE_VERSION

if TYPE_CHECKING:
    from stfuse.models.net import STFuseNet

__all__ = [
    "FORMAT_VERSION",
    "READER_ENTRY_POINT_GROUP",
    "CheckpointError",
    "CheckpointReader",
    "NetworkState",
    "checkpoint_readers",
    "load_network",
    "load_network_with_metadata",
    "read_network_state",
    "register_checkpoint_reader",
    "save_network",
]

#: bumped when the layout of the safetensors metadata changes incompatibly.
FORMAT_VERSION = 1
_FORMAT_NAME = "stfuse-network"
_RESERVED_KEYS = ("format", "format_version", "stfuse_version", "torch_version", "config")
#: prefixes a trained network's keys may carry in a state dict that was not written by save_network.
_STRIP_PREFIXES = ("net.", "module.", "_orig_mod.")
_MAX_LISTED = 5
#: the keys of a ``{"config": ..., "state_dict": ...}`` dict; a dict with any other key is a reader's business.
_BUNDLE_KEYS = frozenset({"config", "state_dict", "metadata"})
#: the entry-point group whose objects are checkpoint readers (see :func:`register_checkpoint_reader`).
READER_ENTRY_POINT_GROUP = "stfuse.checkpoint_readers"

#: ``(state_dict without wrapper prefixes, network config or None, metadata)``.
NetworkState = tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]
#: ``reader(path, checkpoint)`` → the network's state, or None when ``checkpoint`` is not the reader's format.
CheckpointReader = Callable[[Path, Mapping[str, Any]], NetworkState | None]


class CheckpointError(ValueError):
    """A checkpoint could not be used; the message names the file and what is wrong with it."""


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


# -------------------------------------------------------------------------------------------- reading
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
    kind = _sniff(path)
    if kind == "safetensors":
        return _read_safetensors(path, map_location)
    return _interpret_torch_object(path, _safe_torch_load(path, map_location))


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


def _safe_torch_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load`` restricted to tensors and plain containers; every failure becomes a CheckpointError."""
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


# ------------------------------------------------------------------------------------ checkpoint readers
_readers: dict[str, CheckpointReader] = {}
_entry_points_loaded = False


def register_checkpoint_reader(name: str, reader: CheckpointReader) -> None:
    """Read another checkpoint layout: ``reader(path, checkpoint)`` gets the file's path and the dict that
    ``torch.load(..., weights_only=True)`` returned, and gives ``(state_dict, config or None, metadata)`` with
    the network's keys unprefixed, or None when the dict is not its format (the next reader is then tried).
    It raises :class:`CheckpointError` for a file of its format that is unusable.

    A package declares its readers in the ``stfuse.checkpoint_readers`` entry-point group instead, so that
    they are imported only when needed; a reader registered here under the same name takes precedence.
    """
    _readers[name] = reader


def checkpoint_readers() -> dict[str, CheckpointReader]:
    """The readers by name, loading the entry-point group the first time (a reader that fails to import is
    skipped with a warning, so one broken plugin does not stop the others)."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for entry_point in entry_points(group=READER_ENTRY_POINT_GROUP):
            if entry_point.name in _readers:
                continue
            try:
                _readers[entry_point.name] = entry_point.load()
            except Exception as error:
                warnings.warn(
                    f"checkpoint reader {entry_point.name!r} ({entry_point.value}) could not be loaded: {error}",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return dict(_readers)


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


def _check_configs(path: Path, stored: Mapping[str, Any], wanted: Mapping[str, Any], what: str) -> None:
    stored_full = _normalised(stored)
    wanted_full = _normalised(wanted)
    differences = []
    missing = object()
    for key in sorted(set(stored_full) | set(wanted_full), key=lambda k: (k != "preset", k)):
        have, want = stored_full.get(key, missing), wanted_full.get(key, missing)
        if _json_equal(have, want):
            continue
        have_text = "(absent)" if have is missing else repr(have)
        want_text = "(absent)" if want is missing else repr(want)
        differences.append(f"{key}: checkpoint has {have_text}, {what} {want_text}")
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
