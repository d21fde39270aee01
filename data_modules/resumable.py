"""Training data whose randomness is a pure function of (seed, epoch, sample index).

An interrupted run resumes from ``last.ckpt`` at an epoch boundary; for the resumed run to reproduce
the uninterrupted one exactly, the order *and* every augmentation of the restarted epoch must not
depend on how many epochs this process has already seen, on worker start-up, or on the global RNG.

- :class:`EpochSeededSampler` yields ``(epoch, index)`` keys in an order drawn from ``(seed, epoch)``.
  Lightning calls its ``set_epoch`` before every epoch, except the first epoch after a restore, whose
  iterator it creates before ``set_epoch``: :func:`current_epoch` gives the restored epoch to start from.
  It is a ``DistributedSampler``, so Lightning never wraps it, and it shards the keys across ranks itself.
- :class:`EpochSeededDataset` reseeds the wrapped dataset from ``(seed, epoch, index)`` before each
  item, so augmentation and synthesis draws no longer depend on worker seeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from data_modules.transforms import reseed_dataset


class TrainerPositionMixin:
    """``_rank`` / ``_world_size`` of the attached trainer (0 / 1 without one), for data modules."""

    trainer: Any

    @property
    def _world_size(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.world_size) if trainer is not None else 1

    @property
    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0


def current_epoch(trainer: Any) -> int:
    """The epoch the trainer is about to run (restored from a checkpoint on resume); 0 without a trainer."""
    try:
        return int(trainer.fit_loop.epoch_progress.current.processed)
    except AttributeError:
        return 0


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed that depends only on the three integers."""
    return int(np.random.SeedSequence([seed % 2**63, epoch, index]).generate_state(1)[0])


class EpochSeededDataset(Dataset):
    """Wraps a dataset with a ``reseed`` method; ``dataset[(epoch, i)]`` is reproducible."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            epoch, index = key
            reseed_dataset(self.dataset, item_seed(self.seed, epoch, index))
            return self.dataset[index]
        return self.dataset[key]


class EpochSeededSampler(DistributedSampler):
    """Shuffled (or sequential) ``(epoch, index)`` keys, sharded over ``num_replicas`` ranks.

    With one replica it is a seeded RandomSampler whose order changes every epoch. With several, every
    rank draws the same permutation and takes its strided share (padded by wrapping, as
    ``DistributedSampler`` does, so all ranks run the same number of steps).
    """

    def __init__(
        self,
        length: int,
        seed: int,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        epoch: int = 0,
    ) -> None:
        if length < 1:
            raise ValueError("EpochSeededSampler needs a non-empty dataset")
        self.length = int(length)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = int(epoch)
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.seed = int(seed)
        if drop_last and self.length % self.num_replicas:
            self.num_samples = self.length // self.num_replicas
        else:
            self.num_samples = math.ceil(self.length / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        if self.shuffle:
            generator = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, -1 % 2**31))
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        if len(order) < self.total_size:
            order += (order * math.ceil(self.total_size / len(order)))[: self.total_size - len(order)]
        order = order[: self.total_size][self.rank : self.total_size : self.num_replicas]
        return iter([(self.epoch, index) for index in order])

    def __len__(self) -> int:
        return self.num_samples
