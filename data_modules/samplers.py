"""Distributed evaluation without duplicated samples.

``torch.utils.data.DistributedSampler`` pads the index list so that every rank gets the same number of
samples. For training that is harmless; for evaluation it counts the first ``pad`` samples twice, so a
validation mean over 3 images on 2 GPUs is a mean over 4 values. :class:`UnpaddedDistributedSampler`
gives each rank a disjoint share (ranks may differ by one sample), so metrics reduced across ranks
equal the single-process values.

It subclasses ``DistributedSampler`` on purpose: Lightning (``use_distributed_sampler=True``) only
replaces samplers that are *not* distributed samplers, so ours survives and Lightning still calls its
``set_epoch``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank ``r`` of ``W`` gets indices ``r, r + W, r + 2W, ...``: every sample exactly once overall.

    Args:
        dataset: a sized dataset.
        num_replicas, rank: default to the running process group.
        shuffle, seed: shuffle the order (the same permutation on every rank, reseeded by ``set_epoch``).
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        length = len(dataset)  # type: ignore[arg-type]
        self.total_size = length
        self.num_samples = len(range(self.rank, length, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        length = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(length, generator=generator).tolist()
        else:
            indices = list(range(length))
        return iter(indices[self.rank : length : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


def eval_sampler(dataset: Dataset) -> UnpaddedDistributedSampler | None:
    """The sampler for an evaluation loader: unpadded under DDP, None (sequential) otherwise.

    When the set is smaller than the number of processes some rank would get no sample, run no
    ``validation_step`` and then miss the collective reductions at epoch end (a hang). In that case
    this returns None, so Lightning falls back to its padded ``DistributedSampler``, and warns that the
    metrics count some samples twice.
    """
    running = dist.is_available() and dist.is_initialized()
    if not running or dist.get_world_size() < 2 or not isinstance(dataset, Sized):
        return None
    replicas = dist.get_world_size()
    if len(dataset) < replicas:
        warnings.warn(
            f"evaluation set of {len(dataset)} sample(s) is smaller than the {replicas} processes; using the "
            "padded DistributedSampler, so some samples are counted twice in the reduced metrics",
            stacklevel=2,
        )
        return None
    return UnpaddedDistributedSampler(dataset, num_replicas=replicas, rank=dist.get_rank())


__all__ = ["UnpaddedDistributedSampler", "eval_sampler"]
