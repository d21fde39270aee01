"""Every metric, once: one :class:`MetricDefinition` per metric in :data:`METRICS`, in table order.

Everything else is derived from these definitions: the ``torchmetrics`` classes
(:mod:`stfuse.metrics.classes`), :class:`~stfuse.metrics.suite.MetricSuite`, ``FusionMetrics``, the
package's exports, the name lists below, which metrics a preset defines and reports by default, and how
VIFB's colour convention treats each metric. Adding a metric is one entry here (its values function
lives in its family module) and a test.

Deliberately free of torch and torchmetrics, so command-line parsers and report writers can use the
names without paying for those imports: a definition names its values function as ``"module:function"``
and imports it on first use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from stfuse.metrics.presets import (
    MetricPreset,
    Refusal,
    always_defined,
    fmi_refusal,
    get_preset,
    ms_ssim_refusal,
    ssim_refusal,
)


@dataclass(frozen=True, eq=False)
class MetricDefinition:
    """One metric: its name, its values function and every fact the other layers derive from it."""

    name: str
    #: ``"module:function"`` of its per-image values ``function(batch, preset, **options) -> N`` (float64)
    #: on a :class:`~stfuse.metrics.inputs.FusionBatch` under a preset.
    values_function: str
    #: One line on what it measures: the docstring of its ``torchmetrics`` class.
    summary: str
    #: False where a smaller value is better (marks the best entry of a table, sets torchmetrics' flag).
    higher_is_better: bool = True
    #: False for metrics of the fused image alone.
    needs_sources: bool = True
    #: Other names ``--metrics`` accepts for it (case does not matter).
    aliases: tuple[str, ...] = ()
    #: Keyword arguments of the values function, and of its class where several definitions share one
    #: class (FMI's ``feature``).
    options: tuple[tuple[str, Any], ...] = ()
    #: Its ``torchmetrics`` class (default ``<name>Metric``); definitions that name one class are told
    #: apart by their one option.
    class_name: str = ""
    #: In a preset's table when no metrics are named (``MetricPreset.table_extras`` adds others).
    in_default_table: bool = True
    #: Why a preset does not define it (:func:`~stfuse.metrics.presets.always_defined` where every preset
    #: does; a preset's other views of a metric live in :mod:`stfuse.metrics.presets` too).
    refusal: Refusal = always_defined
    #: VIFB, colour fused image: "per_channel" averages the three channels' values; "side_by_side" sees
    #: them as one H×3W image (VIFB's SF indexes the H×W×3 array with two subscripts).
    vifb_colour: Literal["per_channel", "side_by_side"] = "per_channel"
    #: VIFB, grey fused image and colour sources: the ``rgb2gray`` of the uint8 source is rounded, or,
    #: where VIFB casts the sources to double first, "float".
    vifb_grey_sources: Literal["rounded", "float"] = "rounded"

    def __post_init__(self) -> None:
        if not self.class_name:
            object.__setattr__(self, "class_name", f"{self.name}Metric")

    @functools.cached_property
    def function(self) -> Callable[..., Any]:
        """The values function itself (imported on first use)."""
        module, _, attribute = self.values_function.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def values(self, batch: Any, preset: MetricPreset) -> Any:
        """Per-image values (a tensor of N) for one converted grey batch (a
        :class:`~stfuse.metrics.inputs.FusionBatch`; not imported here, as it needs torch) under ``preset``."""
        return self.function(batch, preset, **dict(self.options))

    def defined_by(self, preset: MetricPreset) -> bool:
        return self.refusal(preset) is None

    def check(self, preset: MetricPreset) -> None:
        """Raise ``ValueError`` with the reason where ``preset`` does not define this metric."""
        reason = self.refusal(preset)
        if reason is not None:
            raise ValueError(reason)


def _definitions(*definitions: MetricDefinition) -> dict[str, MetricDefinition]:
    return {definition.name: definition for definition in definitions}


_INFORMATION = "stfuse.metrics.information"
_STATISTICS = "stfuse.metrics.statistics"
_GRADIENT = "stfuse.metrics.gradient"
_EDGE = "stfuse.metrics.edge"
_SSIM = "stfuse.metrics.ssim"
_ERROR = "stfuse.metrics.error"
_FMI = "stfuse.metrics.fmi"

#: Every metric by its canonical name, in table order: the one list that adds a metric.
METRICS: dict[str, MetricDefinition] = _definitions(
    MetricDefinition(
        "EN", f"{_INFORMATION}:en_values", "Entropy of the fused image, in bits (all presets).",
        needs_sources=False,
    ),
    MetricDefinition(
        "SD", f"{_STATISTICS}:sd_values",
        "Population standard deviation of F on 0–255 (``tang2022``: its toolkit's uint8 form).",
        needs_sources=False,
    ),
    MetricDefinition(
        "SF", f"{_GRADIENT}:sf_values",
        "Spatial frequency of F (preset conventions in :mod:`stfuse.metrics.gradient`).",
        needs_sources=False, vifb_colour="side_by_side",
    ),
    MetricDefinition(
        "AG", f"{_GRADIENT}:ag_values",
        "Average gradient of F on 0–255 (preset conventions in :mod:`stfuse.metrics.gradient`).",
        needs_sources=False,
    ),
    MetricDefinition(
        "MI", f"{_INFORMATION}:mi_values",
        "MI(F, A) + MI(F, B) from 256-level joint histograms; nats, or bits for the Tang presets.",
    ),
    MetricDefinition(
        "FMI_pixel", f"{_FMI}:fmi_values",
        "Fast-FMI over 3×3 windows with ``feature`` \"pixel\" or \"gradient\" (:mod:`stfuse.metrics.fmi`).",
        aliases=("FMI",), options=(("feature", "pixel"),), class_name="FMIMetric",
        in_default_table=False, refusal=fmi_refusal("pixel"),
    ),
    MetricDefinition(
        "FMI_gradient", f"{_FMI}:fmi_values",
        "Fast-FMI over 3×3 windows on MATLAB's horizontal ``gradient`` (:mod:`stfuse.metrics.fmi`).",
        options=(("feature", "gradient"),), class_name="FMIMetric",
        in_default_table=False, refusal=fmi_refusal("gradient"),
    ),
    MetricDefinition(
        "SCD", f"{_STATISTICS}:scd_values",
        "corr(A, F − B) + corr(B, F − A): how much of each source the fused image holds beyond the other.",
    ),
    MetricDefinition(
        "VIF", "stfuse.metrics.vif:vif_values",
        "VIFp(A→F) + VIFp(B→F) (:mod:`stfuse.metrics.vif`). Needs images of at least 41×41 pixels.",
        aliases=("VIFF",),
    ),
    MetricDefinition(
        "Qabf", f"{_EDGE}:qabf_values",
        "Xydeas–Petrović Q^{AB/F} (:mod:`stfuse.metrics.edge` for the conventions kept).",
        aliases=("QABF",), vifb_grey_sources="float",
    ),
    MetricDefinition(
        "Nabf", f"{_EDGE}:nabf_values",
        "Kumar's N^{AB/F} artefact measure; lower is better (:mod:`stfuse.metrics.edge`).",
        higher_is_better=False, in_default_table=False,
    ),
    MetricDefinition(
        "SSIM", f"{_SSIM}:ssim_values",
        "SSIM(F, A) + SSIM(F, B) with the preset's window and data range (:mod:`stfuse.metrics.ssim`).",
        refusal=ssim_refusal,
    ),
    MetricDefinition(
        "MS_SSIM", f"{_SSIM}:ms_ssim_values",
        "MS-SSIM(F, A) + MS-SSIM(F, B), Wang et al.'s five-scale form (:mod:`stfuse.metrics.ssim`).",
        aliases=("MS-SSIM", "MSSSIM"), class_name="MSSSIMMetric", in_default_table=False,
        refusal=ms_ssim_refusal,
    ),
    MetricDefinition(
        "MSE", f"{_ERROR}:mse_values",
        "½(MSE(A, F) + MSE(B, F)); 0–255 units except the Tang presets (0–1 units).",
        higher_is_better=False,
    ),
    MetricDefinition(
        "CC", f"{_STATISTICS}:cc_values", "½·(corr(A, F) + corr(B, F)), Pearson over all pixels.",
    ),
    MetricDefinition(
        "PSNR", f"{_ERROR}:psnr_values",
        "PSNR of F against both sources, with the preset's peak and MSE form (:mod:`stfuse.metrics.error`).",
        vifb_grey_sources="float",
    ),
)  # fmt: skip

#: The former name of :class:`MetricDefinition` (name, ``higher_is_better``, ``needs_sources``).
MetricInfo = MetricDefinition

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)

#: Metrics for which a smaller value is better, from each metric's ``higher_is_better``.
LOWER_IS_BETTER: frozenset[str] = frozenset(
    name for name, info in METRICS.items() if not info.higher_is_better
)

#: Metrics of the fused image alone; every other one compares it with the sources.
NO_REFERENCE: frozenset[str] = frozenset(name for name, info in METRICS.items() if not info.needs_sources)

_BY_LOWER = {name.lower(): name for name in METRIC_NAMES} | {
    alias.lower(): name for name, info in METRICS.items() for alias in info.aliases
}


def canonical_metric_name(name: str) -> str:
    """The registry name for ``name`` (case-insensitive; FMI → FMI_pixel, MS-SSIM → MS_SSIM, VIFF → VIF)."""
    try:
        return _BY_LOWER[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)}") from None


def defined_by(name: str, preset: MetricPreset) -> bool:
    """Whether ``preset`` defines the metric ``name`` (canonical)."""
    return METRICS[name].defined_by(preset)


def default_metric_names(preset: str | MetricPreset = "cddfuse") -> list[str]:
    """A preset's table: the metrics it defines that are in default tables, and its ``table_extras``,
    in table order."""
    spec = get_preset(preset)
    return [
        name
        for name, info in METRICS.items()
        if info.defined_by(spec) and (info.in_default_table or name in spec.table_extras)
    ]


def resolve_metric_names(
    metrics: str | Iterable[str] | None, preset: str | MetricPreset = "cddfuse"
) -> list[str]:
    """Canonical names for a list, a comma-separated string, "all" (every metric the preset defines) or
    None (the preset's default table)."""
    spec = get_preset(preset)
    if metrics is None:
        return default_metric_names(spec)
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
