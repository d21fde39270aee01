"""Classical fusion baselines (average, maximum, Laplacian pyramid, gradient-weighted) and the two copy
baselines (``copy_ir``, ``copy_vi``, also named ``ir`` and ``vi``: one source passed through) by name.

The copy rows belong in every results table: a copy of one source "wins" MI and VIF (those reward
similarity to the sources) while fusing nothing, so a model near them is a warning, not a success.

``fuse_baseline("laplacian", ir, vi)`` on N×1×H×W tensors in [0, 1]; ``BASELINES`` lists the rules.
``stfuse evaluate --baseline avg,max,laplacian`` computes their rows on the fly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stfuse.baselines.rules import (
    average_fusion,
    collapse_pyramid,
    gradient_weighted_fusion,
    laplacian_fusion,
    laplacian_pyramid,
    maximum_fusion,
)

#: name → rule(ir, vi, data_range) on tensors of one scale.
BASELINES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "average": lambda ir, vi, data_range: average_fusion(ir, vi),
    "maximum": lambda ir, vi, data_range: maximum_fusion(ir, vi),
    "laplacian": lambda ir, vi, data_range: laplacian_fusion(ir, vi),
    "gradient": gradient_weighted_fusion,
    "copy_ir": lambda ir, vi, data_range: ir.clone(),
    "copy_vi": lambda ir, vi, data_range: vi.clone(),
}

#: Metrics a baseline leaves undefined by construction: for F = A, SCD correlates F − A (all zeros) with B.
#: Their NaN is expected, not a data problem, so `stfuse evaluate` does not flag it.
UNDEFINED_BY_DESIGN: dict[str, frozenset[str]] = {
    "copy_ir": frozenset({"SCD"}),
    "copy_vi": frozenset({"SCD"}),
}

#: Short names accepted everywhere a baseline is named.
BASELINE_ALIASES: dict[str, str] = {
    "avg": "average",
    "mean": "average",
    "max": "maximum",
    "lp": "laplacian",
    "ir": "copy_ir",
    "vi": "copy_vi",
    "infrared": "copy_ir",
    "visible": "copy_vi",
}


def canonical_baseline_name(name: str) -> str:
    """The registry name for ``name`` or its alias (case-insensitive)."""
    key = name.strip().lower()
    key = BASELINE_ALIASES.get(key, key)
    if key not in BASELINES:
        known = sorted(set(BASELINES) | set(BASELINE_ALIASES))
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(known)}")
    return key


def fuse_baseline(name: str, ir: torch.Tensor, vi: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Fuse ``ir`` and ``vi`` (N×C×H×W floats in [0, data_range], same shape) with the named rule.

    The result is clamped to [0, data_range]. Any H×W works, odd sizes included.
    """
    rule = BASELINES[canonical_baseline_name(name)]
    if ir.shape != vi.shape:
        raise ValueError(f"ir and vi must have the same shape, got {tuple(ir.shape)} and {tuple(vi.shape)}")
    if ir.ndim != 4:
        raise ValueError(f"expected N×C×H×W tensors, got shape {tuple(ir.shape)}")
    if not (ir.is_floating_point() and vi.is_floating_point()):
        raise TypeError(f"baselines need floating-point tensors, got {ir.dtype} and {vi.dtype}")
    with torch.no_grad():
        return rule(ir, vi, data_range).clamp(0.0, data_range)


__all__ = [
    "BASELINES",
    "BASELINE_ALIASES",
    "UNDEFINED_BY_DESIGN",
    "average_fusion",
    "canonical_baseline_name",
    "collapse_pyramid",
    "fuse_baseline",
    "gradient_weighted_fusion",
    "laplacian_fusion",
    "laplacian_pyramid",
    "maximum_fusion",
]
