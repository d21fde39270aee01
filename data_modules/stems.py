"""Image files of a folder and their pairing by file stem (``ir/01.png`` ↔ ``vi/01.jpg``).

The one place for the rule that files pair by stem; the data sets, ``stfuse fuse``, ``stfuse evaluate``
and docking use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_modules.formats import IMAGE_EXTENSIONS

PathLike = str | os.PathLike


def is_image_file(path: PathLike) -> bool:
    """True for a visible (non-hidden) file with one of the supported image extensions."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (and its subfolders when ``recursive``), sorted by path.

    Other files (text, labels, ``Thumbs.db``, hidden files) are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder '{folder}' does not exist or is not a folder")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if is_image_file(p) and p.is_file())


@dataclass(frozen=True)
class StemIndex:
    """The images of one folder by file stem: ``files`` for stems with one image, ``duplicates`` for stems
    with several (``01.png`` and ``01.jpg``), whose pairing would be ambiguous. Lists are in path order."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    duplicates: dict[str, list[Path]] = field(default_factory=dict)

    def first(self) -> dict[str, Path]:
        """Every stem, ambiguous ones resolved to their first file in path order."""
        return {**{stem: paths[0] for stem, paths in self.duplicates.items()}, **self.files}

    def __len__(self) -> int:
        return len(self.files) + len(self.duplicates)


def index_by_stem(folder: PathLike) -> StemIndex:
    """Index the images in ``folder`` by stem (see :class:`StemIndex`); raises FileNotFoundError without it."""
    groups: dict[str, list[Path]] = {}
    for path in list_images(folder):
        groups.setdefault(path.stem, []).append(path)
    return StemIndex(
        folder=Path(folder),
        files={stem: paths[0] for stem, paths in groups.items() if len(paths) == 1},
        duplicates={stem: paths for stem, paths in groups.items() if len(paths) > 1},
    )


@dataclass(frozen=True)
class StemPairing:
    """Stems found on both sides (``common``), and on one side only, each list sorted."""

    common: list[str]
    only_first: list[str]
    only_second: list[str]

    @property
    def complete(self) -> bool:
        return not (self.only_first or self.only_second)


def pair_by_stem(
    first: Mapping[str, Any], second: Mapping[str, Any], key: Callable[[str], Any] | None = None
) -> StemPairing:
    """Match two stem indexes (``{stem: file}``); ``key`` orders the stems (plain string order by default)."""
    return StemPairing(
        common=sorted(set(first) & set(second), key=key),
        only_first=sorted(set(first) - set(second), key=key),
        only_second=sorted(set(second) - set(first), key=key),
    )


__all__ = ["StemIndex", "StemPairing", "index_by_stem", "is_image_file", "list_images", "pair_by_stem"]
