"""``FusionMetrics``: the fusion metrics of one preset as a ``torchmetrics.MetricCollection``.

Used by the Lightning stages (``self.val_metrics = FusionMetrics(...)``; ``update(fused, ir, vi)`` per
batch on the module's device; ``compute()`` at epoch end) and by ``stfuse evaluate``, so both report the
same numbers for the same images. Inputs are converted once per batch and shared by every metric.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torchmetrics import MetricCollection

from stfuse.metrics.base import FusionMetric
from stfuse.metrics.classes import METRIC_CLASSES, OptionMetric
from stfuse.metrics.colour import colour_convention
from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset, get_preset
from stfuse.metrics.registry import METRICS as DEFINITIONS
from stfuse.metrics.registry import MetricDefinition, canonical_metric_name, resolve_metric_names


def _factory(definition: MetricDefinition) -> Callable[..., FusionMetric]:
    cls = METRIC_CLASSES[definition.class_name]
    if issubclass(cls, OptionMetric):
        return functools.partial(cls, **dict(definition.options))
    return cls


#: Every metric class (or, for a class shared by several definitions, its factory with the option bound)
#: by its canonical name, in table order.
METRIC_FACTORIES: dict[str, Callable[..., FusionMetric]] = {
    name: _factory(definition) for name, definition in DEFINITIONS.items()
}


def build_metric(name: str, preset: str | MetricPreset = "cddfuse", **kwargs: object) -> FusionMetric:
    """One metric by name, e.g. ``build_metric("Qabf", "tang")``."""
    return METRIC_FACTORIES[canonical_metric_name(name)](preset, **kwargs)


class FusionMetrics(MetricCollection):
    """A set of fusion metrics under one preset.

    ``update(fused, ir, vi)`` takes N×C×H×W tensors (C = 1 or 3; float in [0, data_range] or uint8),
    ``compute()`` returns ``{name: mean}``, ``compute_per_image()`` ``{name: values}``. Names keep the
    optional ``prefix``/``postfix`` as in any ``MetricCollection``.
    """

    def __init__(
        self,
        preset: str | MetricPreset = "cddfuse",
        metrics: str | Sequence[str] | None = None,
        *,
        data_range: float = 1.0,
        quantize: bool | None = None,
        prefix: str | None = None,
        postfix: str | None = None,
    ) -> None:
        spec = get_preset(preset)
        names = resolve_metric_names(metrics, spec)
        built = {name: build_metric(name, spec, data_range=data_range, quantize=quantize) for name in names}
        # Compute groups would merge metrics whose first values happen to coincide; they never share state.
        super().__init__(built, prefix=prefix, postfix=postfix, compute_groups=False)
        self.preset = spec
        self.data_range = float(data_range)
        self.quantize = spec.quantize if quantize is None else bool(quantize)
        self.metric_names = names

    def update(  # type: ignore[override]
        self,
        fused: torch.Tensor | FusionBatch,
        ir: torch.Tensor | None = None,
        vi: torch.Tensor | None = None,
    ) -> None:
        """Convert the batch once, then update every metric with it."""
        batch = colour_convention(self.preset).prepare(
            fused, ir, vi, data_range=self.data_range, quantize=self.quantize
        )
        if batch.ir is None:
            needing = [name for name, m in self.items(keep_base=True, copy_state=False) if m.needs_sources]
            if needing:
                raise ValueError(
                    f"metrics {', '.join(needing)} compare with the sources: pass fused, ir and vi"
                )
        super().update(batch)

    def compute_per_image(self) -> dict[str, torch.Tensor]:
        """``{name: per-image values}`` in update order."""
        return {
            self._set_name(str(name)): metric.compute_per_image()
            for name, metric in self.items(keep_base=True, copy_state=False)
        }

    def has_updates(self) -> bool:
        """Whether any batch has been added since the last reset."""
        return any(metric.update_called for metric in self.values(copy_state=False))
