"""LightningCLI for the two stages (``stfuse fit|validate|test|predict``).

Subclass mode: each YAML picks the stage with ``model.class_path`` and the data with
``data.class_path``. A rerun of an interrupted ``fit`` resumes from ``last.ckpt`` in the run's
checkpoint folder unless ``--ckpt_path`` says otherwise (``--auto_resume false`` turns this off).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from stfuse.stages.base import FusionStageBase


class STFuseCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--auto_resume",
            type=bool,
            default=True,
            help="resume fit from last.ckpt in the ModelCheckpoint folder when it exists",
        )

    def _pin_checkpoint_dirs(self) -> None:
        """Give every ModelCheckpoint without a dirpath ``<default_root_dir>/checkpoints``.

        Lightning's default puts checkpoints under the logger's versioned folder, which changes on
        every run; a fixed folder is what lets a rerun find ``last.ckpt`` and resume.
        """
        root = Path(self.trainer.default_root_dir)
        for callback in self.trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(root / "checkpoints")

    def before_validate(self) -> None:
        self._pin_checkpoint_dirs()

    def before_test(self) -> None:
        self._pin_checkpoint_dirs()

    def before_fit(self) -> None:
        self._pin_checkpoint_dirs()
        config = self.config_init["fit"]
        if config.get("ckpt_path") or not config.get("auto_resume", True):
            return
        for callback in self.trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath:
                last = Path(callback.dirpath) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
                if last.is_file():
                    rank_zero_info(f"Resuming from {last} (pass --auto_resume false to start afresh)")
                    config["ckpt_path"] = str(last)
                return


def run_lightning_cli(args: list[str] | None = None) -> STFuseCLI:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    return STFuseCLI(
        model_class=FusionStageBase,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
