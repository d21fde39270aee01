"""Multi-focus data for the source stage: synthetic (A, B, G, M) samples and real pairs without ground truth.

Synthesis (see docs/data.md): from an all-in-focus image take the Y channel G of a random crop, draw a
smooth random mask M, blur G with a random Gaussian or disk kernel, and set
``A = M·G + (1−M)·blur(G)`` and ``B = (1−M)·G + M·blur(G)``; M = 1 where A is in focus.

The synthesis lives in :mod:`data_modules.focus`, the data sets in :mod:`data_modules.mfif_datasets`; this
module holds the DataModule and re-exports their names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from data_modules.errors import DatasetError
from data_modules.focus import BLUR_KINDS, MultiFocusSynthesizer, disk_kernel, random_focus_mask
from data_modules.mfif_datasets import (
    MultiFocusPairFolder,
    SyntheticMultiFocusDataset,
    find_natural_images,
    read_y,
)
from data_modules.paired import collate_pairs
from data_modules.resumable import EpochSeededDataset, EpochSeededSampler, TrainerPositionMixin, current_epoch
from data_modules.samplers import eval_sampler
from data_modules.transforms import WorkerSeeder


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
        if roots is not None and (
            isinstance(roots, str) or not roots or not all(isinstance(r, str) for r in roots)
        ):
            raise TypeError(f"roots must be a non-empty list of folder paths or None, got {roots!r}")
        if blur not in BLUR_KINDS:
            raise ValueError(f"blur must be one of {BLUR_KINDS}, got {blur!r}")
        if samples_per_epoch < 1 or val_samples < 1 or batch_size < 1 or num_workers < 0:
            raise ValueError(
                "need samples_per_epoch >= 1, val_samples >= 1, batch_size >= 1 and num_workers >= 0; "
                f"got {samples_per_epoch}, {val_samples}, {batch_size}, {num_workers}"
            )
        if crop_size < 8 or val_crop_size < 8:
            raise ValueError(f"need crop_size >= 8 and val_crop_size >= 8; got {crop_size}, {val_crop_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.roots = roots
        self.crop_size, self.batch_size, self.num_workers = crop_size, batch_size, num_workers
        self.samples_per_epoch, self.val_samples, self.val_crop_size = (
            samples_per_epoch,
            val_samples,
            val_crop_size,
        )
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
            self.make_synthesizer(self.crop_size),
            self.samples_per_epoch,
            train_paths,
            seed=train_seed,
            cache_images=self.cache_images,
        )
        self.val_dataset = SyntheticMultiFocusDataset(
            self.make_synthesizer(self.val_crop_size),
            self.val_samples,
            val_paths,
            seed=self.seed,
            deterministic=True,
        )
        if self.real_val_root is not None:
            self.real_val_dataset = MultiFocusPairFolder(self.real_val_root)

    def _loader(
        self, dataset: Dataset | None, batch_size: int, train: bool, collate: Any = None
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError("MFIFDataModule.setup() must run before its dataloaders are requested")
        sampler = None if train else eval_sampler(dataset)
        if train:
            # Each (seed, epoch, index) gives the same draw in any process: a resumed run repeats exactly.
            sampler = EpochSeededSampler(
                len(dataset),
                self.seed,
                False,
                self._world_size,
                self._rank,
                epoch=current_epoch(self.trainer),
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
