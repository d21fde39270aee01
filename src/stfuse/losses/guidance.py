"""Guidance loss L_g: transfer the teacher's fusion *structure* while filtering out task attributes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import kornia
import torch
from torch import nn

from stfuse.losses.functional import check_same_shape, gradient_magnitude, instance_norm, local_contrast_norm
from stfuse.models.blend import band_energy

Features = Sequence[torch.Tensor]
#: how ``selection`` compares the weight maps: as they are, minus their mean, or their log-odds minus its mean
CENTERINGS = ("none", "weights", "logits")


def _feature_in(
    loss: GuidanceLoss,
    student_fused: torch.Tensor,
    teacher_fused: torch.Tensor,
    student: Features,
    teacher: Features,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Σ_l mean|IN(φ_l^S) − IN(φ_l^T)| over the network's guidance features."""
    _check_pairs(student, teacher)
    total = student_fused.new_zeros(())
    for phi_s, phi_t in zip(student, teacher):
        total = (
            total + (instance_norm(phi_s, loss.eps) - instance_norm(phi_t.detach(), loss.eps)).abs().mean()
        )
    return total


def _check_pairs(student: Features, teacher: Features) -> None:
    if len(student) != len(teacher) or not student:
        raise ValueError(
            "student and teacher must give the same non-empty number of feature maps, got "
            f"{len(student)} and {len(teacher)}"
        )
    for index, (phi_s, phi_t) in enumerate(zip(student, teacher)):
        if phi_s.shape != phi_t.shape:
            raise ValueError(
                f"feature map {index}: student {tuple(phi_s.shape)} and teacher {tuple(phi_t.shape)} differ "
                "(student and teacher need the same architecture: cem_depths, channels, downsample, head)"
            )


