"""On-disk layouts of the public IVIF data sets, detected from a root folder or named explicitly.

:data:`LAYOUTS` is the one registry: a data set's title, its folder patterns and how it stores its files
(which the tests' fake copies in :mod:`data_modules.fake_data` follow). ``LAYOUT_NAMES``, ``stfuse evaluate
--dataset``, ``stfuse fuse --dataset`` and ``layout=`` of the data modules derive from it.

Folder names are matched exactly (``IR/`` is not ``ir/``), from the folder listing rather than with
``Path.exists``, so detection gives the same answer on case-insensitive file systems. Standard library only
(the folder reader loads on use), so that ``--help`` texts can list the layouts without torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_modules.errors import DataFolderNotFoundError, DatasetError

if TYPE_CHECKING:
    from data_modules.paired import PairedImageFolder

PathLike = str | os.PathLike

# Folders holding per-pair label maps or masks, mapped to the item key they are loaded under.
LABEL_FOLDERS: dict[str, str] = {
    "Segmentation_labels": "label",
    "Segmentation_label": "label",
    "Label": "label",
    "label": "label",
    "labels": "label",
    "mask": "mask",
    "masks": "mask",
    "Mask": "mask",
}


class UnknownLayoutError(DatasetError):
    """The root matches no accepted layout; the message lists what was found and what is accepted."""


@dataclass(frozen=True)
class Layout:
    """Where one data set's pairs are: ``ir_dir``/``vi_dir`` hold files paired by stem."""

    name: str
    root: Path
    ir_dir: Path
    vi_dir: Path
    split: str | None = None
    extra_dirs: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class FolderPattern:
    """One way a data set stores its pairs.

    ``kind`` is "flat" (root/IR + root/VI), "split_first" (root/<split>/IR + root/<split>/VI) or
    "modality_first" (root/IR/<split> + root/VI/<split>). ``distinctive`` patterns identify their data
    set on their own; the shared ``ir/``+``vi/`` does not.
    """

    kind: str
    ir: str
    vi: str
    distinctive: bool

    def describe(self) -> str:
        if self.kind == "flat":
            return f"{self.ir}/ + {self.vi}/"
        if self.kind == "split_first":
            return f"{{train,test}}/{self.ir}/ + {{train,test}}/{self.vi}/"
        return f"{self.ir}/{{train,test}}/ + {self.vi}/{{train,test}}/"


def _numbered(index: int) -> str:
    return f"{index:05d}"


@dataclass(frozen=True)
class FileStyle:
    """How a data set stores its files: extensions, grey stored as RGB, file names and its label folder
    (beside ``ir``/``vi`` in a split). The tests' fake copies (:func:`data_modules.fake_data.write_fake_layout`)
    are written in this style, in the layout's first folder pattern."""

    ir_ext: str = ".png"
    vi_ext: str = ".png"
    vi_color: bool = True
    ir_as_rgb: bool = False
    stem: Callable[[int], str] = _numbered
    labels: str | None = None


@dataclass(frozen=True)
class LayoutSpec:
    """One data set: its title, its folder patterns (the first is its own) and its file style."""

    title: str
    patterns: tuple[FolderPattern, ...]
    files: FileStyle = FileStyle()


_PLAIN = FolderPattern("flat", "ir", "vi", False)

#: The data-set layouts: adding one here is all a new layout needs.
LAYOUTS: dict[str, LayoutSpec] = {
    "tno": LayoutSpec(
        "TNO", (FolderPattern("flat", "IR", "VIS", True), _PLAIN), FileStyle(vi_color=False, ir_as_rgb=True)
    ),
    "roadscene": LayoutSpec(
        "RoadScene",
        (FolderPattern("flat", "cropinfrared", "crop_LR_visible", True), _PLAIN),
        FileStyle(".jpg", ".jpg", stem=lambda index: f"FLIR_{index:05d}"),
    ),
    "msrs": LayoutSpec(
        "MSRS",
        (FolderPattern("split_first", "ir", "vi", True), _PLAIN),
        FileStyle(stem=lambda index: f"{index:05d}{'D' if index % 2 else 'N'}", labels="Segmentation_labels"),
    ),
    "m3fd": LayoutSpec("M3FD", (FolderPattern("flat", "Ir", "Vis", True), _PLAIN), FileStyle(ir_as_rgb=True)),
    "llvip": LayoutSpec(
        "LLVIP", (FolderPattern("modality_first", "infrared", "visible", True),), FileStyle(".jpg", ".jpg")
    ),
    "generic": LayoutSpec("generic", (_PLAIN, FolderPattern("split_first", "ir", "vi", False))),
}
LAYOUT_NAMES: tuple[str, ...] = tuple(LAYOUTS)


def accepted_layouts_text() -> str:
    """One line per layout and its accepted folder structures (used in error messages and docs)."""
    return "\n".join(
        f"  {name:<10} " + " or ".join(pattern.describe() for pattern in spec.patterns)
        for name, spec in LAYOUTS.items()
    )


def _subfolders(folder: Path) -> list[str]:
    try:
        return sorted(
            entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")
        )
    except FileNotFoundError:
        return []


def _splits_of(pattern: FolderPattern, root: Path, entries: list[str]) -> list[str] | None:
    """The splits present for a split pattern (None when the pattern does not match)."""
    if pattern.kind == "split_first":
        splits = [s for s in entries if {pattern.ir, pattern.vi} <= set(_subfolders(root / s))]
    else:
        if not {pattern.ir, pattern.vi} <= set(entries):
            return None
        ir_splits = set(_subfolders(root / pattern.ir))
        splits = sorted(ir_splits & set(_subfolders(root / pattern.vi)))
    return splits or None


