"""The colour conventions by name: a preset's ``colour`` field picks how its metrics see the images.

* ``"grey"`` (:class:`~stfuse.metrics.inputs.GreyFirst`): every image becomes grey first (OpenCV's
  weights, rounded), as CDDFuse's reader and Tang's ``rgb2gray`` driver do;
* ``"vifb"`` (:class:`~stfuse.metrics.vifb.VIFBChannels`): images keep their channels and each metric is
  scored the way VIFB's MATLAB code scores it.

``FusionMetric``, ``FusionMetrics``, ``MetricSuite`` and ``stfuse evaluate`` all ask
:func:`colour_convention` and never branch on a preset's name.
"""

from __future__ import annotations

from stfuse.metrics.inputs import ColourConvention, GreyFirst
from stfuse.metrics.presets import MetricPreset
from stfuse.metrics.vifb import VIFBChannels

#: Every colour convention by the name a preset's ``colour`` field holds.
COLOUR_CONVENTIONS: dict[str, ColourConvention] = {"grey": GreyFirst(), "vifb": VIFBChannels()}


def colour_convention(preset: MetricPreset) -> ColourConvention:
    """The convention ``preset.colour`` names."""
    try:
        return COLOUR_CONVENTIONS[preset.colour]
    except KeyError:
        raise ValueError(
            f"preset {preset.name!r}: unknown colour convention {preset.colour!r}; "
            f"choose one of {', '.join(COLOUR_CONVENTIONS)}"
        ) from None
