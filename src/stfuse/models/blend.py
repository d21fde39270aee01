"""Multi-scale convex blending: the fused image as a Laplacian-pyramid blend of the two sources.

The ``select`` head of :class:`~stfuse.models.net.STFuseNet` predicts weight maps W (the weight of source A,
one map per pyramid level or one shared map) instead of painting the fused pixels. Each Laplacian level of
the result is ``W_l · L_l(A) + (1 − W_l) · L_l(B)``, with ``W_l`` the l-th level of the weight map's Gaussian
pyramid (the Burt–Adelson blend: coarse levels mix with smooth weights, so a sharp decision leaves no seam).
With W ≡ 1 the result is exactly A, with W ≡ 0 exactly B. With ``detail_weights_b`` the detail levels take
an independent weight of B (``W_l · L_l(A) + V_l · L_l(B)``), so the texture of both sources can be kept where
both carry it; the base level stays convex. With ``base="max"`` the base level is not selected by the
network but by a rule: the weight of A there is σ((G(A) − G(B)) / τ) on the two sources' coarsest Gaussian
levels, a soft "brighter source" (the target of the intensity loss) that is smooth wherever the sources'
local means are close, so it cannot flip between them in a flat region. ``base="prior"`` adds that rule's
log-odds to the log-odds of the learned base weight instead, so the network may correct the rule.
``base="salient"`` takes the source whose local mean lies farther from its own image's mean:
σ((|G(A) − μ_A| − |G(B) − μ_B|) / τ), so a dark infrared region (a cold sky, a shadow) is taken as readily as a
bright one, where "brighter source" takes the visible image. Every
operation is kornia's pyramid filter, a conv or plain tensor arithmetic, so the blend is differentiable and
runs on any device. The pyramid steps equal kornia's ``pyrdown``/``pyrup`` on the even sizes used here
(tests/test_select_head.py checks it) but trace under ``torch.compile`` with dynamic shapes. The convex blend
is computed as B plus the blend of the one map A − B (the Laplacian is linear and B's levels add up to B),
half the pyramid work; tests/test_fast_paths.py checks it against the explicit pyramids of A and B.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import filter2d

from stfuse.models.blocks import pad_to_multiple
from stfuse.models.presets import BASE_RULES

#: the default temperature τ of the ``base="max"``/``"prior"``/``"salient"`` rules (STFuseNet ``base_tau``): a base-level
#: difference of 0.1 gives the brighter source 0.88 (under ``prior``, before the learned weight shifts it)
BASE_MAX_TAU = 0.05

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
#: the 5×5 binomial (Burt–Adelson) kernel of kornia's pyramid functions, 1×5×5
PYRAMID_KERNEL = torch.outer(_BINOMIAL, _BINOMIAL)[None]
_BINOMIAL_BOX = torch.tensor([1.0, 5.0, 10.0, 10.0, 5.0, 1.0]) / 32.0  # the binomial convolved with [½, ½]
#: that blur followed by a 2×2 mean, as one 1×1×6×6 kernel (``pyr_down``)
PYRAMID_DOWN_KERNEL = torch.outer(_BINOMIAL_BOX, _BINOMIAL_BOX)[None, None]


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """kornia's ``pyrdown`` (blur, then the half-size bilinear resample, which for even H×W is a 2×2 mean) as one
    stride-2 depthwise conv with the combined 6×6 kernel on the reflect-padded map: the same values (to float
    rounding; tests/test_select_head.py compares it with kornia) at a quarter of the outputs, about five times
    faster on CPU. No size arithmetic, so ``torch.compile(dynamic=True)`` and ONNX export trace it."""
    channels = x.shape[1]
    kernel = PYRAMID_DOWN_KERNEL.to(x).expand(channels, 1, 6, 6)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, stride=2, groups=channels)


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """kornia's ``pyrup`` (bilinear ×2, then blur), written with a scale factor for the same reason."""
    up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return filter2d(up, PYRAMID_KERNEL.to(x), "reflect")


def bounded_weights(logits: torch.Tensor, bound: float) -> torch.Tensor:
    """sigmoid(bound · tanh(z / bound)): weights in [σ(−bound), σ(bound)], never exactly 0 or 1.

    The soft bound is the guard against saturation: a selection that drifts to one source keeps a gradient
    (a hard 0/1 sigmoid has none), so the gradient loss can still pull texture back from the other source.
    ``bound`` ≤ 0 disables it (a plain sigmoid).
    """
    if bound > 0:
        logits = bound * torch.tanh(logits / bound)
    return torch.sigmoid(logits)


def usable_levels(height: int, width: int, levels: int) -> int:
    """The pyramid levels an H×W image allows, at most ``levels``: its coarsest level keeps ≥ 4 pixels."""
    while levels > 1 and min(height, width) < 4 * 2 ** (levels - 1):
        levels -= 1
    return levels


