"""The shared ``torchmetrics.Metric`` base for all fusion metrics.

Each metric keeps one value per image (a list state reduced with ``cat``), because fusion papers report
the mean of per-image values, not a value over pooled pixels; that also makes the result independent
of batch size and of how DDP splits the images. ``compute()`` is the mean; ``compute_per_image()`` the
values themselves.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from stfuse.metrics.inputs import FusionBatch, prepare_batch
from stfuse.metrics.presets import MetricPreset, get_preset
from stfuse.metrics.vifb import VIFBBatch, prepare_vifb_batch, vifb_values


class FusionMetric(Metric):
    """Base class: converts inputs (see :mod:`stfuse.metrics.inputs`) and stores per-image values.

    Subclasses set ``name`` and implement :meth:`values_for` on a :class:`FusionBatch`.
    """

    name: ClassVar[str] = ""
    #: Whether the metric needs the source images (False for EN, SD, SF, AG).
    needs_sources: ClassVar[bool] = True
    higher_is_better: bool | None = True
    is_differentiable: bool = False
    full_state_update: bool = False

    values: list[torch.Tensor]

    def __init__(
        self,
        preset: str | MetricPreset = "cddfuse",
        *,
        data_range: float = 1.0,
        quantize: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.preset = get_preset(preset)
        self.data_range = float(data_range)
        self.quantize = self.preset.quantize if quantize is None else bool(quantize)
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self._check_preset()

    def _check_preset(self) -> None:
        """Raise if the preset defines this metric differently from what is implemented (default: no)."""

    @abstractmethod
    def values_for(self, batch: FusionBatch) -> torch.Tensor:
        """Per-image values (float64, shape N) for one converted batch."""

    def update(
        self,
        fused: torch.Tensor | FusionBatch,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: tensors N×C×H×W (C = 1 or 3), or an already converted :class:`FusionBatch`."""
        if not self.needs_sources and not isinstance(fused, (FusionBatch, VIFBBatch)):
            ir = vi = None  # no-reference metric: convert only the fused image
        prepare = prepare_vifb_batch if self.preset.colour == "vifb" else prepare_batch
        batch = prepare(fused, ir, vi, data_range=self.data_range, quantize=self.quantize)
        if self.needs_sources:
            batch.sources()
        with torch.no_grad():
            values = vifb_values(self, batch) if isinstance(batch, VIFBBatch) else self.values_for(batch)
            self.values.append(values.to(torch.float64).reshape(-1))

    def _gathered(self) -> torch.Tensor:
        # After a DDP sync the list state has been concatenated into one tensor.
        if isinstance(self.values, list) and not self.values:
            raise RuntimeError(f"{self.name or type(self).__name__}: compute() called before any update()")
        return dim_zero_cat(self.values)

    def compute(self) -> torch.Tensor:
        """Mean over all images seen (across processes under DDP)."""
        return self._gathered().mean()

    def compute_per_image(self) -> torch.Tensor:
        """Every image's value in update order (rank by rank under DDP)."""
        with self.sync_context(should_unsync=True):
            return self._gathered().clone()
