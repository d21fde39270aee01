"""One ``torchmetrics.Metric`` class per fusion metric: thin wrappers that keep per-image values (see
:class:`~stfuse.metrics.base.FusionMetric`) around the value functions of each family module, listed in
:data:`stfuse.metrics.suite.DEFINITIONS`."""

from __future__ import annotations

from typing import Any

import torch

from stfuse.metrics.base import FusionMetric
from stfuse.metrics.fmi import FMI_FEATURES
from stfuse.metrics.inputs import FusionBatch
from stfuse.metrics.presets import MetricPreset
from stfuse.metrics.registry import METRICS
from stfuse.metrics.suite import DEFINITIONS


class _DefinedMetric(FusionMetric):
    """A metric whose values and preset check come from ``DEFINITIONS[name]``, and its flags from the registry."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        info = METRICS[cls.name]
        cls.higher_is_better = info.higher_is_better
        cls.needs_sources = info.needs_sources

    def _check_preset(self) -> None:
        check = DEFINITIONS[self.name].check
        if check is not None:
            check(self.preset)

    def values_for(self, batch: FusionBatch) -> torch.Tensor:
        return DEFINITIONS[self.name].values(batch, self.preset)


class ENMetric(_DefinedMetric):
    """Entropy of the fused image, in bits (all presets)."""

    name = "EN"


class SDMetric(_DefinedMetric):
    """Population standard deviation of F on 0–255 (all presets; :func:`~stfuse.metrics.statistics.sd_values`)."""

    name = "SD"


class SFMetric(_DefinedMetric):
    """Spatial frequency of F (preset conventions in :mod:`stfuse.metrics.gradient`)."""

    name = "SF"


class AGMetric(_DefinedMetric):
    """Average gradient of F on 0–255 (preset conventions in :mod:`stfuse.metrics.gradient`)."""

    name = "AG"


class MIMetric(_DefinedMetric):
    """MI(F, A) + MI(F, B) from 256-level joint histograms; nats, or bits for the Tang presets."""

    name = "MI"


class FMIMetric(FusionMetric):
    """Fast-FMI over 3×3 windows with ``feature`` "pixel" or "gradient" (:mod:`stfuse.metrics.fmi`)."""

    name = "FMI"

    def __init__(
        self, preset: str | MetricPreset = "cddfuse", *, feature: str = "pixel", **kwargs: Any
    ) -> None:
        if feature not in FMI_FEATURES:
            raise ValueError(f"unknown FMI feature {feature!r}; choose one of {', '.join(FMI_FEATURES)}")
        self.feature = feature
        super().__init__(preset, **kwargs)

    def _check_preset(self) -> None:
        DEFINITIONS[f"FMI_{self.feature}"].check(self.preset)  # type: ignore[misc]

    def values_for(self, batch: FusionBatch) -> torch.Tensor:
        return DEFINITIONS[f"FMI_{self.feature}"].values(batch, self.preset)


class SCDMetric(_DefinedMetric):
    """corr(A, F − B) + corr(B, F − A): how much of each source the fused image holds beyond the other."""

    name = "SCD"


class VIFMetric(_DefinedMetric):
    """VIFp(A→F) + VIFp(B→F) (:mod:`stfuse.metrics.vif`). Needs images of at least 41×41 pixels."""

    name = "VIF"


class QabfMetric(_DefinedMetric):
    """Xydeas–Petrović Q^{AB/F} (:mod:`stfuse.metrics.edge` for the conventions kept)."""

    name = "Qabf"


class NabfMetric(_DefinedMetric):
    """Kumar's N^{AB/F} artefact measure; lower is better (:mod:`stfuse.metrics.edge`)."""

    name = "Nabf"


class SSIMMetric(_DefinedMetric):
    """SSIM(F, A) + SSIM(F, B) with the preset's window and data range (:mod:`stfuse.metrics.ssim`)."""

    name = "SSIM"


class MSSSIMMetric(_DefinedMetric):
    """MS-SSIM(F, A) + MS-SSIM(F, B), Wang et al.'s five-scale form (:mod:`stfuse.metrics.ssim`)."""

    name = "MS_SSIM"


class MSEMetric(_DefinedMetric):
    """½(MSE(A, F) + MSE(B, F)); 0–255 units except the Tang presets (0–1 units)."""

    name = "MSE"


class CCMetric(_DefinedMetric):
    """½·(corr(A, F) + corr(B, F)), Pearson over all pixels."""

    name = "CC"


class PSNRMetric(_DefinedMetric):
    """PSNR of F against both sources, with the preset's peak and MSE form (:mod:`stfuse.metrics.error`)."""

    name = "PSNR"


def defined_metric_class(name: str) -> type[FusionMetric]:
    """A metric class for a registered definition that has no class of its own (the class adds nothing)."""
    return type(f"{name}Metric", (_DefinedMetric,), {"name": name, "__module__": __name__})