def laplacian_blend(
    a: torch.Tensor,
    b: torch.Tensor,
    weights: torch.Tensor,
    levels: int,
    detail_weights_b: torch.Tensor | None = None,
    base: str = "learned",
    tau: float = BASE_MAX_TAU,
) -> torch.Tensor:
    """Blend N×1×H×W sources with N×L×H×W weights of ``a`` (L = ``levels`` per-level maps, or 1 shared).

    ``detail_weights_b`` (optional, N×(L−1)×H×W per detail level or N×1×H×W shared): the weights of ``b`` on
    the detail (Laplacian) levels, chosen independently of ``a``'s, so a level can keep the texture of both
    sources (W_A + W_B up to 2) or of neither. None: ``1 − W`` (the convex blend). The base level stays convex.

    ``base``: ``"learned"`` (the base level takes its weight map) or ``"max"`` (σ((G(A) − G(B)) / τ) on the
    coarsest Gaussian levels, τ = ``tau``; the weights' base channel is then unused) or ``"prior"``
    (σ(logit(W_base) + (G(A) − G(B)) / τ): the rule as a prior that the learned base weight shifts) or
    ``"salient"`` (σ((|G(A) − μ_A| − |G(B) − μ_B|) / τ), μ the mean of each source's coarsest level: the source
    farther from its own image's mean, dark or bright; the base channel is unused).

    Returns N×1×H×W. Any H×W: the inputs are reflect-padded to a multiple of 2^(levels−1) and cropped back;
    an image too small for ``levels`` (a coarsest level under 4 pixels) uses fewer, and its coarsest level
    takes the weight map of that level.
    """
    if levels < 1:
        raise ValueError(f"levels must be ≥ 1, got {levels}")
    if base not in BASE_RULES:
        raise ValueError(f"unknown base {base!r}; expected one of {BASE_RULES}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if weights.shape[1] not in (1, levels):
        raise ValueError(f"weights need 1 or {levels} channels (one per level), got {weights.shape[1]}")
    detail_maps = 0 if detail_weights_b is None else detail_weights_b.shape[1]
    if detail_weights_b is not None and detail_maps not in (1, levels - 1):
        raise ValueError(
            f"detail_weights_b need 1 or {levels - 1} channels (one per detail level), got {detail_maps}"
        )
    height, width = a.shape[-2:]
    levels = usable_levels(height, width, levels)
    multiple = 2 ** (levels - 1)
    # Sources and weights travel together through one pyramid (one filter call per level). The convex blend
    # W·L(A) + (1 − W)·L(B) is L(B) + W·L(A − B), and the levels of L(B) add up to B: so it blends the one
    # difference map D = A − B and adds B back at the end, half the pyramid work of blending A and B.
    convex = detail_weights_b is None
    parts = [a - b, weights] if convex else [a, b, weights, detail_weights_b]
    if convex and base == "salient":
        parts.append(b)  # the rule reads G(B) itself; it rides at the end of the stack, after the weights
    stack = pad_to_multiple(torch.cat(parts, dim=1), multiple)
    maps = 1 if convex else 2  # the source channels at the front of the stack
    per_level = weights.shape[1] > 1
    first_b = maps + weights.shape[1]
    details: list[torch.Tensor] = []
    for level in range(levels - 1):
        down = pyr_down(stack)
        detail = stack[:, :maps] - pyr_up(down[:, :maps])  # the Laplacian level of D, or of A and B
        w = stack[:, maps + level : maps + level + 1] if per_level else stack[:, maps : maps + 1]
        if convex:
            details.append(w * detail)
        else:
            index = first_b + (level if detail_maps > 1 else 0)
            details.append(w * detail[:, :1] + stack[:, index : index + 1] * detail[:, 1:2])
        stack = down
    w = stack[:, maps + levels - 1 : maps + levels] if per_level else stack[:, maps : maps + 1]
    difference = stack[:, :1] if convex else stack[:, :1] - stack[:, 1:2]  # G(A) − G(B) at the base level
    if base == "salient":
        coarse_b = stack[:, -1:] if convex else stack[:, 1:2]
        w = torch.sigmoid((_deviation(difference + coarse_b) - _deviation(coarse_b)) / tau)
    elif base != "learned":
        w = torch.sigmoid(difference / tau if base == "max" else difference / tau + torch.logit(w, eps=1e-6))
    out = w * difference if convex else w * stack[:, :1] + (1.0 - w) * stack[:, 1:2]
    for detail in reversed(details):
        out = pyr_up(out) + detail
    if convex:
        return out[..., :height, :width] + b
    return out[..., :height, :width]


def _deviation(coarse: torch.Tensor) -> torch.Tensor:
    """|G − μ|: how far each pixel of a coarsest Gaussian level lies from that level's (the image's) mean."""
    return (coarse - coarse.mean(dim=(-2, -1), keepdim=True)).abs()


def band_energy(a: torch.Tensor, b: torch.Tensor, levels: int) -> torch.Tensor:
    """N×levels×H×W: max(|L_l(A)|, |L_l(B)|), the detail either source carries in each Laplacian level l of
    :func:`laplacian_blend`'s pyramid, resized to H×W (bilinear); the base level (l = levels − 1) is 0.

    Where both are near 0 the blend weight of that level changes nothing in the image. a, b: N×1×H×W.
    """
    if levels < 1:
        raise ValueError(f"levels must be ≥ 1, got {levels}")
    height, width = a.shape[-2:]
    used = usable_levels(height, width, levels)
    stack = pad_to_multiple(torch.cat([a, b], dim=1), 2 ** (used - 1))
    size = stack.shape[-2:]
    energies: list[torch.Tensor] = []
    for level in range(used - 1):
        down = pyr_down(stack)
        band = (stack - pyr_up(down)).abs().amax(dim=1, keepdim=True)
        if level > 0:
            band = F.interpolate(band, size=size, mode="bilinear", align_corners=False)
        energies.append(band[..., :height, :width])
        stack = down
    base = a.new_zeros(a.shape[0], levels - len(energies), height, width)
    return torch.cat([*energies, base], dim=1)


__all__ = [
    "BASE_MAX_TAU",
    "PYRAMID_KERNEL",
    "band_energy",
    "bounded_weights",
    "laplacian_blend",
    "pyr_down",
    "pyr_up",
]
