"""The shared ``torchmetrics.Metric`` base for all fusion metrics.

Each metric keeps one value per image (a list state reduced with ``cat``), because fusion papers report
the mean of per-image values, not a value over pooled pixels; that also makes the result independent
of batch size and of how DDP splits the images. ``compute()`` is the mean; ``compute_per_image()`` the
values themselves.

A metric is its :class:`~stfuse.metrics.registry.MetricDefinition`: a subclass sets ``definition`` and
takes its name and flags from it (:mod:`stfuse.metrics.classes` builds one class per definition). How
the images reach it is the preset's colour convention (:mod:`stfuse.metrics.colour`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from stfuse.metrics.colour import colour_convention
from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset, get_preset
from stfuse.metrics.registry import MetricDefinition


class FusionMetric(Metric):
    """Base class: converts inputs under the preset's colour convention and stores per-image values of
    its ``definition``."""

    definition: ClassVar[MetricDefinition]
    name: ClassVar[str] = ""
    #: Whether the metric needs the source images (False for EN, SD, SF, AG).
    needs_sources: ClassVar[bool] = True
    higher_is_better: bool | None = True
    is_differentiable: bool = False
    full_state_update: bool = False

    values: list[torch.Tensor]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        definition = cls.__dict__.get("definition")
        if definition is not None:
            cls.name = cls.__dict__.get("name", definition.name)
            cls.higher_is_better = definition.higher_is_better
            cls.needs_sources = definition.needs_sources
            cls.__doc__ = cls.__doc__ or definition.summary

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
        self.convention = colour_convention(self.preset)
        self.definition.check(self.preset)

    def values_for(self, batch: FusionBatch) -> torch.Tensor:
        """Per-image values (N) on an already grey :class:`FusionBatch`, whatever the colour convention."""
        return self.definition.values(batch, self.preset)

    def update(
        self,
        fused: Any,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: tensors N×C×H×W (C = 1 or 3), or a batch its preset's convention converted."""
        if not self.needs_sources and isinstance(fused, torch.Tensor):
            ir = vi = None  # no-reference metric: convert only the fused image
        batch = self.convention.prepare(fused, ir, vi, data_range=self.data_range, quantize=self.quantize)
        if self.needs_sources:
            batch.sources()
        with torch.no_grad():
            values = self.convention.values(self.definition, self.preset, batch)
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
