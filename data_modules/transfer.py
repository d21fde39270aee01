"""Data for the target stage: unlabeled IR/VIS batches, optionally beside replayed labeled MFIF batches."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import CombinedLoader


class TransferDataModule(pl.LightningDataModule):
    """Wraps an IVIF data module and an optional MFIF data module for replay.

    Training batches are ``{"ivif": {...}, "mfif": {...}}`` from a ``CombinedLoader`` in
    ``max_size_cycle`` mode: the epoch follows the longer loader and the shorter one cycles, so size
    the replay set (``samples_per_epoch``) to the IVIF set. Validation, test and predict use the IVIF
    data alone, so the numbers are comparable with and without replay.

    Args:
        ivif: the unlabeled IR/VIS data (an ``IVIFDataModule``).
        replay: labeled multi-focus data for the supervised replay loss; None turns replay off.
    """

    def __init__(self, ivif: pl.LightningDataModule, replay: pl.LightningDataModule | None = None) -> None:
        super().__init__()
        self.ivif = ivif
        self.replay = replay

    def prepare_data(self) -> None:
        self.ivif.prepare_data()
        if self.replay is not None:
            self.replay.prepare_data()

    def setup(self, stage: str) -> None:
        for module in (self.ivif, self.replay):
            if module is not None:
                module.trainer = self.trainer
                module.setup(stage)

    def train_dataloader(self) -> Any:
        loaders = {"ivif": self.ivif.train_dataloader()}
        if self.replay is not None:
            loaders["mfif"] = self.replay.train_dataloader()
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> Any:
        return self.ivif.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.ivif.test_dataloader()

    def predict_dataloader(self) -> Any:
        return self.ivif.predict_dataloader()