def _label_dirs(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in _subfolders(folder):
        key = LABEL_FOLDERS.get(entry)
        if key is not None and key not in found:
            found[key] = folder / entry
    return found


def _resolve(
    name: str, pattern: FolderPattern, root: Path, split: str | None, entries: list[str]
) -> Layout | None:
    if pattern.kind == "flat":
        if not {pattern.ir, pattern.vi} <= set(entries):
            return None
        return Layout(name, root, root / pattern.ir, root / pattern.vi, None, _label_dirs(root))
    splits = _splits_of(pattern, root, entries)
    if splits is None:
        return None
    if split is None:
        if len(splits) > 1:
            raise DatasetError(
                f"'{root}' ({LAYOUTS[name].title} layout) has the splits {', '.join(splits)}; "
                "choose one with split=..."
            )
        split = splits[0]
    if split not in splits:
        raise DatasetError(
            f"'{root}' ({LAYOUTS[name].title} layout) has no split '{split}'; available: {', '.join(splits)}"
        )
    if pattern.kind == "split_first":
        base = root / split
        return Layout(name, root, base / pattern.ir, base / pattern.vi, split, _label_dirs(base))
    return Layout(name, root, root / pattern.ir / split, root / pattern.vi / split, split, {})


def _name_hint(root: Path) -> str | None:
    """A data-set name found in the root folder's own name (``…/ivif/tno`` → "tno")."""
    folder = root.name.lower().replace("-", "").replace("_", "")
    for name in LAYOUT_NAMES:
        if name != "generic" and name in folder:
            return name
    return None


def detect_layout(root: PathLike, split: str | None = None, name: str = "auto") -> Layout:
    """The layout of the data set at ``root``.

    ``name="auto"`` tries the distinctive structures first (``cropinfrared/``, ``infrared/<split>/``,
    ``Ir/``+``Vis/``, ``IR/``+``VIS/``, ``<split>/ir/``); a plain ``ir/``+``vi/`` takes its name from the
    root folder's name when that names a data set, else "generic". ``split`` selects ``train``/``test`` in
    layouts that have splits and is ignored by flat layouts; a layout with several splits needs it.
    """
    root = Path(root)
    if not root.exists():
        raise DataFolderNotFoundError(f"data-set root '{root}' does not exist")
    if not root.is_dir():
        raise DataFolderNotFoundError(f"data-set root '{root}' is not a folder")
    entries = _subfolders(root)
    if name != "auto":
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout name {name!r}; use 'auto' or one of {', '.join(LAYOUT_NAMES)}")
        for pattern in LAYOUTS[name].patterns:
            layout = _resolve(name, pattern, root, split, entries)
            if layout is not None:
                return layout
        accepted = " or ".join(pattern.describe() for pattern in LAYOUTS[name].patterns)
        raise UnknownLayoutError(
            f"'{root}' does not have the {LAYOUTS[name].title} layout (expected {accepted}); "
            f"found subfolders: {', '.join(entries) or 'none'}"
        )

    for layout_name, spec in LAYOUTS.items():
        for pattern in spec.patterns:
            if pattern.distinctive:
                layout = _resolve(layout_name, pattern, root, split, entries)
                if layout is not None:
                    return layout
    plain = _resolve("generic", LAYOUTS["generic"].patterns[0], root, split, entries)
    if plain is not None:
        hint = _name_hint(root)
        if hint is not None and any(p.kind == "flat" and p.ir == "ir" for p in LAYOUTS[hint].patterns):
            return Layout(hint, plain.root, plain.ir_dir, plain.vi_dir, None, plain.extra_dirs)
        return plain
    files = sum(1 for entry in os.scandir(root) if entry.is_file())
    raise UnknownLayoutError(
        f"cannot detect the data-set layout of '{root}': found subfolders [{', '.join(entries) or 'none'}] "
        f"and {files} file(s). Accepted layouts:\n{accepted_layouts_text()}"
    )


def open_dataset(
    root: PathLike,
    name: str = "auto",
    split: str | None = None,
    extras: bool | Sequence[str] = False,
    **kwargs: Any,
) -> PairedImageFolder:
    """A :class:`PairedImageFolder` over the layout at ``root``.

    ``extras`` adds the layout's label/mask folders as item keys ("label", "mask"): True for all found,
    or a list of keys (missing ones are an error). Other keyword arguments go to ``PairedImageFolder``.
    """
    from data_modules.paired import PairedImageFolder

    layout = detect_layout(root, split=split, name=name)
    extra_dirs: dict[str, Path] = {}
    if extras is True:
        extra_dirs = dict(layout.extra_dirs)
    elif extras:
        missing = [key for key in extras if key not in layout.extra_dirs]
        if missing:
            found = ", ".join(f"{k} ({p})" for k, p in layout.extra_dirs.items()) or "none"
            raise DatasetError(
                f"'{root}' has no {', '.join(missing)} folder; label/mask folders found: {found}"
            )
        extra_dirs = {key: layout.extra_dirs[key] for key in extras}
    if "extra_dirs" in kwargs:
        extra_dirs.update(kwargs.pop("extra_dirs") or {})
    return PairedImageFolder(layout.ir_dir, layout.vi_dir, extra_dirs=extra_dirs, **kwargs)
