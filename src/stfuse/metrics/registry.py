"""Metric names: the canonical list in table order, aliases, and which metrics a preset defines.

Deliberately free of torch and torchmetrics, so command-line parsers and report writers can use the
names without paying for those imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stfuse.metrics.presets import MetricPreset, get_preset


@dataclass(frozen=True)
class MetricInfo:
    """What every layer needs to know about a metric without computing it."""

    name: str
    #: False where a smaller value is better (marks the best entry of a table, sets torchmetrics' flag)
    higher_is_better: bool = True
    #: False for metrics of the fused image alone
    needs_sources: bool = True


#: Every metric by its canonical name, in table order: the one list that adds a metric.
METRICS: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        MetricInfo("EN", needs_sources=False),
        MetricInfo("SD", needs_sources=False),
        MetricInfo("SF", needs_sources=False),
        MetricInfo("AG", needs_sources=False),
        MetricInfo("MI"),
        MetricInfo("FMI_pixel"),
        MetricInfo("FMI_gradient"),
        MetricInfo("SCD"),
        MetricInfo("VIF"),
        MetricInfo("Qabf"),
        MetricInfo("Nabf", higher_is_better=False),
        MetricInfo("SSIM"),
        MetricInfo("MS_SSIM"),
        MetricInfo("MSE", higher_is_better=False),
        MetricInfo("CC"),
        MetricInfo("PSNR"),
    )
}

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)

#: Metrics for which a smaller value is better, from each metric's ``higher_is_better``.
LOWER_IS_BETTER: frozenset[str] = frozenset(
    name for name, info in METRICS.items() if not info.higher_is_better
)

#: Metrics of the fused image alone; every other one compares it with the sources.
NO_REFERENCE: frozenset[str] = frozenset(name for name, info in METRICS.items() if not info.needs_sources)

_ALIASES = {"FMI": "FMI_pixel", "MS-SSIM": "MS_SSIM", "MSSSIM": "MS_SSIM", "VIFF": "VIF", "QABF": "Qabf"}
_BY_LOWER = {name.lower(): name for name in METRIC_NAMES} | {k.lower(): v for k, v in _ALIASES.items()}


def canonical_metric_name(name: str) -> str:
    """The registry name for ``name`` (case-insensitive; FMI → FMI_pixel, MS-SSIM → MS_SSIM, VIFF → VIF)."""
    try:
        return _BY_LOWER[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)}") from None


def defined_by(name: str, preset: MetricPreset) -> bool:
    """Whether ``preset`` defines the metric ``name`` (canonical)."""
    if name == "SSIM":
        return preset.ssim_variant is not None
    if name == "MS_SSIM":
        return preset.ms_ssim_supported
    if name.startswith("FMI_"):
        return name.removeprefix("FMI_") in preset.fmi_features
    return True


def resolve_metric_names(
    metrics: str | Iterable[str] | None, preset: str | MetricPreset = "cddfuse"
) -> list[str]:
    """Canonical names for a list, a comma-separated string, "all" (every metric the preset defines) or
    None (the preset's default table)."""
    spec = get_preset(preset)
    if metrics is None:
        return list(spec.default_metrics)
    if isinstance(metrics, str):
        if metrics.strip().lower() == "all":
            return [name for name in METRIC_NAMES if defined_by(name, spec)]
        metrics = [part for part in metrics.split(",") if part.strip()]
    names: list[str] = []
    for name in metrics:
        canonical = canonical_metric_name(name)
        if canonical not in names:
            names.append(canonical)
    if not names:
        raise ValueError("no metrics selected")
    return names
