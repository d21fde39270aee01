"""The metrics as plain functions of a converted batch, and :class:`MetricSuite`, which computes a preset's
set of them without ``torchmetrics``.

Every metric is one :class:`MetricDefinition`: its per-image value function ``values(batch, preset)``
(defined in its family module) and, where a preset may leave it undefined, a check. The
``torchmetrics`` classes (:mod:`stfuse.metrics.classes`) and :class:`MetricSuite` both call these
functions, so Lightning validation and ``stfuse evaluate`` report the same numbers; the suite skips
the ``torchmetrics`` import (about a second of start-up) and its per-metric state, which is what a
command that scores a folder once needs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from stfuse.metrics.edge import nabf_values, qabf_values
from stfuse.metrics.error import mse_values, psnr_values
from stfuse.metrics.fmi import check_fmi, fmi_values
from stfuse.metrics.gradient import ag_values, sf_values
from stfuse.metrics.information import en_values, mi_values
from stfuse.metrics.inputs import FusionBatch, prepare_batch
from stfuse.metrics.presets import MetricPreset, get_preset
from stfuse.metrics.registry import METRICS, resolve_metric_names
from stfuse.metrics.ssim import check_ms_ssim, check_ssim, ms_ssim_values, ssim_values
from stfuse.metrics.statistics import cc_values, scd_values, sd_values
from stfuse.metrics.vif import vif_values
from stfuse.metrics.vifb import VIFBBatch, prepare_vifb_batch, vifb_values


@dataclass(frozen=True)
class MetricDefinition:
    """One metric: its per-image values on a converted batch, and the check that a preset defines it."""

    name: str
    values: Callable[[FusionBatch, MetricPreset], torch.Tensor]
    check: Callable[[MetricPreset], None] | None = None

    @property
    def needs_sources(self) -> bool:
        return METRICS[self.name].needs_sources

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.name].higher_is_better


#: Every metric by its canonical name, in table order (:data:`stfuse.metrics.registry.METRIC_NAMES`).
DEFINITIONS: dict[str, MetricDefinition] = {
    definition.name: definition
    for definition in (
        MetricDefinition("EN", en_values),
        MetricDefinition("SD", sd_values),
        MetricDefinition("SF", sf_values),
        MetricDefinition("AG", ag_values),
        MetricDefinition("MI", mi_values),
        MetricDefinition(
            "FMI_pixel",
            functools.partial(fmi_values, feature="pixel"),
            functools.partial(check_fmi, feature="pixel"),
        ),
        MetricDefinition(
            "FMI_gradient",
            functools.partial(fmi_values, feature="gradient"),
            functools.partial(check_fmi, feature="gradient"),
        ),
        MetricDefinition("SCD", scd_values),
        MetricDefinition("VIF", vif_values),
        MetricDefinition("Qabf", qabf_values),
        MetricDefinition("Nabf", nabf_values),
        MetricDefinition("SSIM", ssim_values, check_ssim),
        MetricDefinition("MS_SSIM", ms_ssim_values, check_ms_ssim),
        MetricDefinition("MSE", mse_values),
        MetricDefinition("CC", cc_values),
        MetricDefinition("PSNR", psnr_values),
    )
}


class _BoundMetric:
    """A definition under one preset, shaped like a metric object for :func:`~stfuse.metrics.vifb.vifb_values`."""

    def __init__(self, definition: MetricDefinition, preset: MetricPreset) -> None:
        self.name = definition.name
        self.definition = definition
        self.preset = preset

    def values_for(self, batch: FusionBatch) -> torch.Tensor:
        return self.definition.values(batch, self.preset)


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
        self._metrics = [_BoundMetric(DEFINITIONS[name], self.preset) for name in self.metric_names]
        for metric in self._metrics:
            if metric.definition.check is not None:
                metric.definition.check(self.preset)

    def prepare(
        self,
        fused: torch.Tensor | FusionBatch,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
    ) -> FusionBatch | VIFBBatch:
        """The converted batch every metric of the suite reads."""
        prepare = prepare_vifb_batch if self.preset.colour == "vifb" else prepare_batch
        batch = prepare(fused, ir, vi, data_range=self.data_range, quantize=self.quantize)
        if batch.ir is None:
            needing = [m.name for m in self._metrics if m.definition.needs_sources]
            if needing:
                raise ValueError(
                    f"metrics {', '.join(needing)} compare with the sources: pass fused, ir and vi"
                )
        return batch

    def __call__(
        self,
        fused: torch.Tensor | FusionBatch,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        batch = self.prepare(fused, ir, vi)
        values: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for metric in self._metrics:
                if isinstance(batch, VIFBBatch):
                    result = vifb_values(metric, batch)  # type: ignore[arg-type]
                else:
                    result = metric.values_for(batch)
                values[metric.name] = result.to(torch.float64).reshape(-1)
        return values
