"""Metric presets: each reproduces one community code base's conventions.

The same metric name means different numbers in different papers because the three code bases that
most papers use disagree on scales, denominators and log bases. A preset bundles those choices so a
table can say which convention its numbers follow:

* ``cddfuse`` (default): CDDFuse's Python ``utils/Evaluator.py`` (also EMMA and many others). Verified
  image by image against ``shared/data/reference``.
* ``tang``: Linfeng Tang's MATLAB toolkit (Linfeng-Tang/Evaluation-for-Image-Fusion; SeAFusion,
  PSFusion, ...) as it is since its commit of 2023-03-03: SF and Qabf on ``im2double(x)*255``, MSE,
  PSNR and Nabf on 0–1 data, MI with ``Hab.m``'s joint-histogram saturation.
* ``tang2022``: the same toolkit before 2023-03-03, for tables made with it then: SF and Qabf on 0–1
  data, SD and VIF computed on the uint8 images (MATLAB's saturating uint8 arithmetic), the same MI.
* ``vifb``: the VIFB benchmark's MATLAB metrics, including how it scores colour fused images (channel
  by channel) and converts colour sources for grey ones (:mod:`stfuse.metrics.vifb`).

Only the fields that differ between code bases live here; everything else is one shared definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

PresetName = Literal["cddfuse", "tang", "tang2022", "vifb"]


@dataclass(frozen=True)
class MetricPreset:
    """The conventions of one code base (see the module docstring and docs/metrics.md)."""

    name: str
    #: Round float inputs to 8-bit levels after scaling, as saving the fused image to PNG does.
    quantize: bool = True
    #: SF: "valid" divides each squared-difference sum by its own pair count, H·(W−1) and (H−1)·W;
    #: "pixels" divides both by H·W (VIFB).
    sf_denominator: Literal["valid", "pixels"] = "valid"
    #: Grey-level scale that SF, MSE and Nabf see: 255 for 0–255 data, 1 for Tang's ``im2double`` data
    #: (MSE and Nabf in both Tang presets, SF only in ``tang2022``).
    sf_scale: float = 255.0
    mse_scale: float = 255.0
    nabf_scale: float = 255.0
    #: Qabf's "equal strength" quirk stores g_F on this scale (Tang's 2022 code runs Qabf on 0–1 data;
    #: VIFB on 255 × the 0–255 levels).
    qabf_scale: float = 255.0
    #: Qabf arithmetic: "float32" as CDDFuse (and Tang's MATLAB on exact Sobel responses); "float64" on
    #: 255 × the levels, VIFB's ``metricsQabf`` (:func:`stfuse.metrics.edge.qabf_vifb`).
    qabf_precision: Literal["float32", "float64"] = "float32"
    #: AG: "pixels" divides the sum by H·W (numpy mean); "interior" by (H−1)(W−1) (MATLAB toolkits).
    ag_denominator: Literal["pixels", "interior"] = "pixels"
    #: MI: "nats" (natural log, scikit-learn) or "bits" (log2).
    mi_unit: Literal["nats", "bits"] = "nats"
    #: MI as Tang's ``MI_evaluation.m``: the joint histograms come from ``Hab.m``, which adds 1 to the uint8
    #: levels, so 255 + 1 saturates and levels 254 and 255 share a joint bin; the marginal entropies come
    #: from ``entropy()``, which keeps them apart. A quirk of that code, not a correction.
    mi_hab_saturation: bool = False
    #: SD as Tang's 2022 ``SD_evaluation.m`` on the uint8 image: F − mean and its square are uint8, so
    #: negative deviations become 0 and squares stop at 255.
    sd_uint8: bool = False
    #: VIF as Tang's 2022 ``vifp_mscale.m`` on uint8 images: at the first scale the products
    #: ``ref.*ref``, ``dist.*dist`` and ``ref.*dist`` saturate at 255.
    vif_uint8_products: bool = False
    #: SSIM: "skimage" = 7×7 uniform window, sample covariance, data_range 2 (CDDFuse);
    #: "gaussian" = 11×11 Gaussian σ 1.5, L = 255, 'valid' (VIFB); None = not defined here (Tang: MEF-SSIM).
    ssim_variant: Literal["skimage", "gaussian"] | None = "skimage"
    #: Repeat scikit-image's float32 arithmetic for the "skimage" SSIM (CDDFuse feeds it float32 images).
    ssim_float32: bool = True
    #: MS-SSIM is the standard Wang et al. form; None where the code base uses another (Tang: MEF variant).
    ms_ssim_supported: bool = True
    #: PSNR: "fused_peak" = 10·log10(max(F)²/MSE) (CDDFuse); "unit_mse" = 20·log10(255/√MSE₀₁) (Tang);
    #: "vifb_root" = 20·log10(255/√m) with m the mean of √SSE/(H·W) over both sources (VIFB's bug).
    psnr_variant: Literal["fused_peak", "unit_mse", "vifb_root"] = "fused_peak"
    #: FMI features this preset defines (Tang's "FMI_pixel" is edge-based, which is not provided).
    fmi_features: tuple[str, ...] = ("pixel", "gradient")
    #: Colour and grey conversion: "grey" converts every image to grey first (OpenCV weights, rounded;
    #: CDDFuse's reader); "vifb" keeps the channels and follows VIFB (colour fused images scored per
    #: channel, colour sources of grey ones through MATLAB's rgb2gray; :mod:`stfuse.metrics.vifb`).
    colour: Literal["grey", "vifb"] = "grey"
    #: Metrics in this code base's table beyond those every table has (``in_default_table`` of each
    #: definition in :mod:`stfuse.metrics.registry`): the table ``FusionMetrics`` computes when no list
    #: is given is the metrics the preset defines of either kind, in table order.
    table_extras: tuple[str, ...] = ()


#: Tang's toolkit as it is since its commit of 2023-03-03 (docs/metrics.md lists each convention).
_TANG = MetricPreset(
    name="tang",
    mse_scale=1.0,
    nabf_scale=1.0,
    ag_denominator="interior",
    mi_unit="bits",
    mi_hab_saturation=True,
    ssim_variant=None,
    ms_ssim_supported=False,
    psnr_variant="unit_mse",
    fmi_features=(),
    table_extras=("Nabf",),
)


#: The metric conventions by name (``stfuse evaluate --preset``, ``FusionMetrics(preset=...)``).
METRIC_PRESETS: dict[str, MetricPreset] = {
    "cddfuse": MetricPreset(name="cddfuse"),
    "tang": _TANG,
    "tang2022": replace(
        _TANG, name="tang2022", sf_scale=1.0, qabf_scale=1.0, sd_uint8=True, vif_uint8_products=True
    ),
    "vifb": MetricPreset(
        name="vifb",
        sf_denominator="pixels",
        ag_denominator="interior",
        qabf_scale=255.0 * 255.0,
        qabf_precision="float64",
        ssim_variant="gaussian",
        psnr_variant="vifb_root",
        colour="vifb",
    ),
}


#: Why a preset leaves a metric undefined (a message for the user), or None where it defines it: the
#: ``refusal`` of a metric's definition (:mod:`stfuse.metrics.registry`).
Refusal = Callable[[MetricPreset], "str | None"]


def always_defined(preset: MetricPreset) -> str | None:
    """The refusal of a metric that every preset defines: none."""
    return None


def ssim_refusal(preset: MetricPreset) -> str | None:
    """Why ``preset`` does not define SSIM as implemented here, or None."""
    if preset.ssim_variant is not None:
        return None
    return (
        f"preset {preset.name!r} defines SSIM as MEF-SSIM (Ma et al. 2015), which stfuse does "
        "not implement; use preset 'cddfuse' or 'vifb' for SSIM"
    )


def ms_ssim_refusal(preset: MetricPreset) -> str | None:
    """Why ``preset`` does not define the standard MS-SSIM, or None."""
    if preset.ms_ssim_supported:
        return None
    return (
        f"preset {preset.name!r} reports a multi-exposure (MEF) MS-SSIM, which stfuse does not "
        "implement; use preset 'cddfuse' or 'vifb' for the standard MS-SSIM"
    )


def fmi_refusal(feature: str) -> Refusal:
    """The refusal of FMI with ``feature`` features, for presets whose FMI is another one."""

    def refusal(preset: MetricPreset) -> str | None:
        if feature in preset.fmi_features:
            return None
        return (
            f"preset {preset.name!r} does not define FMI with {feature} features (Tang's "
            "'FMI_pixel' is computed on edge maps, which stfuse does not provide); use preset 'cddfuse'"
        )

    return refusal


def get_preset(preset: str | MetricPreset) -> MetricPreset:
    """The preset called ``preset`` (a :class:`MetricPreset` passes through)."""
    if isinstance(preset, MetricPreset):
        return preset
    try:
        return METRIC_PRESETS[preset]
    except KeyError:
        raise ValueError(
            f"unknown metric preset {preset!r}; choose one of {', '.join(METRIC_PRESETS)}"
        ) from None
