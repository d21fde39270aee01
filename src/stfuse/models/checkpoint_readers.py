"""The checkpoint reader registry, and the error and state types that every checkpoint module speaks.

A reader turns a training checkpoint's dict (what ``torch.load(..., weights_only=True)`` returned) into the
network's state. Readers are registered at run time with :func:`register_checkpoint_reader` or declared in the
``stfuse.checkpoint_readers`` entry-point group (the package declares its stages' reader there,
``stfuse.stages.checkpoint_format``), so that :mod:`stfuse.models.checkpoint` knows no stage.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "READER_ENTRY_POINT_GROUP",
    "CheckpointError",
    "CheckpointReader",
    "NetworkState",
    "checkpoint_readers",
    "register_checkpoint_reader",
]

#: the entry-point group whose objects are checkpoint readers (see :func:`register_checkpoint_reader`).
READER_ENTRY_POINT_GROUP = "stfuse.checkpoint_readers"

#: ``(state_dict without wrapper prefixes, network config or None, metadata)``.
NetworkState = tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]
#: ``reader(path, checkpoint)`` → the network's state, or None when ``checkpoint`` is not the reader's format.
CheckpointReader = Callable[[Path, Mapping[str, Any]], NetworkState | None]


class CheckpointError(ValueError):
    """A checkpoint could not be used; the message names the file and what is wrong with it."""


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
