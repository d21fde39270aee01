"""``stfuse predict`` output: a callback that writes each fused image as it is produced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from data_modules.io import merge_y_cbcr, write_image


class FusedImageWriter(BasePredictionWriter):
    """Write ``predict_step`` outputs to ``output_dir/<name>.<ext>`` atomically, on every rank.

    Colour is restored from the visible image's chroma unless ``gray`` is set. Each rank writes only
    the samples it predicted, so DDP prediction writes every image exactly once.
    """

    def __init__(
        self, output_dir: str, gray: bool = False, extension: str = "png", bit_depth: int = 8
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.gray = gray
        self.extension = extension.lstrip(".")
        self.bit_depth = bit_depth

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        fused = prediction["fused"].float().cpu()  # N×1×H×W
        cbcr = prediction.get("vi_cbcr")
        names = prediction.get("name") or [f"{batch_idx:06d}_{i}" for i in range(fused.shape[0])]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            image = fused[i]
            if not self.gray and cbcr is not None:
                image = merge_y_cbcr(image[None], cbcr[i : i + 1].float().cpu())[0]
            write_image(self.output_dir / f"{name}.{self.extension}", image, bit_depth=self.bit_depth)
