"""The data-set errors: each message names the offending files or folders.

Standard library only, so that the layouts (and ``--help`` texts derived from them) load without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DatasetError(ValueError):
    """Base class of the data-set errors; every message names the offending files or folders."""


class DataFolderNotFoundError(DatasetError, FileNotFoundError):
    """A data-set root or image folder does not exist."""


class EmptyFolderError(DatasetError):
    """An image folder holds no image files."""


class UnpairedFilesError(DatasetError):
    """Some stems have no partner; ``unpaired`` maps each folder to its stems without a partner."""

    def __init__(self, message: str, unpaired: Mapping[str, Sequence[str]]) -> None:
        super().__init__(message)
        self.unpaired = {folder: list(stems) for folder, stems in unpaired.items()}


class DuplicateStemError(DatasetError):
    """Two files in one folder share a stem (e.g. ``01.png`` and ``01.jpg``), so the pairing is ambiguous."""


class SizeMismatchError(DatasetError):
    """The members of a pair differ in size and the size policy is "error"."""


class SplitError(DatasetError):
    """The training roots cannot give the requested validation hold-out (too few pairs in all or in one root)."""


__all__ = [
    "DataFolderNotFoundError",
    "DatasetError",
    "DuplicateStemError",
    "EmptyFolderError",
    "SizeMismatchError",
    "SplitError",
    "UnpairedFilesError",
]
