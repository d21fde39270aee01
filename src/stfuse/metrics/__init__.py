"""Fusion metrics as ``torchmetrics.Metric`` classes, with presets for each community code base.

Quick use::

    from stfuse.metrics import FusionMetrics
    metrics = FusionMetrics(preset="cddfuse")          # EN SD SF AG MI SCD VIF Qabf SSIM MSE CC PSNR
    metrics.update(fused, ir, vi)                       # N×1×H×W floats in [0, 1] (or uint8)
    metrics.compute()                                   # {"EN": tensor(6.8), ...}

    from stfuse.metrics import MetricSuite              # the same values, no torchmetrics state
    MetricSuite("cddfuse")(fused, ir, vi)               # {"EN": tensor([...]), ...} per image

See docs/metrics.md for the definitions, the presets and the verification against reference values.
Every metric is one definition in :mod:`stfuse.metrics.registry`; its class, its place in
:class:`MetricSuite` and ``FusionMetrics`` and its export here follow from it. Names load on first use:
the metric names (:mod:`stfuse.metrics.registry`) need neither torch nor torchmetrics, and
:class:`MetricSuite` needs no torchmetrics.
"""

from __future__ import annotations

from stfuse.metrics.registry import METRICS as _DEFINITIONS  # torch-free
from stfuse.utils.lazy import lazy_exports

_EXPORTS = {
    "FusionMetric": "stfuse.metrics.base",
    "FusionMetrics": "stfuse.metrics.collection",
    "METRIC_FACTORIES": "stfuse.metrics.collection",
    "build_metric": "stfuse.metrics.collection",
    "LOWER_IS_BETTER": "stfuse.metrics.registry",
    "METRICS": "stfuse.metrics.registry",
    "METRIC_NAMES": "stfuse.metrics.registry",
    "MetricDefinition": "stfuse.metrics.registry",
    "canonical_metric_name": "stfuse.metrics.registry",
    "resolve_metric_names": "stfuse.metrics.registry",
    "METRIC_PRESETS": "stfuse.metrics.presets",
    "MetricPreset": "stfuse.metrics.presets",
    "get_preset": "stfuse.metrics.presets",
    "FusionBatch": "stfuse.metrics.inputs",
    "prepare_batch": "stfuse.metrics.inputs",
    "to_gray_255": "stfuse.metrics.inputs",
    "MetricSuite": "stfuse.metrics.suite",
}
# every metric's class (ENMetric, ..., FMIMetric, ..., PSNRMetric), from its definition
_EXPORTS.update({definition.class_name: "stfuse.metrics.classes" for definition in _DEFINITIONS.values()})

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
