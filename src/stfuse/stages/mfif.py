"""Source stage: supervised multi-focus fusion on synthesized pairs with exact ground truth."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from stfuse.losses import DecisionLoss, MFIFLoss
from stfuse.models import DEFAULT_PRESET, build_network
from stfuse.stages.base import FusionStageBase


class MFIFStage(FusionStageBase):
    """Learns complementary selection: F = Net(A, B) is pulled towards the all-in-focus G.

    Args:
        net: STFuseNet keyword arguments (``preset``, ``shared_encoder``, ``cem``, ...).
        alpha: weight of (1 − SSIM(F, G)).
        beta: weight of the Sobel-gradient L1 term.
        lambda_decision: weight of the decision loss (BCE of the ``select`` head's weight maps against the
            synthetic focus mask, :class:`stfuse.losses.DecisionLoss`); 0 turns it off (and must be 0 for a
            ``head: paint`` network).
        real_val_metrics: fusion metrics (they compare the output with the two sources, no ground truth) for
            the optional real (Lytro) validation loader; None: the ``cddfuse`` default table.
    """

    monitor = "val/psnr"
    mode = "max"

    def __init__(
        self,
        net: dict[str, Any] | None = None,
        alpha: float = 1.0,
        beta: float = 1.0,
        lambda_decision: float = 1.0,
        real_val_metrics: list[str] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 200,
        min_lr_ratio: float = 0.05,
        channels_last: bool = False,
        grid_images: int = 4,
    ) -> None:
        if not lambda_decision >= 0:
            raise ValueError(f"lambda_decision must be ≥ 0, got {lambda_decision}")
        self._net_kwargs = dict(net or {"preset": DEFAULT_PRESET})
        if real_val_metrics is None:
            from stfuse.metrics.registry import default_metric_names

            real_val_metrics = default_metric_names("cddfuse")
        self._real_val_metrics = list(real_val_metrics)
        super().__init__(lr, weight_decay, warmup_steps, min_lr_ratio, channels_last, grid_images)

    def configure_models(self) -> None:
        self.net = build_network(self._net_kwargs)
        # Store the fully resolved config so checkpoints rebuild the exact architecture.
        self.hparams["net"] = self.net.config

    def configure_losses(self) -> None:
        self.criterion = MFIFLoss(alpha=self.hparams.alpha, beta=self.hparams.beta)
        self.decision = DecisionLoss()
        if self.hparams.lambda_decision > 0 and "select" not in self.net.feature_groups():
            raise ValueError(
                "lambda_decision > 0 supervises the select head's weight maps, but the network paints its "
                "output; set net.head: select or lambda_decision: 0"
            )

    def configure_metrics(self) -> None:
        reference = MetricCollection(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
            }
        )
        self.val_metrics = reference.clone(prefix="val/")
        self.test_metrics = reference.clone(prefix="test/")
        # Built on first use: only runs with a real (Lytro-style) loader need the fusion metrics.
        self.real_val_metrics = None
        self.real_test_metrics = None

    def _real_metrics(self, split: str):
        attr = f"real_{split}_metrics"
        if getattr(self, attr) is None and self._real_val_metrics:
            from stfuse.metrics import FusionMetrics

            setattr(self, attr, FusionMetrics(metrics=self._real_val_metrics).to(self.device))
        return getattr(self, attr)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        lambda_decision = self.hparams.get("lambda_decision", 0.0)
        if lambda_decision > 0:
            fused, features = self.net(batch["a"], batch["b"], return_features=True)
            weights = features[self.net.feature_groups().index("select")]
        else:
            fused = self.net(batch["a"], batch["b"])
        terms = self.criterion(fused, batch["gt"])
        if lambda_decision > 0:
            terms["decision"] = self.decision(weights, batch["mask"], batch["a"], batch["b"])
            terms["total"] = terms["total"] + lambda_decision * terms["decision"]
        self._log_terms("train", {k: v for k, v in terms.items() if k != "total"}, batch_size=fused.shape[0])
        self.log("train/loss", terms["total"].detach(), batch_size=fused.shape[0], prog_bar=True)
        return terms["total"]

    def _evaluate(self, batch: dict[str, Any], split: str, dataloader_idx: int) -> None:
        fused = self.net(batch["a"], batch["b"])
        n = fused.shape[0]
        if "gt" in batch:
            metrics = self.val_metrics if split == "val" else self.test_metrics
            terms = self.criterion(fused, batch["gt"])
            self.log_eval_loss(split, terms["total"], n)
            metrics.update(fused.clamp(0, 1), batch["gt"])
            self.log_dict(metrics, batch_size=n, add_dataloader_idx=False)
            if split == "val":
                for i in range(n):
                    self.collect_grid_row([batch["a"][i], batch["b"][i], fused[i], batch["gt"][i]])
        else:
            metrics = self._real_metrics(split)
            if metrics is not None:
                metrics.update(fused.clamp(0, 1), batch["a"], batch["b"])

    def _log_real(self, split: str) -> None:
        metrics = getattr(self, f"real_{split}_metrics")
        if metrics is not None and metrics.has_updates():
            self.log_dict({f"{split}_real/{k}": v for k, v in metrics.compute().items()}, sync_dist=False)
            metrics.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, "val", dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_real("val")
        super().on_validation_epoch_end()

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, "test", dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._log_real("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        return {"fused": self.net(batch["a"], batch["b"]).clamp(0, 1), "name": batch.get("name")}
