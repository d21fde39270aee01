"""The metrics as plain functions of a converted batch, and :class:`MetricSuite`, which computes a preset's
set of them without ``torchmetrics``.

Every metric is one :class:`~stfuse.metrics.registry.MetricDefinition` (:mod:`stfuse.metrics.registry`):
its per-image value function ``values(batch, preset)`` (defined in its family module) and the check that a
preset defines it. The ``torchmetrics`` classes (:mod:`stfuse.metrics.classes`) and :class:`MetricSuite`
both call these functions, so Lightning validation and ``stfuse evaluate`` report the same numbers; the suite skips
the ``torchmetrics`` import (about a second of start-up) and its per-metric state, which is what a
command that scores a folder once needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from stfuse.metrics.colour import colour_convention
from stfuse.metrics.presets import MetricPreset, get_preset
from stfuse.metrics.registry import METRICS, MetricDefinition, resolve_metric_names

__all__ = ["DEFINITIONS", "MetricDefinition", "MetricSuite"]

#: Every metric's definition by its canonical name, in table order (the registry itself).
DEFINITIONS: dict[str, MetricDefinition] = METRICS


class MetricSuite:
    """The metrics of one preset as a function of a batch: ``suite(fused, ir, vi)`` returns
    ``{name: per-image values}`` (float64, N), the values :class:`~stfuse.metrics.FusionMetrics` would
    store for the same batch.

    Inputs follow :func:`~stfuse.metrics.prepare_batch` (N×C×H×W, float in [0, ``data_range``] or uint8),
    or a converted :class:`~stfuse.metrics.FusionBatch`. The suite holds no state, so threads may call
    one suite concurrently on different batches.
    """

    def __init__(
        self,
        preset: str | MetricPreset = "cddfuse",
        metrics: str | Sequence[str] | None = None,
        *,
        data_range: float = 1.0,
        quantize: bool | None = None,
    ) -> None:
        self.preset = get_preset(preset)
        self.metric_names = resolve_metric_names(metrics, self.preset)
        self.data_range = float(data_range)
        self.quantize = self.preset.quantize if quantize is None else bool(quantize)
        self.convention = colour_convention(self.preset)
        self.definitions = [METRICS[name] for name in self.metric_names]
        for definition in self.definitions:
            definition.check(self.preset)

    def prepare(self, fused: Any, ir: torch.Tensor | None = None, vi: torch.Tensor | None = None) -> Any:
        """The converted batch every metric of the suite reads (under the preset's colour convention)."""
        batch = self.convention.prepare(fused, ir, vi, data_range=self.data_range, quantize=self.quantize)
        if batch.ir is None:
            needing = [d.name for d in self.definitions if d.needs_sources]
            if needing:
                raise ValueError(
                    f"metrics {', '.join(needing)} compare with the sources: pass fused, ir and vi"
                )
        return batch

    def __call__(
        self, fused: Any, ir: torch.Tensor | None = None, vi: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        batch = self.prepare(fused, ir, vi)
        values: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for definition in self.definitions:
                result = self.convention.values(definition, self.preset, batch)
                values[definition.name] = result.to(torch.float64).reshape(-1)
        return values
