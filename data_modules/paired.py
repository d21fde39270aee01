"""``PairedImageFolder``: infrared/visible pairs matched by file stem across two folders.

Every problem with the folders is reported at construction, with the files named, so that a training run
fails in its first second rather than after an epoch: a missing folder, an empty folder, files without a
partner (all of them listed), two files with one stem, pairs whose sizes differ, and files whose header
cannot be read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from data_modules.errors import (
    DataFolderNotFoundError,
    DatasetError,
    DuplicateStemError,
    EmptyFolderError,
    SizeMismatchError,
    UnpairedFilesError,
)
from data_modules.formats import accepted_extensions_text
from data_modules.io import (
    ImageReadError,
    array_to_tensor,
    luma_array,
    read_image_array,
    read_image_size,
    read_raw_array,
    split_visible_array,
)
from data_modules.stems import index_by_stem, pair_by_stem

PathLike = str | os.PathLike
SIZE_POLICIES = ("error", "resize", "center_crop")

PairArrays = dict[str, np.ndarray]
"""Float32 arrays in [0, 1] before tensor conversion: "ir" H×W×1, "vi" H×W×C (C = 1 or 3), extras H×W."""

PairTransform = Callable[[PairArrays], PairArrays]


def luma(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 RGB to H×W×1 Y with the BT.601 weights kornia uses."""
    return luma_array(rgb)[:, :, None]


def make_pair_item(arrays: PairArrays, name: str) -> dict[str, Any]:
    """Tensors of one sample: IR 1×H×W, visible Y 1×H×W, its CbCr 2×H×W, the colour flag and extras."""
    ir = array_to_tensor(np.clip(arrays["ir"], 0.0, 1.0))
    y, cbcr, is_color = split_visible_array(np.clip(arrays["vi"], 0.0, 1.0).astype(np.float32, copy=False))
    vi_y, vi_cbcr = array_to_tensor(y), array_to_tensor(cbcr)
    item: dict[str, Any] = {"ir": ir, "vi": vi_y, "vi_cbcr": vi_cbcr, "vi_is_color": is_color, "name": name}
    for key, value in arrays.items():
        if key not in ("ir", "vi"):
            item[key] = torch.from_numpy(np.ascontiguousarray(value).astype(np.int64))
    return item


