"""Fusion metrics as ``torchmetrics.Metric`` classes, with presets for each community code base.

Quick use::

    from stfuse.metrics import FusionMetrics
    metrics = FusionMetrics(preset="cddfuse")          # EN SD SF AG MI SCD VIF Qabf SSIM MSE CC PSNR
    metrics.update(fused, ir, vi)                       # N×1×H×W floats in [0, 1] (or uint8)
    metrics.compute()                                   # {"EN": tensor(6.8), ...}

See docs/metrics.md for the definitions, the presets and the verification against reference values.
"""

from stfuse.metrics.base import FusionMetric
from stfuse.metrics.collection import (
    LOWER_IS_BETTER,
    METRICS,
    FusionMetrics,
    build_metric,
    canonical_metric_name,
    resolve_metric_names,
)
from stfuse.metrics.edge import NabfMetric, QabfMetric
from stfuse.metrics.error import MSEMetric, PSNRMetric
from stfuse.metrics.fmi import FMIMetric
from stfuse.metrics.gradient import AGMetric, SFMetric
from stfuse.metrics.information import ENMetric, MIMetric
from stfuse.metrics.inputs import FusionBatch, prepare_batch, to_gray_255
from stfuse.metrics.presets import PRESETS, MetricPreset, get_preset
from stfuse.metrics.ssim import MSSSIMMetric, SSIMMetric
from stfuse.metrics.statistics import CCMetric, SCDMetric, SDMetric
from stfuse.metrics.vif import VIFMetric

__all__ = [
    "AGMetric",
    "CCMetric",
    "ENMetric",
    "FMIMetric",
    "FusionBatch",
    "FusionMetric",
    "FusionMetrics",
    "LOWER_IS_BETTER",
    "METRICS",
    "MIMetric",
    "MSEMetric",
    "MSSSIMMetric",
    "MetricPreset",
    "NabfMetric",
    "PRESETS",
    "PSNRMetric",
    "QabfMetric",
    "SCDMetric",
    "SDMetric",
    "SFMetric",
    "SSIMMetric",
    "VIFMetric",
    "build_metric",
    "canonical_metric_name",
    "get_preset",
    "prepare_batch",
    "resolve_metric_names",
    "to_gray_255",
]
