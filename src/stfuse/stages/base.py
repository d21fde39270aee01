"""A small base for the two STFuse stages, in the style of torchgeo's ``BaseTask``.

Subclasses fill in ``configure_models``, ``configure_losses`` and ``configure_metrics``; the base
owns the optimiser and LR schedule, precision-friendly memory format, and image-grid logging.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from stfuse.utils.visual import make_grid, save_png
from stfuse.validation import check_positive


class FusionStageBase(pl.LightningModule, ABC):
    """Shared plumbing: hooks, AdamW + warm-up/cosine schedule, channels_last, image grids."""

    #: metric that ModelCheckpoint monitors for the "best" checkpoint, and its direction.
    monitor: str = "val/loss"
    mode: str = "min"

    def __init__(
        self,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.05,
        channels_last: bool = False,
        grid_images: int = 4,
    ) -> None:
        check_positive("lr", lr)
        check_positive("weight_decay", weight_decay, allow_zero=True)
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
        super().__init__()
        self.save_hyperparameters()
        self.net: nn.Module
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()
        # Sample-weighted epoch means of the evaluation loss, reduced as sums across ranks. Lightning's
        # own ``sync_dist`` mean divides the integer sample count by the world size in integer arithmetic,
        # which is wrong whenever ranks hold different numbers of samples (the unpadded eval sampler).
        self.eval_loss = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})
        self._grid_rows: list[list[torch.Tensor]] = []

    # ---- hooks -----------------------------------------------------------------------------
    @abstractmethod
    def configure_models(self) -> None:
        """Build ``self.net`` (and any frozen helpers)."""

    @abstractmethod
    def configure_losses(self) -> None:
        """Build the loss modules."""

    @abstractmethod
    def configure_metrics(self) -> None:
        """Build the validation/test metric collections."""

    # ---- forward / optimisation ------------------------------------------------------------
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # N×1×H×W each
        return self.net(a, b)

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warmup = max(1, int(self.hparams.warmup_steps))
        floor = self.hparams.min_lr_ratio
        total_steps: list[int] = []

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            # Read lazily: asking for estimated_stepping_batches here, in configure_optimizers, would
            # build the train loader before a resumed run restores its epoch counter.
            if not total_steps:
                total = self.trainer.estimated_stepping_batches if self._trainer is not None else warmup
                total_steps.append(max(warmup + 1, int(total) if math.isfinite(total) else 10**9))
            progress = min(1.0, (step - warmup) / max(1, total_steps[0] - warmup))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def log_eval_loss(self, split: str, value: torch.Tensor, batch_size: int) -> None:
        """Log ``{split}/loss`` as an exact per-sample mean over all ranks (see ``eval_loss``)."""
        metric = self.eval_loss[split]
        metric.update(value.detach(), weight=batch_size)
        self.log(f"{split}/loss", metric, batch_size=batch_size, add_dataloader_idx=False)

    def _log_terms(self, prefix: str, terms: dict[str, torch.Tensor], batch_size: int, **kwargs: Any) -> None:
        for name, value in terms.items():
            key = f"{prefix}/loss" if name == "total" else f"{prefix}/loss_{name}"
            self.log(key, value.detach(), batch_size=batch_size, **kwargs)

    # ---- image grids -----------------------------------------------------------------------
    def collect_grid_row(self, images: list[torch.Tensor]) -> None:
        """Keep the first ``grid_images`` rows of a validation epoch (each image C×H×W)."""
        if len(self._grid_rows) < self.hparams.grid_images:
            self._grid_rows.append([img.detach().float().cpu() for img in images])

    def on_validation_epoch_start(self) -> None:
        self._grid_rows = []

    def on_validation_epoch_end(self) -> None:
        rows, self._grid_rows = self._grid_rows, []
        if self.trainer.sanity_checking:
            return
        # Trainer.log_dir broadcasts from rank 0 under DDP: every rank must ask, though only rank 0 writes.
        root = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        if rows and self.trainer.is_global_zero:
            self.log_grid("val/grid", make_grid(rows), root)

    def log_grid(self, key: str, grid, root: Path) -> None:
        """Send an H×W×3 uint8 grid to every attached logger, and keep a PNG under ``root/images``.

        Called on rank 0 only, so ``root`` comes from the caller (see ``on_validation_epoch_end``).
        """
        step = self.global_step
        for logger in self.loggers:
            kind = type(logger).__name__
            if kind == "TensorBoardLogger":
                logger.experiment.add_image(key, grid, step, dataformats="HWC")
            elif kind == "WandbLogger":
                logger.log_image(key=key, images=[grid], step=step)
        save_png(grid, root / "images" / f"{key.replace('/', '_')}_epoch{self.current_epoch:03d}.png")