def collate_pairs(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate sample dicts, including images of different sizes.

    Equal sizes are stacked. Different sizes (full-image evaluation with a batch size above 1) are padded
    at the bottom/right by edge replication to the largest H and W; ``"size"`` (N×2, the original H, W)
    tells a consumer which region is real. Strings are gathered into lists, bools into a bool tensor.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    sizes = torch.tensor([_image_size(sample) for sample in batch], dtype=torch.long)
    target_h, target_w = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    collated: dict[str, Any] = {}
    for key in batch[0]:
        values = [sample[key] for sample in batch]
        first = values[0]
        if isinstance(first, torch.Tensor):
            if any(v.shape[-2:] != (target_h, target_w) for v in values):
                values = [_pad_to(v, target_h, target_w) for v in values]
            collated[key] = torch.stack(values)
        elif isinstance(first, bool):
            collated[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, (int, float)):
            collated[key] = torch.tensor(values)
        else:
            collated[key] = list(values)
    collated["size"] = sizes
    return collated


def _image_size(sample: Mapping[str, Any]) -> tuple[int, int]:
    for value in sample.values():
        if isinstance(value, torch.Tensor) and value.ndim >= 2:
            return int(value.shape[-2]), int(value.shape[-1])
    raise ValueError(f"sample with keys {sorted(sample)} holds no image tensor")


def _pad_to(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    pad_h, pad_w = height - tensor.shape[-2], width - tensor.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return tensor
    if tensor.dtype.is_floating_point:
        batched = tensor.reshape(1, -1, *tensor.shape[-2:])
        padded = F.pad(batched, (0, pad_w, 0, pad_h), mode="replicate")
        return padded.reshape(*tensor.shape[:-2], height, width)
    return F.pad(tensor, (0, pad_w, 0, pad_h), value=0)  # label maps: 0 is the background id


def unique_stem_index(folder: Path, role: str) -> dict[str, Path]:
    """Map stem → image file in ``folder`` (non-image files ignored); the data-set errors name ``role``'s
    folder when it is missing, empty or holds two images with one stem."""
    if not folder.exists():
        raise DataFolderNotFoundError(f"{role} folder '{folder}' does not exist")
    if not folder.is_dir():
        raise DataFolderNotFoundError(f"{role} folder '{folder}' is not a folder")
    found = index_by_stem(folder)
    index = found.files
    duplicates = [
        f"'{a.name}' and '{b.name}'" for paths in found.duplicates.values() for a, b in zip(paths, paths[1:])
    ]
    if duplicates:
        raise DuplicateStemError(
            f"{role} folder '{folder}' has several images with one stem, so the pairing is ambiguous: "
            + "; ".join(duplicates)
        )
    if not index:
        raise EmptyFolderError(
            f"{role} folder '{folder}' contains no images (accepted: {accepted_extensions_text()})"
        )
    return index


@dataclass(frozen=True)
class PairRecord:
    """The files of one sample."""

    name: str
    ir_path: Path
    vi_path: Path
    extra_paths: dict[str, Path] = field(default_factory=dict)


def _format_stems(stems: Sequence[str]) -> str:
    return ", ".join(stems)


class PairedImageFolder(Dataset):
    """Infrared/visible pairs matched by file stem (``ir/01.png`` ↔ ``vi/01.jpg``).

    Items are dicts: ``"ir"`` 1×H×W, ``"vi"`` 1×H×W (the visible Y), ``"vi_cbcr"`` 2×H×W (neutral 0.5 for a
    grey visible image), ``"vi_is_color"`` bool, ``"name"`` the stem, plus one H×W int64 map per extra folder
    (labels, masks: their stored ids, unscaled). Floats are in [0, 1].

    ``size_policy`` decides what happens when a pair's members differ in size: ``"error"`` refuses (checked
    for every pair at construction), ``"resize"`` resizes the visible image (and extras) to the infrared
    size, the registration reference, and ``"center_crop"`` crops all members to their common centre.
    ``transform`` acts on the float arrays (see :data:`PairArrays`) before the YCbCr split.
    ``cache`` keeps each pair's decoded arrays in memory after its first read (per process), so training
    epochs after the first decode nothing; about 5 MB per 640×480 colour pair.
    """

    def __init__(
        self,
        ir_dir: PathLike,
        vi_dir: PathLike,
        size_policy: str = "error",
        extra_dirs: Mapping[str, PathLike] | None = None,
        transform: PairTransform | None = None,
        names: Sequence[str] | None = None,
        check_sizes: bool = True,
        cache: bool = False,
    ) -> None:
        if size_policy not in SIZE_POLICIES:
            raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
        self.ir_dir = Path(ir_dir)
        self.vi_dir = Path(vi_dir)
        self.size_policy = size_policy
        self.extra_dirs = {key: Path(folder) for key, folder in (extra_dirs or {}).items()}
        reserved = {"ir", "vi", "vi_cbcr", "vi_is_color", "name", "size"} & set(self.extra_dirs)
        if reserved:
            raise ValueError(f"extra folder keys {sorted(reserved)} clash with the item keys; rename them")
        self.transform = transform
        self.cache = bool(cache)
        self._cache: dict[int, PairArrays] = {}
        self.records = self._pair_files(names)
        if check_sizes:
            self._check_headers()

    def _pair_files(self, names: Sequence[str] | None) -> list[PairRecord]:
        ir_index = unique_stem_index(self.ir_dir, "infrared")
        vi_index = unique_stem_index(self.vi_dir, "visible")
        extra_indices = {
            key: unique_stem_index(folder, f"extra '{key}'") for key, folder in self.extra_dirs.items()
        }
        pairing = pair_by_stem(ir_index, vi_index)
        ir_only, vi_only = pairing.only_first, pairing.only_second
        if ir_only or vi_only:
            lines = [f"unpaired images between '{self.ir_dir}' and '{self.vi_dir}':"]
            if ir_only:
                lines.append(
                    f"  in '{self.ir_dir}' without a visible partner ({len(ir_only)}): {_format_stems(ir_only)}"
                )
            if vi_only:
                lines.append(
                    f"  in '{self.vi_dir}' without an infrared partner ({len(vi_only)}): {_format_stems(vi_only)}"
                )
            raise UnpairedFilesError("\n".join(lines), {str(self.ir_dir): ir_only, str(self.vi_dir): vi_only})
        stems = sorted(ir_index)
        if names is not None:
            unknown = sorted(set(names) - set(stems))
            if unknown:
                raise DatasetError(f"names not found in '{self.ir_dir}': {_format_stems(unknown)}")
            stems = [stem for stem in stems if stem in set(names)]
        missing_extras = {
            key: [stem for stem in stems if stem not in index] for key, index in extra_indices.items()
        }
        missing_extras = {key: value for key, value in missing_extras.items() if value}
        if missing_extras:
            lines = ["pairs without their extra file:"]
            for key, missing in missing_extras.items():
                lines.append(f"  '{self.extra_dirs[key]}' lacks ({len(missing)}): {_format_stems(missing)}")
            raise UnpairedFilesError(
                "\n".join(lines),
                {str(self.extra_dirs[key]): missing for key, missing in missing_extras.items()},
            )
        return [
            PairRecord(
                name=stem,
                ir_path=ir_index[stem],
                vi_path=vi_index[stem],
                extra_paths={key: index[stem] for key, index in extra_indices.items()},
            )
            for stem in stems
        ]

    def _check_headers(self) -> None:
        """Read every header: corrupt files and (with policy "error") size mismatches fail now."""
        mismatched: list[str] = []
        for record in self.records:
            members = {"ir": record.ir_path, "vi": record.vi_path, **record.extra_paths}
            sizes = {role: read_image_size(path) for role, path in members.items()}
            if len(set(sizes.values())) > 1 and self.size_policy == "error":
                described = ", ".join(f"'{members[role]}' is {h}×{w}" for role, (h, w) in sizes.items())
                mismatched.append(f"  {record.name}: {described}")
        if mismatched:
            raise SizeMismatchError(
                f"{len(mismatched)} pair(s) differ in size (H×W) and size_policy='error'; "
                "use size_policy='resize' or 'center_crop' to accept them:\n" + "\n".join(mismatched)
            )

    def __len__(self) -> int:
        return len(self.records)

    @property
    def names(self) -> list[str]:
        return [record.name for record in self.records]

    def load_arrays(self, index: int) -> PairArrays:
        """The sample's float arrays with the size policy applied, before any transform.

        With ``cache`` the arrays are shared between calls: transforms must not modify them in place
        (``PairedAugmentation`` crops into new arrays).
        """
        cached = self._cache.get(index)
        if cached is not None:
            return dict(cached)
        arrays = self._read_arrays(index)
        if self.cache:
            self._cache[index] = arrays
            return dict(arrays)
        return arrays

    def _read_arrays(self, index: int) -> PairArrays:
        record = self.records[index]
        ir = read_image_array(record.ir_path)
        if ir.shape[2] == 3:
            ir = luma(ir)  # a colour-mapped thermal image: keep its luminance
        arrays: PairArrays = {"ir": ir, "vi": read_image_array(record.vi_path)}
        for key, path in record.extra_paths.items():
            arrays[key] = _read_label_map(path)
        return self._apply_size_policy(arrays, record)

    def _apply_size_policy(self, arrays: PairArrays, record: PairRecord) -> PairArrays:
        sizes = {key: value.shape[:2] for key, value in arrays.items()}
        if len(set(sizes.values())) == 1:
            return arrays
        if self.size_policy == "error":
            described = ", ".join(f"{key} {h}×{w}" for key, (h, w) in sizes.items())
            raise SizeMismatchError(
                f"pair '{record.name}' ('{record.ir_path}', '{record.vi_path}') differs in size: {described}"
            )
        if self.size_policy == "resize":
            height, width = sizes["ir"]
            return {
                key: _resize(value, height, width, is_label=key not in ("ir", "vi"))
                for key, value in arrays.items()
            }
        height = min(h for h, _ in sizes.values())
        width = min(w for _, w in sizes.values())
        return {key: _center_crop(value, height, width) for key, value in arrays.items()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for {len(self.records)} pairs")
        arrays = self.load_arrays(index)
        if self.transform is not None:
            arrays = self.transform(arrays)
        return make_pair_item(arrays, self.records[index].name)

    def reseed(self, seed: int) -> None:
        """Reseed the random transform (called per DataLoader worker by the data modules)."""
        reseed = getattr(self.transform, "reseed", None)
        if reseed is not None:
            reseed(seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ir_dir='{self.ir_dir}', vi_dir='{self.vi_dir}', pairs={len(self)})"


def _read_label_map(path: Path) -> np.ndarray:
    raw = read_raw_array(path)
    if raw.ndim == 3:
        first = raw[:, :, 0]
        if not all(np.array_equal(first, raw[:, :, c]) for c in range(1, min(raw.shape[2], 3))):
            raise ImageReadError(
                path, "label/mask image has colour channels; expected a single-channel id map"
            )
        raw = first
    return raw


def _resize(array: np.ndarray, height: int, width: int, is_label: bool) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    if is_label:
        interpolation = cv2.INTER_NEAREST
    elif array.shape[0] > height and array.shape[1] > width:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    source = array.astype(np.float32) if is_label and array.dtype.itemsize > 4 else array
    resized = cv2.resize(source, (width, height), interpolation=interpolation)
    if array.ndim == 3 and resized.ndim == 2:
        resized = resized[:, :, None]
    return resized.astype(array.dtype, copy=False)


def _center_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    top = (array.shape[0] - height) // 2
    left = (array.shape[1] - width) // 2
    return np.ascontiguousarray(array[top : top + height, left : left + width])
