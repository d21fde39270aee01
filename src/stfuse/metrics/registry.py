"""Metric names: the canonical list in table order, aliases, and which metrics a preset defines.

Deliberately free of torch and torchmetrics, so command-line parsers and report writers can use the
names without paying for those imports.
"""

from __future__ import annotations

from collections.abc import Iterable

from stfuse.metrics.presets import MetricPreset, get_preset

#: Every metric by its canonical name, in table order.
METRIC_NAMES: tuple[str, ...] = (
    "EN", "SD", "SF", "AG", "MI", "FMI_pixel", "FMI_gradient", "SCD", "VIF", "Qabf", "Nabf", "SSIM",
    "MS_SSIM", "MSE", "CC", "PSNR",
)  # fmt: skip

#: Metrics for which a smaller value is better (for marking the best entry of a table).
LOWER_IS_BETTER: frozenset[str] = frozenset({"MSE", "Nabf"})

#: Metrics of the fused image alone; every other one compares it with the sources.
NO_REFERENCE: frozenset[str] = frozenset({"EN", "SD", "SF", "AG"})

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
