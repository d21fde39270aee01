"""Multi-focus data sets: synthetic (A, B, G, M) samples from images or textures, real pairs without ground
truth, and the search for all-in-focus training images."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data_modules.errors import (
    DataFolderNotFoundError,
    EmptyFolderError,
    SizeMismatchError,
    UnpairedFilesError,
)
from data_modules.focus import MultiFocusSynthesizer
from data_modules.io import read_image_array, read_luma
from data_modules.paired import luma, unique_stem_index
from data_modules.stems import list_images
from data_modules.synthetic_textures import make_texture_array

PathLike = str | os.PathLike


def _to_sample_item(sample: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    item: dict[str, Any] = {key: torch.from_numpy(value)[None] for key, value in sample.items()}
    item["name"] = name
    return item


def read_y(path: PathLike) -> np.ndarray:
    """The Y channel (BT.601, as kornia) of an image file, H×W float32 in [0, 1]."""
    image = read_image_array(path)
    return (luma(image) if image.shape[2] == 3 else image)[:, :, 0]


class SyntheticMultiFocusDataset(Dataset):
    """Synthetic multi-focus samples {"a", "b", "gt", "mask": 1×H×W, "name"} from images or textures.

    ``image_paths`` None uses the embedded texture generator. With ``deterministic`` (validation) sample
    ``i`` depends only on (seed, i), so every process builds identical tensors; otherwise (training) the
    dataset draws from its own generator, which :class:`~data_modules.transforms.WorkerSeeder` reseeds
    per worker. ``cache_images`` keeps decoded Y images in memory (per worker), stored as decoded (uint8 for 8-bit files),
    trading RAM for decoding time.
    """

    def __init__(
        self,
        synthesizer: MultiFocusSynthesizer,
        length: int,
        image_paths: Sequence[PathLike] | None = None,
        seed: int = 0,
        deterministic: bool = False,
        crop_size: int | None = None,
        cache_images: bool = False,
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        if image_paths is not None and not image_paths:
            raise ValueError("image_paths is empty; pass None for the embedded textures")
        self.synthesizer = synthesizer
        self.length = length
        self.image_paths = [Path(p) for p in image_paths] if image_paths is not None else None
        self.seed = seed
        self.deterministic = deterministic
        self.crop_size = crop_size or synthesizer.crop_size
        self.cache_images = cache_images
        self._cache: dict[int, np.ndarray] = {}
        self.rng = np.random.default_rng([seed, 0])

    def __len__(self) -> int:
        return self.length

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _source(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        if self.image_paths is None:
            texture_seed = int(rng.integers(2**31))
            window = self.synthesizer.window_size(self.crop_size)
            return make_texture_array(texture_seed, window, window, channels=1)[
                :, :, 0
            ], f"texture{texture_seed}"
        if self.deterministic:
            image_index = index % len(self.image_paths)
        else:
            image_index = int(rng.integers(len(self.image_paths)))
        path = self.image_paths[image_index]
        image = self._cache.get(image_index)
        if image is None:
            image = read_luma(path)
            if self.cache_images:
                self._cache[image_index] = image
        return image, path.stem

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, 1, index]) if self.deterministic else self.rng
        image, stem = self._source(index, rng)
        sample = self.synthesizer.sample(image, rng, self.crop_size)
        return _to_sample_item(sample, f"{stem}#{index}")


# --------------------------------------------------------------------------------------------------
# Real multi-focus pairs (no ground truth)

_PAIR_FOLDERS = (("a", "b"), ("A", "B"), ("source_1", "source_2"))
_GT_FOLDERS = ("gt", "GT", "full_clear", "ground_truth")
_SUFFIX_PATTERN = re.compile(r"^(?P<name>.+?)[-_](?P<side>[AaBb])$")


class MultiFocusPairFolder(Dataset):
    """Real multi-focus pairs for no-reference validation: items {"a", "b": 1×H×W (Y), "name"}.

    Accepted layouts: ``root/a/`` + ``root/b/`` with files paired by stem (also ``A/``+``B/`` and
    MFI-WHU's ``source_1/``+``source_2/``), or one folder of ``<name>-A.<ext>`` / ``<name>-B.<ext>`` files
    (``_A``/``_B`` too). A ground-truth folder (``gt/``, ``full_clear/``) beside a/ and b/, where present,
    adds "gt".
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DataFolderNotFoundError(f"multi-focus root '{self.root}' does not exist")
        if not self.root.is_dir():
            raise DataFolderNotFoundError(f"multi-focus root '{self.root}' is not a folder")
        self.pairs: list[tuple[str, Path, Path, Path | None]] = self._find_pairs()
        for name, a_path, b_path, gt_path in self.pairs:
            self._check_size(name, [p for p in (a_path, b_path, gt_path) if p is not None])

    def _find_pairs(self) -> list[tuple[str, Path, Path, Path | None]]:
        subfolders = {p.name for p in self.root.iterdir() if p.is_dir()}
        for a_name, b_name in _PAIR_FOLDERS:
            if {a_name, b_name} <= subfolders:
                a_index = unique_stem_index(self.root / a_name, "near-focus (A)")
                b_index = unique_stem_index(self.root / b_name, "far-focus (B)")
                gt_folder = next((self.root / g for g in _GT_FOLDERS if g in subfolders), None)
                gt_index = unique_stem_index(gt_folder, "ground-truth") if gt_folder is not None else {}
                return self._match(a_index, b_index, self.root / a_name, self.root / b_name, gt_index)
        a_index: dict[str, Path] = {}
        b_index: dict[str, Path] = {}
        image_files = list_images(self.root)
        for path in image_files:
            match = _SUFFIX_PATTERN.match(path.stem)
            if match is not None:
                (a_index if match["side"] in "Aa" else b_index)[match["name"]] = path
        if not a_index and not b_index:
            raise EmptyFolderError(
                f"'{self.root}' holds no multi-focus pairs: expected subfolders a/ + b/ (or A/ + B/, "
                f"source_1/ + source_2/) or files named <name>-A.<ext> and <name>-B.<ext>; "
                f"found {len(image_files)} image file(s) and subfolders [{', '.join(sorted(subfolders)) or 'none'}]"
            )
        return self._match(a_index, b_index, self.root, self.root, {})

    def _match(
        self,
        a_index: dict[str, Path],
        b_index: dict[str, Path],
        a_dir: Path,
        b_dir: Path,
        gt_index: dict[str, Path],
    ) -> list[tuple[str, Path, Path, Path | None]]:
        a_only, b_only = sorted(set(a_index) - set(b_index)), sorted(set(b_index) - set(a_index))
        if a_only or b_only:
            lines = [f"unpaired multi-focus images in '{self.root}':"]
            if a_only:
                lines.append(f"  A in '{a_dir}' without B ({len(a_only)}): {', '.join(a_only)}")
            if b_only:
                lines.append(f"  B in '{b_dir}' without A ({len(b_only)}): {', '.join(b_only)}")
            raise UnpairedFilesError("\n".join(lines), {str(a_dir): a_only, str(b_dir): b_only})
        if gt_index:
            missing = sorted(set(a_index) - set(gt_index))
            if missing:
                raise UnpairedFilesError(
                    f"pairs in '{self.root}' without ground truth ({len(missing)}): {', '.join(missing)}",
                    {"gt": missing},
                )
        return [(name, a_index[name], b_index[name], gt_index.get(name)) for name in sorted(a_index)]

    @staticmethod
    def _check_size(name: str, paths: list[Path]) -> None:
        from data_modules.io import read_image_size

        sizes = [read_image_size(path) for path in paths]
        if len(set(sizes)) > 1:
            described = ", ".join(f"'{p}' is {h}×{w}" for p, (h, w) in zip(paths, sizes))
            raise SizeMismatchError(f"multi-focus pair '{name}' differs in size: {described}")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, a_path, b_path, gt_path = self.pairs[index]
        item: dict[str, Any] = {
            "a": torch.from_numpy(read_y(a_path))[None],
            "b": torch.from_numpy(read_y(b_path))[None],
        }
        if gt_path is not None:
            item["gt"] = torch.from_numpy(read_y(gt_path))[None]
        item["name"] = name
        return item


# --------------------------------------------------------------------------------------------------


def find_natural_images(roots: Sequence[PathLike]) -> list[Path]:
    """All images under the roots, searched recursively (natural-image sets often sit in subfolders)."""
    paths: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise DataFolderNotFoundError(
                f"all-in-focus image root '{root}' does not exist or is not a folder"
            )
        found = list_images(root, recursive=True)
        if not found:
            raise EmptyFolderError(
                f"all-in-focus image root '{root}' contains no images (searched recursively)"
            )
        paths.extend(found)
    return paths


__all__ = ["MultiFocusPairFolder", "SyntheticMultiFocusDataset", "find_natural_images", "read_y"]
