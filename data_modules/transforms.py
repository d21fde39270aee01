"""Paired augmentation for IVIF training, and the DataLoader worker seeding both data modules use.

albumentations' ``additional_targets`` would apply the same noise and colour changes to both images, which
would teach the network that infrared and visible intensities move together. So one *geometric* pipeline
(pad, crop, flips, rot90) is applied to all members of a pair at once, keeping them pixel-aligned, and
then an independent *photometric* pipeline to each modality.

albumentations' ``Compose`` owns its random generator (global seeds do not reach it), and a DataLoader
copies the dataset into every worker with the same generator state, so every worker would draw the same
augmentations. :class:`WorkerSeeder` reseeds each worker from PyTorch's per-worker seed, which differs per
worker, rank and epoch, and is reproducible from the DataLoader's generator.
"""

from __future__ import annotations

import os
import random

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import ConcatDataset, Dataset, Subset, get_worker_info  # noqa: E402

from data_modules.paired import PairArrays  # noqa: E402


def _seeds(entropy: int | list[int], count: int) -> list[int]:
    """``count`` independent 32-bit seeds from non-negative integer entropy."""
    values = [entropy] if isinstance(entropy, int) else entropy
    return [int(s) for s in np.random.SeedSequence([int(v) % 2**63 for v in values]).generate_state(count)]


class PairedAugmentation:
    """Random crop (reflect-padded when the image is smaller), flips and rot90 shared by the pair; then
    independent brightness/contrast, gamma and Gaussian noise for infrared and for visible.

    Works on :data:`~data_modules.paired.PairArrays`; extra keys (labels, masks) follow the geometry with
    nearest-neighbour semantics and get no photometric change.
    """

    def __init__(
        self,
        crop_size: int = 128,
        flips: bool = True,
        rotate90: bool = True,
        photometric: bool = True,
        brightness: float = 0.1,
        contrast: float = 0.2,
        gamma: tuple[float, float] = (0.8, 1.25),
        noise_std: float = 0.02,
        photometric_p: float = 0.5,
        seed: int = 0,
    ) -> None:
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.crop_size = crop_size
        geometric = [
            A.PadIfNeeded(min_height=crop_size, min_width=crop_size, border_mode=cv2.BORDER_REFLECT_101),
            A.RandomCrop(height=crop_size, width=crop_size),
        ]
        if flips:
            geometric += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
        if rotate90:
            geometric.append(A.RandomRotate90(p=1.0))
        self._geometric_steps = geometric
        self._geometric_cache: dict[tuple[str, ...], A.Compose] = {}
        self.photometric_ir = self._photometric(
            photometric, brightness, contrast, gamma, noise_std, photometric_p
        )
        self.photometric_vi = self._photometric(
            photometric, brightness, contrast, gamma, noise_std, photometric_p
        )
        self.reseed(seed)

    @staticmethod
    def _photometric(
        enabled: bool,
        brightness: float,
        contrast: float,
        gamma: tuple[float, float],
        noise_std: float,
        p: float,
    ) -> A.Compose | None:
        if not enabled:
            return None
        steps: list[A.BasicTransform] = [
            A.RandomBrightnessContrast(brightness_limit=brightness, contrast_limit=contrast, p=p),
            A.RandomGamma(gamma_limit=(gamma[0] * 100.0, gamma[1] * 100.0), p=p),
        ]
        if noise_std > 0:
            steps.append(A.GaussNoise(std_range=(0.0, noise_std), p=p))
        return A.Compose(steps)

    def _geometric_for(self, extra_keys: tuple[str, ...]) -> A.Compose:
        """One Compose per set of extra keys (``additional_targets`` is fixed at construction)."""
        if extra_keys not in self._geometric_cache:
            targets = {"vi": "image", **{key: "mask" for key in extra_keys}}
            compose = A.Compose(self._geometric_steps, additional_targets=targets)
            compose.set_random_seed(self._geometric_seed)
            self._geometric_cache[extra_keys] = compose
        return self._geometric_cache[extra_keys]

    def reseed(self, seed: int) -> None:
        """Reseed all pipelines (distinct streams derived from ``seed``)."""
        geometric_seed, ir_seed, vi_seed = _seeds(seed, 3)
        self._geometric_seed = geometric_seed
        for compose in self._geometric_cache.values():
            compose.set_random_seed(geometric_seed)
        if self.photometric_ir is not None:
            self.photometric_ir.set_random_seed(ir_seed)
        if self.photometric_vi is not None:
            self.photometric_vi.set_random_seed(vi_seed)

    def geometric(self, arrays: PairArrays) -> PairArrays:
        """Apply only the shared geometric pipeline."""
        extra_keys = tuple(sorted(key for key in arrays if key not in ("ir", "vi")))
        result = self._geometric_for(extra_keys)(
            image=arrays["ir"], vi=arrays["vi"], **{k: arrays[k] for k in extra_keys}
        )
        out: PairArrays = {"ir": _with_channels(result["image"]), "vi": _with_channels(result["vi"])}
        for key in extra_keys:
            out[key] = result[key]
        return out

    def __call__(self, arrays: PairArrays) -> PairArrays:
        out = self.geometric(arrays)
        if self.photometric_ir is not None:
            out["ir"] = np.clip(_with_channels(self.photometric_ir(image=out["ir"])["image"]), 0.0, 1.0)
        if self.photometric_vi is not None:
            out["vi"] = np.clip(_with_channels(self.photometric_vi(image=out["vi"])["image"]), 0.0, 1.0)
        return out


def _with_channels(array: np.ndarray) -> np.ndarray:
    return array[:, :, None] if array.ndim == 2 else array


def reseed_dataset(dataset: Dataset, seed: int) -> int:
    """Call ``reseed`` on every dataset with one inside ``dataset`` (through Concat/Subset); returns the count."""
    if isinstance(dataset, ConcatDataset):
        seeds = _seeds(seed, len(dataset.datasets))
        return sum(reseed_dataset(child, child_seed) for child, child_seed in zip(dataset.datasets, seeds))
    if isinstance(dataset, Subset):
        return reseed_dataset(dataset.dataset, seed)
    reseed = getattr(dataset, "reseed", None)
    if reseed is None:
        return 0
    reseed(seed)
    return 1


class WorkerSeeder:
    """``worker_init_fn``: give each DataLoader worker its own reproducible random streams.

    PyTorch seeds worker ``k`` with ``base_seed + k``, where ``base_seed`` is drawn from the DataLoader's
    generator each epoch; mixing in the distributed ``rank`` keeps ranks apart too. The seed goes to
    Python's ``random``, NumPy's legacy global generator and every dataset's own ``reseed``. Each worker
    runs one torch and one OpenCV thread (set elsewhere), because the workers run in parallel.
    """

    def __init__(self, rank: int = 0) -> None:
        self.rank = int(rank)

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        python_seed, numpy_seed, dataset_seed = _seeds([torch.initial_seed(), self.rank], 3)
        random.seed(python_seed)
        np.random.seed(numpy_seed)
        # No thread-pool calls here: PyTorch already runs workers on one torch thread, OpenCV is pinned to one
        # thread at import (data_modules.io), and resizing either pool in a forked child can deadlock.
        if info is not None:
            reseed_dataset(info.dataset, dataset_seed)