def _selection(
    loss: GuidanceLoss,
    student_fused: torch.Tensor,
    teacher_fused: torch.Tensor,
    student: Features,
    teacher: Features,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Σ c·|W_S − W_T| / Σ c on the ``select`` head's weight maps, with the teacher's confidence c = |2·W_T − 1|.

    The MFIF teacher's decision "which source carries the sharper structure here" is the knowledge that
    transfers; where the teacher hesitates (W_T ≈ ½: flat regions, or contrast that only IR/VIS statistics
    decide) it is an MFIF habit, not knowledge, and the student is left free.
    """
    _check_pairs(student, teacher)
    total = student_fused.new_zeros(())
    for w_s, w_t in zip(student, teacher):
        evidence = loss.detail_evidence(sources, w_s.shape[1]) if loss.detail_tau is not None else None
        if loss.levels is not None:
            if max(loss.levels) >= w_s.shape[1]:
                raise ValueError(
                    f"guidance levels {list(loss.levels)}: the weight maps have {w_s.shape[1]} level(s) "
                    "(0 = finest; one shared map has only level 0)"
                )
            w_s, w_t = w_s[:, list(loss.levels)], w_t[:, list(loss.levels)]
            evidence = None if evidence is None else evidence[:, list(loss.levels)]
        w_t = w_t.detach()
        confidence = (2.0 * w_t - 1.0).abs()
        if evidence is not None:
            confidence = confidence * evidence
        if loss.centering == "logits":  # log-odds, scaled by σ'(0) = 1/4 to the weights' scale at W = ½
            w_s = torch.logit(w_s.clamp(1e-4, 1 - 1e-4)) / 4.0
            w_t = torch.logit(w_t.clamp(1e-4, 1 - 1e-4)) / 4.0
        if loss.centering != "none":
            w_s = w_s - w_s.mean(dim=(-2, -1), keepdim=True)
            w_t = w_t - w_t.mean(dim=(-2, -1), keepdim=True)
        total = total + (confidence * (w_s - w_t).abs()).sum() / confidence.sum().clamp_min(loss.eps)
    return total


def _channel_relation(phi: torch.Tensor, eps: float) -> torch.Tensor:
    """The C×C correlation of an N×C×H×W map's instance-normalised channels (N×C×C, entries in [−1, 1])."""
    z = instance_norm(phi, eps).flatten(2)  # N×C×HW, zero mean and unit variance per channel
    return z @ z.transpose(1, 2) / z.shape[-1]


def _relation(
    loss: GuidanceLoss,
    student_fused: torch.Tensor,
    teacher_fused: torch.Tensor,
    student: Features,
    teacher: Features,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Σ_l mean|R(φ_l^S) − R(φ_l^T)| with R the channel-correlation matrix of the instance-normalised map.

    Keeps how the teacher's feature channels co-vary (which cues it combines) without pinning where each
    channel fires, so the student may move its spatial decisions to the IVIF objective.
    """
    _check_pairs(student, teacher)
    total = student_fused.new_zeros(())
    for phi_s, phi_t in zip(student, teacher):
        total = (
            total
            + (_channel_relation(phi_s, loss.eps) - _channel_relation(phi_t.detach(), loss.eps)).abs().mean()
        )
    return total


def _output_grad(
    loss: GuidanceLoss,
    student_fused: torch.Tensor,
    teacher_fused: torch.Tensor,
    student: Features,
    teacher: Features,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """mean|N(|∇F_S|) − N(|∇F_T|)| with N a local contrast normalisation."""
    check_same_shape(student_fused=student_fused, teacher_fused=teacher_fused)
    s = local_contrast_norm(gradient_magnitude(student_fused), loss.lcn_window, eps=loss.lcn_eps)
    t = local_contrast_norm(gradient_magnitude(teacher_fused.detach()), loss.lcn_window, eps=loss.lcn_eps)
    return (s - t).abs().mean()


def _none(
    loss: GuidanceLoss,
    student_fused: torch.Tensor,
    teacher_fused: torch.Tensor,
    student: Features,
    teacher: Features,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """A zero that still back-propagates (plain fine-tuning)."""
    return student_fused.new_zeros(()).requires_grad_(student_fused.requires_grad)


#: The guidance modes: the one registry that adds a mode (a function of the loss, both fused images and both
#: feature lists). The stage's ``guidance`` argument is typed from it, so ``--help`` lists the choices.
GUIDANCE_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "feature_in": _feature_in,
    "selection": _selection,
    "relation": _relation,
    "output_grad": _output_grad,
    "none": _none,
}
GUIDANCE_MODES: tuple[str, ...] = tuple(GUIDANCE_FUNCTIONS)
GuidanceMode = Literal[GUIDANCE_MODES]  # type: ignore[valid-type]

#: the feature groups a network can label its guidance features with (``STFuseNet.feature_groups``)
FEATURE_GROUPS: tuple[str, ...] = ("cem", "decoder", "head", "select", "encoder")

#: which branch's half of a two-branch map (``cem``, ``encoder``: concat(A, B)) L_g matches; the IVIF stage
#: passes the pair as (ir, vi), so ``ir`` is branch A and ``vi`` branch B
BRANCHES: tuple[str, ...] = ("both", "ir", "vi")
#: the feature groups whose maps are concat(branch A, branch B), the only ones ``branch`` can split
TWO_BRANCH_GROUPS: tuple[str, ...] = ("cem", "encoder")

#: the feature groups each mode reads when ``layers`` is not given; a mode absent here reads no feature maps
#: (it works on the fused images).
DEFAULT_LAYERS: dict[str, tuple[str, ...]] = {
    "feature_in": ("cem",),
    "selection": ("select",),
    "relation": ("cem",),
}


def _selection_only(option: str, mode: str) -> str:
    """The error for an option of the ``selection`` mode given with another mode."""
    return (
        f"{option} applies to guidance mode 'selection' only, not {mode!r}: set the mode to selection "
        "(`guidance: selection`; the recipe's mode is output_grad) or leave the option out"
    )


class GuidanceLoss(nn.Module):
    """Match the student S to the frozen MFIF teacher T on the same IVIF pair.

    Modes:
        ``feature_in``: Σ_l mean|IN(φ_l^S) − IN(φ_l^T)| over the network's guidance features.
            Instance normalisation removes each map's mean and scale (focus-blur level, modality intensity),
            so only the spatial selection structure is matched.
        ``output_grad``: mean|N(|∇F_S|) − N(|∇F_T|)| with N a local contrast normalisation; independent of
            the teacher's global brightness and contrast, which are MFIF attributes.
        ``none``: a zero that still back-propagates (plain fine-tuning).

        ``selection`` (default, the recipe's): Σ c·|W_S − W_T| / Σ c on the ``select`` head's weight maps,
            weighted by the teacher's confidence c = |2·W_T − 1| (only where the teacher is sure).
        ``relation``: mean|R(φ^S) − R(φ^T)| on the channel-correlation matrices of instance-normalised maps.

    ``layers`` picks the feature groups a feature mode reads (``cem``, ``decoder``, ``head``, ``select``,
    ``encoder``; the caller passes each feature's group). ``["cem"]`` matches only the cross-feature maps, the
    selection structure, and leaves the decoder free to render the IVIF output. ``["encoder"]`` matches only the
    shared encoder's maps of each source on its own, before the CEM lets the branches see each other: what
    the teacher extracts from an image (edges, texture, focus cues) is kept, and how it weighs IR against VIS
    is left entirely to the IVIF losses; ``None`` takes the mode's default
    (:data:`DEFAULT_LAYERS`: the CEM maps for ``feature_in``, the weights for
    ``selection``, the CEM maps for ``relation``).

    ``levels`` (``selection`` only) picks the pyramid levels whose weight maps are matched (0 = finest). ``[0, 1,
    2]`` of four leaves the base level free: in a multi-focus pair the coarse levels of both sources are
    nearly equal (blur keeps low frequencies), so the teacher's base-level decision is a habit of the MFIF task,
    while its fine-level decision (which source carries the detail) is the transferable knowledge. ``None``:
    every level.

    ``centering`` (``selection`` only) matches the *pattern* of the teacher's decision, not its overall
    balance: each map loses its own spatial mean (per image and level) before the comparison, and the
    confidence c is taken from the teacher's map as usual. ``"weights"`` centers the weight maps.
    ``"logits"`` centers the log-odds log(W / (1 − W)) (scaled by 1/4, the sigmoid's slope at ½), so a change
    of prior between the sources costs nothing while the teacher's evidence (where it prefers one source more
    than elsewhere) is kept. ``"none"`` (default): the maps as they are.

    Why: on IR/VIS pairs the multi-focus teacher gives the infrared image most of the weight everywhere (mean
    W(IR) ≈ 0.84 on every level of training pairs), a reading of IR's higher local contrast that a multi-focus
    pair never has. Neither centering freed the student from it in practice (probes ``lg_centered`` and
    ``lg_logit_centered``, docs/results.md): the student learns the teacher's decision function, not only its
    offset.

    ``detail_tau`` (``selection`` only) also weights each level's comparison by the detail the sources carry
    there: c · min(1, G_σ ∗ max(|L_l(A)|, |L_l(B)|) / detail_tau), with L_l the Laplacian level of the blend's
    pyramid and 0 on the base level. The source stage's decision loss is zero where the two sources agree, so
    the teacher's choice in flat regions and of the base intensity was never supervised: it is an
    extrapolation, not knowledge. ``None`` (default): no detail weighting.

    ``branch`` (``feature_in`` and ``relation`` on the ``cem`` and ``encoder`` groups) matches one branch's
    half of each concat(A, B) map: ``vi`` keeps the teacher's features of the visible image, a natural image
    like every image the multi-focus teacher was trained on, and leaves the infrared branch (a modality the
    teacher never saw) and hence the balance between the sources free. ``both`` (default): the whole map.

    The teacher side is detached: it is a fixed target, whatever the caller's grad mode.
    """

    def __init__(
        self,
        mode: GuidanceMode = "selection",
        eps: float = 1e-6,
        lcn_window: int = 7,
        lcn_eps: float = 1e-3,
        layers: Sequence[str] | None = None,
        levels: Sequence[int] | None = None,
        centering: str = "none",
        detail_tau: float | None = None,
        detail_sigma: float = 2.0,
        branch: str = "both",
    ) -> None:
        super().__init__()
        if branch not in BRANCHES:
            raise ValueError(f"guidance branch must be one of {BRANCHES}, got {branch!r}")
        if detail_tau is not None:
            if mode != "selection":
                raise ValueError(_selection_only("detail_tau (a stage's guidance_detail_tau)", mode))
            if detail_tau <= 0 or detail_sigma <= 0:
                raise ValueError(
                    f"detail_tau and detail_sigma must be positive, got {detail_tau}, {detail_sigma}"
                )
        if centering not in CENTERINGS:
            raise ValueError(f"centering must be one of {CENTERINGS}, got {centering!r}")
        if centering != "none" and mode != "selection":
            raise ValueError(_selection_only("centering (a stage's guidance_centering)", mode))
        if levels is not None:
            levels = tuple(sorted(set(int(level) for level in levels)))
            if mode != "selection":
                raise ValueError(_selection_only("levels (a stage's guidance_levels)", mode))
            if not levels or levels[0] < 0:
                raise ValueError(
                    f"guidance levels must be a non-empty list of levels ≥ 0, got {list(levels)}"
                )
        if mode not in GUIDANCE_MODES:
            raise ValueError(f"unknown guidance mode {mode!r}; expected one of {GUIDANCE_MODES}")
        if layers is not None:
            layers = tuple(layers)
            unknown = sorted(set(layers) - set(FEATURE_GROUPS))
            if unknown or not layers:
                raise ValueError(
                    f"guidance layers must be a non-empty subset of {FEATURE_GROUPS}, got {list(layers)}"
                )
        self.mode = mode
        self.layers = layers
        if branch != "both":
            read = self.read_layers
            if mode not in ("feature_in", "relation") or not set(read) <= set(TWO_BRANCH_GROUPS):
                raise ValueError(
                    f"guidance branch {branch!r} splits the two-branch maps {list(TWO_BRANCH_GROUPS)} of the "
                    f"feature modes feature_in and relation; mode {mode!r} reads {list(read) or 'no maps'} "
                    "(set guidance_layers to [cem] or [encoder], or the branch to both)"
                )
        self.branch = branch
        self.levels = levels
        self.centering = centering
        self.detail_tau = None if detail_tau is None else float(detail_tau)
        self.detail_sigma = float(detail_sigma)
        self.eps = float(eps)
        self.lcn_window = int(lcn_window)
        self.lcn_eps = float(lcn_eps)

    def detail_evidence(self, sources: tuple[torch.Tensor, torch.Tensor] | None, maps: int) -> torch.Tensor:
        """N×maps×H×W in [0, 1]: min(1, G_σ ∗ max(|L_l(A)|, |L_l(B)|) / detail_tau) for each of the ``maps``
        pyramid levels (base level 0); one shared map (``maps`` = 1) takes the finest level's."""
        if sources is None:
            raise ValueError("selection guidance with detail_tau needs the sources (ir, vi) of the pair")
        a, b = sources
        energy = band_energy(a, b, max(maps, 2))[:, :maps]
        size = 2 * int(round(3 * self.detail_sigma)) + 1
        blurred = kornia.filters.gaussian_blur2d(
            energy, (size, size), (self.detail_sigma, self.detail_sigma), border_type="replicate"
        )
        return (blurred / self.detail_tau).clamp(max=1.0).detach()

    @property
    def read_layers(self) -> tuple[str, ...]:
        """The feature groups this loss reads: ``layers``, else the mode's :data:`DEFAULT_LAYERS` (none for a
        mode that works on the fused images)."""
        return self.layers if self.layers is not None else DEFAULT_LAYERS.get(self.mode, ())

    def _half(self, phi: torch.Tensor) -> torch.Tensor:
        """``branch``'s half of an N×2C×h×w concat(A, B) map."""
        if phi.shape[1] % 2:
            raise ValueError(
                f"guidance branch {self.branch!r} needs concat(A, B) maps with an even channel count, got "
                f"{tuple(phi.shape)}"
            )
        half = phi.shape[1] // 2
        return phi[:, :half] if self.branch == "ir" else phi[:, half:]

    def forward(
        self,
        student_fused: torch.Tensor,
        teacher_fused: torch.Tensor,
        student_features: list[torch.Tensor] | tuple[torch.Tensor, ...],
        teacher_features: list[torch.Tensor] | tuple[torch.Tensor, ...],
        groups: Sequence[str] | None = None,
        sources: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``groups``: the group of each feature map (``STFuseNet.feature_groups()``). ``sources``: the pair
        (ir, vi), needed by ``selection`` with ``detail_tau``.

        Without ``groups`` (and no explicit ``layers``) every map is used as given.
        """
        layers = self.read_layers
        if self.mode in DEFAULT_LAYERS and (self.layers is not None or groups is not None):
            if groups is None or len(groups) != len(student_features):
                raise ValueError(
                    f"guidance layers {list(layers)} need one group name per feature map, got "
                    f"{None if groups is None else list(groups)} for {len(student_features)} maps"
                )
            keep = [i for i, group in enumerate(groups) if group in layers]
            if not keep:
                raise ValueError(
                    f"guidance {self.mode!r}: no feature map belongs to the layers {list(layers)} "
                    f"(the network gives {sorted(set(groups))}; `selection` needs the select head)"
                )
            student_features = [student_features[i] for i in keep]
            teacher_features = [teacher_features[i] for i in keep]
        if self.branch != "both":
            student_features = [self._half(phi) for phi in student_features]
            teacher_features = [self._half(phi) for phi in teacher_features]
        return GUIDANCE_FUNCTIONS[self.mode](
            self, student_fused, teacher_fused, student_features, teacher_features, sources=sources
        )
