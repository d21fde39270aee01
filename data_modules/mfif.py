"""Multi-focus data for the source stage: synthetic (A, B, G, M) samples and real pairs without ground truth.

Synthesis (see docs/data.md): from an all-in-focus image take the Y channel G of a random crop, draw a
smooth random mask M, blur G with a random Gaussian or disk kernel, and set
``A = M·G + (1−M)·blur(G)`` and ``B = (1−M)·G + M·blur(G)``; M = 1 where A is in focus.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from data_modules.io import list_images, read_image_array, read_luma, to_unit_float
from data_modules.paired import (
    DataFolderNotFoundError,
    DatasetError,
    EmptyFolderError,
    SizeMismatchError,
    UnpairedFilesError,
    _stem_index,
    collate_pairs,
    luma,
)
from data_modules.resumable import EpochSeededDataset, EpochSeededSampler, TrainerPositionMixin, current_epoch
from data_modules.samplers import eval_sampler
from data_modules.synthetic import make_texture_array
from data_modules.transforms import WorkerSeeder

PathLike = str | os.PathLike
BLUR_KINDS = ("mixed", "gaussian", "disk")


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised, anti-aliased disk (pill-box) kernel: the defocus point-spread function of a lens."""
    if radius <= 0:
        raise ValueError(f"disk radius must be positive, got {radius}")
    half = int(math.ceil(radius))
    coords = np.arange(-half, half + 1, dtype=np.float32)
    distance = np.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
    kernel = np.clip(radius + 0.5 - distance, 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


def random_focus_mask(
    rng: np.random.Generator, height: int, width: int, coverage: tuple[float, float] = (0.25, 0.75)
) -> np.ndarray:
    """A smooth random binary mask H×W (float32 0/1) covering a fraction in ``coverage`` of the image.

    Half the masks are blobs (thresholded low-frequency noise: organic, possibly several regions), half
    are one to three filled random polygons smoothed at the corners (objects with straight edges).
    """
    target = rng.uniform(*coverage)
    if rng.random() < 0.5:
        mask = _polygon_mask(rng, height, width)
        fraction = float(mask.mean())
        if coverage[0] <= fraction <= coverage[1]:
            return mask
        if coverage[0] <= 1.0 - fraction <= coverage[1]:
            return 1.0 - mask
    cells = int(rng.integers(2, 6))
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    threshold = np.quantile(field, 1.0 - target)
    return (field > threshold).astype(np.float32)


def _polygon_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    size = min(height, width)
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform((0.15 * width, 0.15 * height), (0.85 * width, 0.85 * height))
        vertices = int(rng.integers(4, 11))
        angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
        radii = rng.uniform(0.15, 0.5, vertices) * size
        points = centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    smooth = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(1.0, size / 64))
    return (smooth > 0.5).astype(np.float32)


