"""``IVIFDataModule``: infrared/visible pairs for the target stage (training, validation, test, predict)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from data_modules.errors import SplitError
from data_modules.io import read_luma, to_unit_float
from data_modules.layouts import open_dataset
from data_modules.paired import PairedImageFolder, collate_pairs
from data_modules.resumable import EpochSeededDataset, EpochSeededSampler, TrainerPositionMixin, current_epoch
from data_modules.samplers import eval_sampler
from data_modules.synthetic_scenes import SyntheticIVIFDataset
from data_modules.transforms import PairedAugmentation, WorkerSeeder

VAL_STRATA = ("random", "stratified")


def _concat(datasets: list[Dataset]) -> Dataset:
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)


def _shares(sizes: list[int], count: int, minimum: int, names: list[str]) -> list[int]:
    """``count`` split over roots of ``sizes``: ``minimum`` each (at most all but one of a root's pairs), the
    rest in proportion to the sizes (largest remainder)."""
    shares = [min(minimum, n - 1) for n in sizes]
    if any(n < 2 for n in sizes) or sum(shares) > count:
        raise SplitError(
            f"a stratified split of val_size={count} cannot hold out {minimum} pair(s) of each root and keep one "
            f"for training ({', '.join(f'{name}: {n} pairs' for name, n in zip(names, sizes))}); lower "
            "val_min_per_root or raise val_size"
        )
    rest = count - sum(shares)
    room = [n - 1 - a for n, a in zip(sizes, shares)]
    exact = [rest * r / max(1, sum(room)) for r in room]
    shares = [a + int(e) for a, e in zip(shares, exact)]
    order = sorted(range(len(sizes)), key=lambda k: int(exact[k]) - exact[k])
    for k in order[: count - sum(shares)]:
        shares[k] += 1
    return shares


def stratified_hold_out(
    folders: list[PairedImageFolder], count: int, seed: int, minimum: int = 1
) -> list[list[int]]:
    """The indices held out of each folder: ``minimum`` each plus a share of the rest of ``count`` in
    proportion to the folder sizes, spread evenly over the folder's pairs sorted by mean visible luminance
    (a systematic sample with a seeded offset), so dark and bright scenes are both held out.

    Reads each visible image once (its luminance); the choice depends only on the files and ``seed``.
    """
    roots = [str(folder.ir_dir.parent) for folder in folders]
    shares = _shares([len(folder) for folder in folders], count, minimum, roots)
    rng = np.random.default_rng(seed)
    picked: list[list[int]] = []
    for folder, share in zip(folders, shares):
        brightness = [float(to_unit_float(read_luma(r.vi_path), r.vi_path).mean()) for r in folder.records]
        order = sorted(range(len(folder)), key=lambda i: (brightness[i], folder.records[i].name))
        offset = rng.random()
        picked.append(sorted(order[int((k + offset) * len(folder) / share)] for k in range(share)))
    return picked


class IVIFDataModule(TrainerPositionMixin, pl.LightningDataModule):
    """Infrared/visible pairs from one or several data-set roots, or the embedded synthetic default.

    Batches are dicts: ``"ir"`` N×1×H×W, ``"vi"`` N×1×H×W (visible Y), ``"vi_cbcr"`` N×2×H×W, ``"vi_is_color"``
    N (bool), ``"name"`` list[str], ``"size"`` N×2 (original H, W), floats in [0, 1]. Training yields random
    ``crop_size`` crops; validation, test and predict yield full images (``eval_batch_size`` 1 by default,
    since sizes vary; larger batches are padded, see :func:`~data_modules.paired.collate_pairs`).

    Args:
        train_roots: data-set roots to train on together (any accepted layout); None trains on
            ``default_train_size`` synthetic pairs generated on the fly.
        val_roots: validation roots. When None: held-out synthetic pairs for the default, or ``val_size``
            pairs held out of the training roots (chosen by ``seed``).
        test_roots: test roots. When None: held-out synthetic pairs for the default, else an error.
        predict_roots: roots to fuse with ``trainer.predict``; None uses the test data.
        layout: layout name for every root ("auto" detects each root separately).
        train_split / eval_split: split for layouts with splits (MSRS, LLVIP), ignored by flat layouts.
        size_policy: what to do with pairs whose members differ in size ("error", "resize", "center_crop").
        crop_size, batch_size, eval_batch_size, num_workers: loader settings.
        seed: seeds augmentation, shuffling, worker streams, the hold-out choice and the synthetic data.
        val_size: number of validation pairs when ``val_roots`` is None.
        split_seed: chooses the held-out validation pairs (default: ``seed``); fixing it lets runs with
            different seeds share one validation split.
        val_strata: how the ``val_size`` held-out pairs are drawn. ``"random"``: uniformly over all training
            pairs, so a small root may get none. ``"stratified"``: each root gives at least ``val_min_per_root``
            pairs, the rest go to the roots in proportion to their sizes, and inside a root the pairs are spread
            over the range of visible-image brightness (a systematic sample of the pairs sorted by mean VIS
            luminance, with a seeded offset), so night and day scenes are both held out.
        val_min_per_root: with ``val_strata="stratified"``, the pairs held out of every training root at least
            (a small domain is then validated on, not drowned by a large one); the rest of ``val_size`` goes
            to the roots in proportion to their sizes.
        default_train_size, default_image_size: size of the synthetic default (pairs, pixels per side).
        flips, rotate90, photometric: training augmentations.
        cache_images: keep decoded training and validation pairs in memory (per process) after their first
            read; with ``num_workers=0`` a CPU run then decodes each image once.
    """

    def __init__(
        self,
        train_roots: list[str] | None = None,
        val_roots: list[str] | None = None,
        test_roots: list[str] | None = None,
        predict_roots: list[str] | None = None,
        layout: str = "auto",
        train_split: str | None = "train",
        eval_split: str | None = "test",
        size_policy: str = "error",
        crop_size: int = 128,
        batch_size: int = 8,
        eval_batch_size: int = 1,
        num_workers: int = 2,
        seed: int = 0,
        val_size: int = 8,
        split_seed: int | None = None,
        val_strata: str = "random",
        val_min_per_root: int = 1,
        default_train_size: int = 512,
        default_image_size: int = 256,
        flips: bool = True,
        rotate90: bool = True,
        photometric: bool = True,
        cache_images: bool = False,
    ) -> None:
        super().__init__()
        for name, roots in (
            ("train_roots", train_roots),
            ("val_roots", val_roots),
            ("test_roots", test_roots),
            ("predict_roots", predict_roots),
        ):
            if roots is not None and (
                isinstance(roots, str) or not all(isinstance(r, str) for r in roots) or not roots
            ):
                raise TypeError(f"{name} must be a non-empty list of folder paths or None, got {roots!r}")
        if crop_size < 8 or batch_size < 1 or eval_batch_size < 1 or num_workers < 0 or val_size < 1:
            raise ValueError(
                "need crop_size >= 8, batch_size >= 1, eval_batch_size >= 1, num_workers >= 0 and val_size >= 1; "
                f"got {crop_size}, {batch_size}, {eval_batch_size}, {num_workers}, {val_size}"
            )
        if val_strata not in VAL_STRATA:
            raise ValueError(f"val_strata must be one of {VAL_STRATA}, got {val_strata!r}")
        if not isinstance(val_min_per_root, int) or val_min_per_root < 1:
            raise ValueError(f"val_min_per_root must be an integer ≥ 1, got {val_min_per_root!r}")
        self.save_hyperparameters()
        self.train_roots, self.val_roots = train_roots, val_roots
        self.test_roots, self.predict_roots = test_roots, predict_roots
        self.layout, self.train_split, self.eval_split = layout, train_split, eval_split
        self.size_policy = size_policy
        self.crop_size, self.batch_size, self.eval_batch_size = crop_size, batch_size, eval_batch_size
        self.num_workers, self.seed, self.val_size = num_workers, seed, val_size
        self.split_seed = seed if split_seed is None else split_seed
        self.val_strata = val_strata
        self.val_min_per_root = val_min_per_root
        self.default_train_size, self.default_image_size = default_train_size, default_image_size
        self.flips, self.rotate90, self.photometric = flips, rotate90, photometric
        self.cache_images = cache_images
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    # ------------------------------------------------------------------ datasets

    def make_augmentation(self) -> PairedAugmentation:
        return PairedAugmentation(
            self.crop_size,
            flips=self.flips,
            rotate90=self.rotate90,
            photometric=self.photometric,
            seed=int(np.random.SeedSequence([self.seed, self._rank]).generate_state(1)[0]),
        )

    def _open_roots(
        self, roots: list[str], split: str | None, transform: Any = None, cache: bool = False
    ) -> list[PairedImageFolder]:
        return [
            open_dataset(
                root,
                name=self.layout,
                split=split,
                size_policy=self.size_policy,
                transform=transform,
                cache=cache,
            )
            for root in roots
        ]

    def _synthetic(self, length: int, stream: str, transform: Any = None) -> SyntheticIVIFDataset:
        size = self.default_image_size
        return SyntheticIVIFDataset(length, size, size, seed=self.seed, stream=stream, transform=transform)

    def _held_out(self, folders: list[PairedImageFolder]) -> tuple[list[Dataset], list[Dataset]]:
        """Split ``val_size`` pairs (chosen by ``split_seed`` and ``val_strata``) off the training folders."""
        total = sum(len(folder) for folder in folders)
        if total <= self.val_size:
            raise SplitError(
                f"the training roots hold {total} pair(s), too few to hold out val_size={self.val_size} "
                "for validation; pass val_roots or a smaller val_size"
            )
        if self.val_strata == "stratified":
            chosen_per_root = stratified_hold_out(
                folders, self.val_size, self.split_seed, self.val_min_per_root
            )
            offsets = np.cumsum([0] + [len(folder) for folder in folders])
            chosen = {int(offsets[k]) + i for k, picked in enumerate(chosen_per_root) for i in picked}
        else:
            chosen = set(
                np.random.default_rng(self.split_seed)
                .choice(total, size=self.val_size, replace=False)
                .tolist()
            )
        train_parts: list[Dataset] = []
        val_parts: list[Dataset] = []
        offset = 0
        for folder in folders:
            indices = range(offset, offset + len(folder))
            val_idx = [i - offset for i in indices if i in chosen]
            train_idx = [i - offset for i in indices if i not in chosen]
            offset += len(folder)
            if train_idx:
                train_parts.append(Subset(folder, train_idx))
            if val_idx:
                evaluation = PairedImageFolder(
                    folder.ir_dir,
                    folder.vi_dir,
                    size_policy=folder.size_policy,
                    extra_dirs=folder.extra_dirs,
                    names=[folder.records[i].name for i in val_idx],
                    check_sizes=False,
                    cache=folder.cache,
                )
                val_parts.append(evaluation)
        return train_parts, val_parts

    def prepare_data(self) -> None:
        """Nothing to download or write: every dataset is built per process in :meth:`setup`."""

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate"):
            self._setup_fit()
        if stage in (None, "test", "predict"):
            self.test_dataset = self._build_test()
        if stage in (None, "predict"):
            self.predict_dataset = (
                _concat(self._open_roots(self.predict_roots, self.eval_split))
                if self.predict_roots
                else self.test_dataset
            )

    def _setup_fit(self) -> None:
        augmentation = self.make_augmentation()
        if self.train_roots is None:
            self.train_dataset = self._synthetic(self.default_train_size, "train", augmentation)
            held_out: list[Dataset] = [self._synthetic(self.val_size, "val")]
        else:
            folders = self._open_roots(
                self.train_roots, self.train_split, augmentation, cache=self.cache_images
            )
            if self.val_roots is None:
                train_parts, held_out = self._held_out(folders)
                self.train_dataset = _concat(train_parts)
            else:
                self.train_dataset = _concat(list(folders))
                held_out = []
        if self.val_roots is not None:
            held_out = list(self._open_roots(self.val_roots, self.eval_split, cache=self.cache_images))
        self.val_dataset = _concat(held_out)

    def _build_test(self) -> Dataset | None:
        if self.test_roots is not None:
            return _concat(list(self._open_roots(self.test_roots, self.eval_split)))
        if self.train_roots is None:
            return self._synthetic(self.val_size, "test")
        return None

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: Dataset | None, what: str, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(
                f"IVIFDataModule has no {what} data: pass {what}_roots (it is only optional for the embedded "
                "default, train_roots=None), and call setup() first when using the module without a Trainer"
            )
        generator = torch.Generator().manual_seed(self.seed + (0 if train else 1))
        sampler = None if train else eval_sampler(dataset)
        if train:
            # Order and augmentation depend only on (seed, epoch, index): a resumed run repeats exactly.
            sampler = EpochSeededSampler(
                len(dataset), self.seed, True, self._world_size, self._rank, epoch=current_epoch(self.trainer)
            )
            dataset = EpochSeededDataset(dataset, self.seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            # Under DDP, evaluation shards without DistributedSampler's padding (no sample counted twice).
            sampler=sampler,
            drop_last=train and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_pairs,
            worker_init_fn=WorkerSeeder(self._rank),
            generator=generator,
            persistent_workers=train and self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_dataset, "predict", train=False)