class MultiFocusSynthesizer:
    """Turns an all-in-focus Y image into one random multi-focus sample (see the module docstring).

    Blur: Gaussian with σ in ``sigma_range`` or a disk with radius in ``disk_radius_range`` (both drawn
    log-uniformly, so mild, hard-to-see defocus is as common as strong defocus); ``blur="mixed"`` picks
    either kind with equal odds. The crop is taken with a margin as wide as the largest kernel, blurred,
    and then cut to ``crop_size``, so the blur near the crop border sees real image content.
    ``soft_edges`` feathers the mask (Gaussian, σ in ``feather_range``) for a gradual focus boundary.
    """

    def __init__(
        self,
        crop_size: int = 128,
        blur: str = "mixed",
        sigma_range: tuple[float, float] = (0.5, 8.0),
        disk_radius_range: tuple[float, float] = (2.0, 15.0),
        soft_edges: bool = False,
        feather_range: tuple[float, float] = (1.0, 6.0),
        coverage: tuple[float, float] = (0.25, 0.75),
        swap: bool = True,
        flips: bool = True,
    ) -> None:
        if blur not in BLUR_KINDS:
            raise ValueError(f"blur must be one of {BLUR_KINDS}, got {blur!r}")
        if crop_size < 8:
            raise ValueError(f"crop_size must be at least 8, got {crop_size}")
        if not 0 < sigma_range[0] <= sigma_range[1] or not 0 < disk_radius_range[0] <= disk_radius_range[1]:
            raise ValueError(f"blur ranges must be positive and ordered, got {sigma_range} and {disk_radius_range}")
        self.crop_size = crop_size
        self.blur = blur
        self.sigma_range = sigma_range
        self.disk_radius_range = disk_radius_range
        self.soft_edges = soft_edges
        self.feather_range = feather_range
        self.coverage = coverage
        self.swap = swap
        self.flips = flips

    @property
    def margin(self) -> int:
        """Context needed around the crop for the widest kernel."""
        widest = 0.0
        if self.blur in ("mixed", "gaussian"):
            widest = max(widest, 3.0 * self.sigma_range[1])
        if self.blur in ("mixed", "disk"):
            widest = max(widest, self.disk_radius_range[1] + 1.0)
        return int(math.ceil(widest))

    def window_size(self, crop_size: int | None = None) -> int:
        return (crop_size or self.crop_size) + 2 * self.margin

    def random_blur(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Blur an H×W float32 image with a random Gaussian or disk kernel."""
        kind = self.blur if self.blur != "mixed" else ("gaussian" if rng.random() < 0.5 else "disk")
        if kind == "gaussian":
            sigma = math.exp(rng.uniform(math.log(self.sigma_range[0]), math.log(self.sigma_range[1])))
            return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        radius = math.exp(rng.uniform(math.log(self.disk_radius_range[0]), math.log(self.disk_radius_range[1])))
        return cv2.filter2D(image, -1, disk_kernel(radius), borderType=cv2.BORDER_REFLECT_101)

    def sample(self, image: np.ndarray, rng: np.random.Generator, crop_size: int | None = None) -> dict[str, np.ndarray]:
        """One sample from an H×W Y image: "a", "b", "gt", "mask", each crop×crop float32 in [0, 1].

        ``image`` may be uint8/uint16 as stored (only the window is converted to float) or float in [0, 1].
        """
        crop = crop_size or self.crop_size
        window = crop + 2 * self.margin
        if image.ndim != 2:
            raise ValueError(f"the synthesizer takes an H×W grey image, got shape {image.shape}")
        pad_h, pad_w = max(0, window - image.shape[0]), max(0, window - image.shape[1])
        if pad_h or pad_w:
            image = cv2.copyMakeBorder(image, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2, cv2.BORDER_REFLECT_101)
        top = int(rng.integers(0, image.shape[0] - window + 1))
        left = int(rng.integers(0, image.shape[1] - window + 1))
        patch = image[top : top + window, left : left + window]
        if self.flips:
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1, :]
        return self.synthesize(np.ascontiguousarray(to_unit_float(patch)), rng, crop)

    def synthesize(self, patch: np.ndarray, rng: np.random.Generator, crop: int | None = None) -> dict[str, np.ndarray]:
        """Blur ``patch`` (H×W) and combine with a random mask; the centre ``crop`` (default: all) is kept."""
        height, width = patch.shape
        crop_h = crop if crop is not None else height
        crop_w = crop if crop is not None else width
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        inner = (slice(top, top + crop_h), slice(left, left + crop_w))
        gt = patch[inner]
        blurred = self.random_blur(patch, rng)[inner]
        mask = random_focus_mask(rng, crop_h, crop_w, self.coverage)
        if self.soft_edges:
            sigma = rng.uniform(*self.feather_range)
            mask = np.clip(cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101), 0.0, 1.0)
        a = mask * gt + (1.0 - mask) * blurred
        b = (1.0 - mask) * gt + mask * blurred
        if self.swap and rng.random() < 0.5:
            a, b, mask = b, a, 1.0 - mask
        return {
            "a": np.ascontiguousarray(a, dtype=np.float32),
            "b": np.ascontiguousarray(b, dtype=np.float32),
            "gt": np.ascontiguousarray(gt, dtype=np.float32),
            "mask": np.ascontiguousarray(mask, dtype=np.float32),
        }


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
            return make_texture_array(texture_seed, window, window, channels=1)[:, :, 0], f"texture{texture_seed}"
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
                a_index = _stem_index(self.root / a_name, "near-focus (A)")
                b_index = _stem_index(self.root / b_name, "far-focus (B)")
                gt_folder = next((self.root / g for g in _GT_FOLDERS if g in subfolders), None)
                gt_index = _stem_index(gt_folder, "ground-truth") if gt_folder is not None else {}
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
        self, a_index: dict[str, Path], b_index: dict[str, Path], a_dir: Path, b_dir: Path, gt_index: dict[str, Path]
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
                    f"pairs in '{self.root}' without ground truth ({len(missing)}): {', '.join(missing)}", {"gt": missing}
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
        item: dict[str, Any] = {"a": torch.from_numpy(read_y(a_path))[None], "b": torch.from_numpy(read_y(b_path))[None]}
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
            raise DataFolderNotFoundError(f"all-in-focus image root '{root}' does not exist or is not a folder")
        found = list_images(root, recursive=True)
        if not found:
            raise EmptyFolderError(f"all-in-focus image root '{root}' contains no images (searched recursively)")
        paths.extend(found)
    return paths


class MFIFDataModule(TrainerPositionMixin, pl.LightningDataModule):
    """Synthetic multi-focus training/validation data, plus optional real pairs for no-reference validation.

    Batches: training and synthetic validation give {"a", "b", "gt", "mask": N×1×H×W, "name": list[str]};
    with ``real_val_root`` the validation loaders are ``[synthetic, real]`` and the real one gives
    {"a", "b", "name", "size"} at full resolution (batch size 1), so ``validation_step`` sees
    ``dataloader_idx`` 0 and 1.

    Args:
        roots: folders of all-in-focus images (searched recursively); None uses the embedded textures.
        crop_size, batch_size, num_workers: training loader settings.
        samples_per_epoch: synthesis is random, so an epoch is this many samples.
        val_samples, val_crop_size: the deterministic synthetic validation set.
        blur, soft_edges: see :class:`MultiFocusSynthesizer`.
        seed: seeds the synthesis, the held-out images and the loaders.
        real_val_root: real pairs without ground truth (Lytro-style a/ + b/, or name-A/name-B files).
        val_fraction: share of the images under ``roots`` held out for validation (at least one image).
        cache_images: keep decoded training images in memory in each worker.
    """

    def __init__(
        self,
        roots: list[str] | None = None,
        crop_size: int = 128,
        batch_size: int = 8,
        num_workers: int = 2,
        samples_per_epoch: int = 2000,
        val_samples: int = 64,
        val_crop_size: int = 256,
        blur: str = "mixed",
        soft_edges: bool = False,
        seed: int = 0,
        real_val_root: str | None = None,
        val_fraction: float = 0.05,
        cache_images: bool = False,
    ) -> None:
        super().__init__()
        if roots is not None and (isinstance(roots, str) or not roots or not all(isinstance(r, str) for r in roots)):
            raise TypeError(f"roots must be a non-empty list of folder paths or None, got {roots!r}")
        if blur not in BLUR_KINDS:
            raise ValueError(f"blur must be one of {BLUR_KINDS}, got {blur!r}")
        if samples_per_epoch < 1 or val_samples < 1 or batch_size < 1 or num_workers < 0:
            raise ValueError(
                "need samples_per_epoch >= 1, val_samples >= 1, batch_size >= 1 and num_workers >= 0; "
                f"got {samples_per_epoch}, {val_samples}, {batch_size}, {num_workers}"
            )
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.roots = roots
        self.crop_size, self.batch_size, self.num_workers = crop_size, batch_size, num_workers
        self.samples_per_epoch, self.val_samples, self.val_crop_size = samples_per_epoch, val_samples, val_crop_size
        self.blur, self.soft_edges, self.seed = blur, soft_edges, seed
        self.real_val_root, self.val_fraction, self.cache_images = real_val_root, val_fraction, cache_images
        self.train_dataset: SyntheticMultiFocusDataset | None = None
        self.val_dataset: SyntheticMultiFocusDataset | None = None
        self.real_val_dataset: MultiFocusPairFolder | None = None


    def make_synthesizer(self, crop_size: int) -> MultiFocusSynthesizer:
        return MultiFocusSynthesizer(crop_size=crop_size, blur=self.blur, soft_edges=self.soft_edges)

    def split_images(self) -> tuple[list[Path] | None, list[Path] | None]:
        """Training and held-out validation images (by seed); None for the embedded textures."""
        if self.roots is None:
            return None, None
        paths = find_natural_images(self.roots)
        if len(paths) < 2 or self.val_fraction == 0.0:
            return paths, paths
        n_val = max(1, round(len(paths) * self.val_fraction))
        order = np.random.default_rng(self.seed).permutation(len(paths))
        held_out = set(order[:n_val].tolist())
        return [p for i, p in enumerate(paths) if i not in held_out], [paths[i] for i in sorted(held_out)]

    def prepare_data(self) -> None:
        """Nothing to download or write: datasets are built per process in :meth:`setup`."""

    def setup(self, stage: str | None = None) -> None:
        train_paths, val_paths = self.split_images()
        train_seed = int(np.random.SeedSequence([self.seed, self._rank]).generate_state(1)[0])
        self.train_dataset = SyntheticMultiFocusDataset(
            self.make_synthesizer(self.crop_size), self.samples_per_epoch, train_paths, seed=train_seed,
            cache_images=self.cache_images,
        )
        self.val_dataset = SyntheticMultiFocusDataset(
            self.make_synthesizer(self.val_crop_size), self.val_samples, val_paths, seed=self.seed, deterministic=True
        )
        if self.real_val_root is not None:
            self.real_val_dataset = MultiFocusPairFolder(self.real_val_root)

    def _loader(self, dataset: Dataset | None, batch_size: int, train: bool, collate: Any = None) -> DataLoader:
        if dataset is None:
            raise RuntimeError("MFIFDataModule.setup() must run before its dataloaders are requested")
        sampler = None if train else eval_sampler(dataset)
        if train:
            # Each (seed, epoch, index) gives the same draw in any process: a resumed run repeats exactly.
            sampler = EpochSeededSampler(
                len(dataset), self.seed, False, self._world_size, self._rank, epoch=current_epoch(self.trainer)
            )
            dataset = EpochSeededDataset(dataset, self.seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            # Training draws are random already (no shuffling needed); under DDP, evaluation shards
            # without DistributedSampler's padding, so no sample is counted twice.
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            collate_fn=collate,
            worker_init_fn=WorkerSeeder(self._rank),
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=train and self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        synthetic = self._loader(self.val_dataset, self.batch_size, train=False)
        if self.real_val_dataset is None:
            return synthetic
        real = self._loader(self.real_val_dataset, 1, train=False, collate=collate_pairs)
        return [synthetic, real]

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """The held-out synthetic pairs (and the real pairs, when given): the same deterministic set as
        validation, so ``stfuse test`` on a checkpoint reproduces its validation numbers."""
        return self.val_dataloader()


__all__ = [
    "BLUR_KINDS",
    "DatasetError",
    "MFIFDataModule",
    "MultiFocusPairFolder",
    "MultiFocusSynthesizer",
    "SyntheticMultiFocusDataset",
    "disk_kernel",
    "find_natural_images",
    "random_focus_mask",
    "read_y",
]
