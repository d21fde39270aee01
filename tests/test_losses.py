"""Fusion and guidance losses against hand computations and their invariances."""

from __future__ import annotations

import kornia
import pytest
import torch

from stfuse.losses import (
    GuidanceLoss,
    IVIFFusionLoss,
    MFIFLoss,
    SSIMLoss,
    gradient_magnitude,
    instance_norm,
    local_contrast_norm,
    match_moments,
)

C1, C2 = 0.01**2, 0.03**2  # SSIM stabilisers for max_val = 1


def _constant(value: float, h: int = 16, w: int = 16) -> torch.Tensor:
    """A flat image in float64: float32 SSIM moments (E[x²] − μ²) carry ~1e-5 of cancellation error."""
    return torch.full((1, 1, h, w), value, dtype=torch.float64)


def _ssim_of_constants(x: float, y: float) -> float:
    """SSIM of two flat images: only the luminance term differs from 1."""
    return (2 * x * y + C1) / (x * x + y * y + C1)


def _texture(seed: int, n: int = 2, size: int = 48) -> torch.Tensor:
    """A smooth random texture in [0, 1] (blurred noise), closer to an image than white noise."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, size, size, generator=generator)
    smooth = kornia.filters.gaussian_blur2d(noise, (7, 7), (1.5, 1.5))
    return (smooth - smooth.amin()) / (smooth.amax() - smooth.amin())


def _step_edge(column: int, h: int = 16, w: int = 32) -> torch.Tensor:
    image = torch.zeros(1, 1, h, w)
    image[..., column:] = 1.0
    return image


def _features(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 6, 8, 10, generator=generator), torch.randn(2, 3, 16, 20, generator=generator)]


# ---- identical inputs ----------------------------------------------------------------------


def test_every_loss_is_zero_on_identical_inputs() -> None:
    image = _texture(0)
    ivif = IVIFFusionLoss()(image, image, image)
    mfif = MFIFLoss()(image, image)
    for name, value in {
        **{f"ivif/{k}": v for k, v in ivif.items()},
        **{f"mfif/{k}": v for k, v in mfif.items()},
    }.items():
        assert value.abs().item() < 1e-5, name
    features = _features(0)
    for mode in ("feature_in", "output_grad", "none"):
        assert GuidanceLoss(mode)(image, image, features, features).item() == pytest.approx(0.0, abs=1e-6), (
            mode
        )


# ---- SSIM and gradients --------------------------------------------------------------------


def test_ssim_loss_is_one_minus_kornia_ssim_mean() -> None:
    x, y = _texture(1), _texture(2)
    expected = 1.0 - kornia.metrics.ssim(x, y, window_size=11, max_val=1.0).mean()
    assert SSIMLoss()(x, y).item() == pytest.approx(expected.item(), abs=1e-6)


def test_ssim_loss_rejects_even_window() -> None:
    with pytest.raises(ValueError, match="odd"):
        SSIMLoss(window_size=8)


def test_gradient_magnitude_is_zero_on_flat_images() -> None:
    flat = _constant(0.4).float()
    assert gradient_magnitude(flat).max() < 1e-7  # float rounding only
    assert kornia.filters.sobel(flat).min() > 5e-4  # the pitfall this helper avoids


def test_gradient_magnitude_of_unit_ramp_is_one_inside() -> None:
    ramp = torch.arange(10.0).repeat(1, 1, 6, 1) * 0.05  # slope 0.05 per pixel along x
    magnitude = gradient_magnitude(ramp)
    assert torch.allclose(magnitude[..., 1:-1], torch.full_like(magnitude[..., 1:-1], 0.05))
    assert torch.allclose(magnitude[..., 0], torch.full_like(magnitude[..., 0], 0.025))  # replicated border


# ---- IVIF loss ---------------------------------------------------------------------------------


def test_ivif_loss_on_flat_images_matches_hand_computation() -> None:
    a, b, fused = _constant(0.2), _constant(0.6), _constant(0.5)
    terms = IVIFFusionLoss(lambda_int=2.0, lambda_grad=3.0, lambda_ssim=0.5)(fused, a, b)
    expected_ssim = 1 - 0.5 * (_ssim_of_constants(0.5, 0.2) + _ssim_of_constants(0.5, 0.6))
    assert terms["int"].item() == pytest.approx(0.1, abs=1e-9)  # |0.5 − max(0.2, 0.6)|
    assert terms["grad"].item() == pytest.approx(0.0, abs=1e-12)
    assert terms["ssim"].item() == pytest.approx(expected_ssim, abs=1e-7)
    assert terms["total"].item() == pytest.approx(2.0 * 0.1 + 0.5 * expected_ssim, abs=1e-7)


def test_gradient_loss_sees_a_moved_edge_and_grows_with_the_shift() -> None:
    loss = IVIFFusionLoss(lambda_int=0.0, lambda_grad=1.0, lambda_ssim=0.0)
    edge, flat = _step_edge(12), torch.zeros(1, 1, 16, 32)
    grads = [loss(_step_edge(12 + shift), edge, flat)["grad"].item() for shift in range(4)]
    assert grads[0] == 0.0
    assert grads[1] > 0.01
    assert grads[0] < grads[1] < grads[2] <= grads[3] + 1e-7


def test_gradient_loss_keeps_the_stronger_texture_of_either_source() -> None:
    loss = IVIFFusionLoss(lambda_int=0.0, lambda_grad=1.0, lambda_ssim=0.0)
    edge_in_a, edge_in_b = _step_edge(8), _step_edge(24)
    both_edges = edge_in_a - edge_in_b  # 0 → 1 at column 8, 1 → 0 at column 24
    only_a = loss(edge_in_a, edge_in_a, edge_in_b)["grad"]
    combined = loss(both_edges, edge_in_a, edge_in_b)["grad"]
    assert combined.item() == pytest.approx(0.0, abs=1e-7)
    assert only_a > 0.01


def _warm_target(h: int = 40, w: int = 48) -> tuple[torch.Tensor, torch.Tensor, slice, slice]:
    """An infrared image with one warm 6×6 target on a 0.3 background, and a flat 0.5 visible image."""
    rows, cols = slice(16, 22), slice(20, 26)
    ir = torch.full((1, 1, h, w), 0.3)
    ir[..., rows, cols] = 0.9
    return ir, torch.full((1, 1, h, w), 0.5), rows, cols


def test_target_mask_marks_the_warm_target_only() -> None:
    ir, _, rows, cols = _warm_target()
    mask = IVIFFusionLoss(lambda_target=1.0).target_mask(ir)
    assert float(mask[..., rows, cols].amin()) == 1.0
    outside = torch.ones_like(mask, dtype=torch.bool)
    outside[..., rows, cols] = False
    assert float(mask[outside].amax()) == 0.0
    assert float(IVIFFusionLoss(lambda_target=1.0).target_mask(torch.full((1, 1, 40, 48), 0.7)).amax()) == 0.0


def test_target_term_charges_a_grey_target_at_its_own_area_and_is_off_by_default() -> None:
    """A fused image that takes the visible image's grey at the target: L_int, averaged over the whole image,
    barely sees it (36 of 1920 pixels); L_target charges the whole gap 0.9 − 0.5; the infrared image itself
    costs nothing there."""
    ir, vi, rows, cols = _warm_target()
    loss = IVIFFusionLoss(lambda_int=1.0, lambda_grad=0.0, lambda_ssim=0.0, lambda_target=2.0)
    grey = vi.clone()  # max(IR, VIS) everywhere but on the target
    terms = loss(grey, ir, vi)
    assert float(terms["target"]) == pytest.approx(0.4, abs=1e-6)
    assert float(terms["int"]) == pytest.approx(0.4 * 36 / (40 * 48), abs=1e-6)
    assert float(terms["total"]) == pytest.approx(float(terms["int"]) + 2.0 * 0.4, abs=1e-6)
    assert float(loss(torch.maximum(ir, vi), ir, vi)["target"]) == 0.0
    assert "target" not in IVIFFusionLoss()(grey, ir, vi)
    no_target = torch.full_like(ir, 0.3)
    assert float(loss(grey, no_target, vi)["target"]) == 0.0


def test_target_term_trains_toward_the_brighter_source_and_refuses_bad_settings() -> None:
    ir, vi, rows, cols = _warm_target()
    fused = torch.full_like(ir, 0.5, requires_grad=True)
    IVIFFusionLoss(lambda_int=0.0, lambda_grad=0.0, lambda_ssim=0.0, lambda_target=1.0)(fused, ir, vi)[
        "total"
    ].backward()
    assert float(fused.grad[..., rows, cols].amax()) < 0  # a step raises the target's brightness
    for bad in ({"lambda_target": -1.0}, {"target_sigma": 0.0}, {"target_contrast": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            IVIFFusionLoss(**bad)


def test_ivif_loss_backward_is_finite_at_the_optimum() -> None:
    image = _texture(3)
    fused = image.clone().requires_grad_(True)
    IVIFFusionLoss()(fused, image, image)["total"].backward()
    assert fused.grad is not None and torch.isfinite(fused.grad).all()


def test_ivif_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="share one shape"):
        IVIFFusionLoss()(_constant(0.5), _constant(0.5), _constant(0.5, 16, 8))


# ---- MFIF loss ---------------------------------------------------------------------------------


def test_mfif_loss_on_flat_images_matches_hand_computation() -> None:
    fused, target = _constant(0.3), _constant(0.7)
    terms = MFIFLoss(alpha=2.0, beta=5.0)(fused, target)
    expected_ssim = 1 - _ssim_of_constants(0.3, 0.7)
    assert terms["l1"].item() == pytest.approx(0.4, abs=1e-9)
    assert terms["ssim"].item() == pytest.approx(expected_ssim, abs=1e-7)
    assert terms["grad"].item() == pytest.approx(0.0, abs=1e-12)
    assert terms["total"].item() == pytest.approx(0.4 + 2.0 * expected_ssim, abs=1e-7)


def test_mfif_gradient_term_on_a_ramp_matches_hand_computation() -> None:
    width, slope = 10, 0.1
    ramp = torch.arange(float(width)).repeat(1, 1, 8, 1) * slope  # F = slope·x, G = 0
    terms = MFIFLoss(alpha=0.0, beta=3.0)(ramp, torch.zeros_like(ramp))
    # |∂x F| = slope inside and slope/2 on the two replicated border columns; ∂y F = 0; mean over (∂x, ∂y)
    expected_grad = slope * (width - 1) / width / 2
    assert terms["grad"].item() == pytest.approx(expected_grad, abs=1e-6)
    assert terms["l1"].item() == pytest.approx(slope * (width - 1) / 2, abs=1e-6)
    assert terms["total"].item() == pytest.approx(terms["l1"].item() + 3.0 * expected_grad, abs=1e-6)


def test_mfif_ssim_term_equals_one_minus_kornia_ssim() -> None:
    fused, target = _texture(4), _texture(5)
    expected = 1.0 - kornia.metrics.ssim(fused, target, window_size=11, max_val=1.0).mean()
    assert MFIFLoss()(fused, target)["ssim"].item() == pytest.approx(expected.item(), abs=1e-6)


# ---- guidance loss -----------------------------------------------------------------------------


def test_feature_in_ignores_per_channel_affine_changes_of_the_teacher() -> None:
    student = _features(0)
    generator = torch.Generator().manual_seed(1)
    teacher = []
    for phi in student:
        channels = phi.shape[1]
        scale = torch.rand(1, channels, 1, 1, generator=generator) * 3 + 0.2  # > 0
        shift = torch.randn(1, channels, 1, 1, generator=generator) * 5
        teacher.append(phi * scale + shift)
    loss = GuidanceLoss("feature_in")
    dummy = torch.zeros(2, 1, 8, 8)
    assert loss(dummy, dummy, student, teacher).item() < 1e-5
    different = loss(dummy, dummy, student, _features(7)).item()
    assert different > 1.0  # two unrelated maps: about 1.13 per layer for Gaussian features


def test_feature_in_is_a_sum_over_layers_of_mean_absolute_in_differences() -> None:
    student, teacher = _features(0), _features(1)
    expected = sum((instance_norm(s) - instance_norm(t)).abs().mean() for s, t in zip(student, teacher))
    value = GuidanceLoss("feature_in")(torch.zeros(1), torch.zeros(1), student, teacher)
    assert value.item() == pytest.approx(float(expected), rel=1e-6)


def test_feature_in_layers_keep_only_the_named_groups() -> None:
    student, teacher = _features(0), _features(1)
    groups = ["cem"] + ["decoder"] * (len(student) - 1)
    expected = (instance_norm(student[0]) - instance_norm(teacher[0])).abs().mean()
    dummy = torch.zeros(1)
    value = GuidanceLoss("feature_in", layers=["cem"])(dummy, dummy, student, teacher, groups=groups)
    assert value.item() == pytest.approx(float(expected), rel=1e-6)
    # the mode's default layers are the CEM maps; naming more groups adds their terms
    default = GuidanceLoss("feature_in")(dummy, dummy, student, teacher, groups=groups)
    assert default.item() == pytest.approx(value.item(), rel=1e-6)
    everything = GuidanceLoss("feature_in", layers=["cem", "decoder"])(
        dummy, dummy, student, teacher, groups=groups
    )
    assert everything.item() > value.item()
    with pytest.raises(ValueError, match="one group name per feature map"):
        GuidanceLoss("feature_in", layers=["cem"])(dummy, dummy, student, teacher)
    with pytest.raises(ValueError, match="no feature map belongs"):
        GuidanceLoss("feature_in", layers=["head"])(dummy, dummy, student, teacher, groups=groups)
    with pytest.raises(ValueError, match="non-empty subset"):
        GuidanceLoss("feature_in", layers=[])


def test_output_grad_ignores_teacher_brightness_and_contrast() -> None:
    student = _texture(0)
    teacher_same_structure = 0.4 * student + 0.3
    loss = GuidanceLoss("output_grad")
    invariant = loss(student, teacher_same_structure, [], []).item()
    different = loss(student, _texture(9), [], []).item()
    assert different > 0.3
    assert invariant < 0.02 * different


def test_local_contrast_norm_is_affine_invariant() -> None:
    x = _texture(2)
    assert torch.allclose(
        local_contrast_norm(x, eps=1e-6), local_contrast_norm(3 * x - 1, eps=1e-6), atol=1e-3
    )


def test_guidance_gradients_flow_to_the_student_only() -> None:
    for mode in ("feature_in", "output_grad"):
        student_fused = _texture(0).requires_grad_(True)
        teacher_fused = _texture(1).requires_grad_(True)
        student_features = [f.requires_grad_(True) for f in _features(0)]
        teacher_features = [f.requires_grad_(True) for f in _features(1)]
        GuidanceLoss(mode)(student_fused, teacher_fused, student_features, teacher_features).backward()
        assert teacher_fused.grad is None and all(f.grad is None for f in teacher_features), mode
        if mode == "output_grad":
            assert student_fused.grad is not None and torch.isfinite(student_fused.grad).all()
        else:
            assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in student_features)


def test_none_guidance_is_a_differentiable_zero_on_the_student_device() -> None:
    student = _texture(0).requires_grad_(True)
    value = GuidanceLoss("none")(student, student.detach(), [], [])
    assert value.item() == 0.0 and value.device == student.device and value.ndim == 0
    value.backward()  # alone, it must not raise
    (student.mean() + value).backward()
    assert student.grad is not None


def test_guidance_loss_rejects_bad_mode_and_mismatched_features() -> None:
    with pytest.raises(ValueError, match="unknown guidance mode"):
        GuidanceLoss("kl")
    loss = GuidanceLoss("feature_in")
    features = _features(0)
    with pytest.raises(ValueError, match="same non-empty number"):
        loss(torch.zeros(1), torch.zeros(1), features, features[:1])
    with pytest.raises(ValueError, match="feature map 1"):
        loss(torch.zeros(1), torch.zeros(1), features, [features[0], features[1][:, :2]])


def test_guidance_works_on_network_features() -> None:
    from stfuse.models import STFuseNet

    torch.manual_seed(0)
    student, teacher = STFuseNet("small", channels=8, heads=2), STFuseNet("small", channels=8, heads=2).eval()
    a, b = _texture(0, n=1, size=32), _texture(1, n=1, size=32)
    fused, features = student(a, b, return_features=True)
    with torch.no_grad():
        teacher_fused, teacher_features = teacher(a, b, return_features=True)
    for mode in ("feature_in", "output_grad", "none"):
        value = GuidanceLoss(mode)(fused, teacher_fused, features, teacher_features)
        assert torch.isfinite(value) and value.ndim == 0
    GuidanceLoss("feature_in")(fused, teacher_fused, features, teacher_features).backward()
    assert all(p.grad is not None for p in student.cem_parameters())


@pytest.mark.parametrize("mode", ["feature_in", "relation"])
def test_encoder_guidance_moves_only_the_encoder(mode: str) -> None:
    """L_g on the ``encoder`` group reaches the shared encoder and nothing after it: how the student weighs the
    sources (CEM, decoder, head) is left to the IVIF losses."""
    from stfuse.models import STFuseNet

    torch.manual_seed(0)
    teacher = STFuseNet("compact", channels=8, heads=2).eval()
    student = STFuseNet("compact", channels=8, heads=2)
    student.load_state_dict(teacher.state_dict())
    a, b = _texture(0, n=1, size=32), _texture(1, n=1, size=32)
    loss = GuidanceLoss(mode, layers=["encoder"])
    groups = student.feature_groups()
    fused, features = student(a, b, return_features=True)
    with torch.no_grad():
        teacher_fused, teacher_features = teacher(a, b, return_features=True)
    # the same weights: nothing to match
    assert float(loss(fused, teacher_fused, features, teacher_features, groups=groups)) < 1e-5
    with torch.no_grad():  # the student drifts: its encoder and its decoder change
        for p in student.encoder_parameters() + student.decoder_parameters():
            p.add_(0.05 * torch.randn_like(p))
    fused, features = student(a, b, return_features=True)
    value = loss(fused, teacher_fused, features, teacher_features, groups=groups)
    assert float(value) > 1e-3
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.encoder_parameters())
    untouched = student.cem_parameters() + student.decoder_parameters()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in untouched)


def test_cem_maps_on_detached_encoder_maps_equal_the_cem_maps_and_train_only_the_cem() -> None:
    """What ``guidance_stop_at_encoder`` does: the same L_g value, with no gradient into the encoder."""
    from stfuse.models import STFuseNet

    torch.manual_seed(0)
    teacher = STFuseNet("compact", channels=8, heads=2).eval()
    student = STFuseNet("compact", channels=8, heads=2)
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    a, b = _texture(0, n=1, size=32), _texture(1, n=1, size=32)
    groups = student.feature_groups()
    fused, features = student(a, b, return_features=True)
    with torch.no_grad():
        teacher_fused, teacher_features = teacher(a, b, return_features=True)
    encoder = [f.detach() for f, g in zip(features, groups) if g == "encoder"]
    local = student.cem_maps_on(encoder)
    torch.testing.assert_close(local[0], features[groups.index("cem")])
    loss = GuidanceLoss("relation")
    through = loss(fused, teacher_fused, features, teacher_features, groups=groups)
    stopped = [local[0] if g == "cem" else f for f, g in zip(features, groups)]
    value = loss(fused, teacher_fused, stopped, teacher_features, groups=groups)
    torch.testing.assert_close(value, through)
    value.backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in student.encoder_parameters())
    assert sum(float(p.grad.abs().sum()) for p in student.cem_parameters() if p.grad is not None) > 0
    with pytest.raises(ValueError, match="one per CEM depth"):
        student.cem_maps_on([])


@pytest.mark.parametrize("mode", ["feature_in", "relation"])
def test_guidance_branch_matches_one_half_of_the_two_branch_maps(mode: str) -> None:
    generator = torch.Generator().manual_seed(3)
    teacher = [torch.rand(2, 8, 12, 12, generator=generator)]
    ir_moved = [teacher[0].clone()]
    ir_moved[0][:, :4] = torch.rand(2, 4, 12, 12, generator=generator)
    vi_moved = [teacher[0].clone()]
    vi_moved[0][:, 4:] = torch.rand(2, 4, 12, 12, generator=generator)
    dummy = torch.zeros(2, 1, 12, 12)

    def value(branch: str, student: list[torch.Tensor]) -> float:
        loss = GuidanceLoss(mode, layers=["encoder"], branch=branch)
        return float(loss(dummy, dummy, student, teacher, groups=["encoder"]))

    # a change of the IR half costs nothing under branch vi, a change of the VIS half does (and vice versa)
    assert value("vi", ir_moved) < 1e-6 < 1e-2 < value("vi", vi_moved)
    assert value("ir", vi_moved) < 1e-6 < 1e-2 < value("ir", ir_moved)
    assert value("both", ir_moved) > 1e-2 and value("both", vi_moved) > 1e-2


def test_guidance_branch_is_refused_where_maps_have_no_branches() -> None:
    with pytest.raises(ValueError, match="guidance branch must be one of"):
        GuidanceLoss("relation", branch="visible")
    for mode, layers in (
        ("selection", None),
        ("output_grad", None),
        ("feature_in", ["decoder"]),
        ("relation", ["head"]),
    ):
        with pytest.raises(ValueError, match="splits the two-branch maps"):
            GuidanceLoss(mode, layers=layers, branch="vi")
    assert GuidanceLoss("feature_in", branch="vi").branch == "vi"  # its default layers are the CEM maps
    odd = GuidanceLoss("relation", layers=["cem"], branch="vi")
    with pytest.raises(ValueError, match="even channel count"):
        odd(
            torch.zeros(1), torch.zeros(1), [torch.rand(1, 3, 4, 4)], [torch.rand(1, 3, 4, 4)], groups=["cem"]
        )


def test_transfer_objective_weighs_all_five_terms() -> None:
    from stfuse.losses import TransferObjective

    torch.manual_seed(0)
    ir, vi, fused = (torch.rand(2, 1, 24, 24) for _ in range(3))
    teacher_fused = torch.rand(2, 1, 24, 24)
    a, b, gt, replay_fused = (torch.rand(2, 1, 24, 24) for _ in range(4))
    weights = {
        "lambda_int": 2.0,
        "lambda_grad": 3.0,
        "lambda_ssim": 0.5,
        "lambda_g": 0.25,
        "lambda_src": 0.75,
    }
    objective = TransferObjective(**weights, guidance="output_grad")
    terms = objective(fused, ir, vi, teacher_fused=teacher_fused, replay_fused=replay_fused, replay_target=gt)
    fusion = IVIFFusionLoss(lambda_int=2.0, lambda_grad=3.0, lambda_ssim=0.5)(fused, ir, vi)
    replay = MFIFLoss()(replay_fused, gt)["total"]
    guidance = GuidanceLoss("output_grad")(fused, teacher_fused, [], [])
    assert torch.allclose(terms["g"], guidance) and torch.allclose(terms["src"], replay)
    assert torch.allclose(terms["total"], fusion["total"] + 0.25 * guidance + 0.75 * replay)
    # λ_g per call (a schedule), and terms left out without a teacher or a replay batch
    assert torch.allclose(
        objective(fused, ir, vi, teacher_fused=teacher_fused, lambda_g=0.0)["total"], fusion["total"]
    )
    plain = objective(fused, ir, vi)
    assert set(plain) == {"int", "grad", "ssim", "total"} and torch.allclose(plain["total"], fusion["total"])
    no_src = TransferObjective(lambda_src=0.0)(fused, ir, vi, replay_fused=replay_fused, replay_target=gt)
    assert "src" not in no_src


# ---- the smoothness of the base-level selection ---------------------------------------------


def _base_flip(levels: int, size: int = 64) -> torch.Tensor:
    """N×L×H×W weights: the detail maps 0.5, the base map 1 on the left half and 0 on the right."""
    weights = torch.full((1, levels, size, size), 0.5)
    weights[:, -1] = 0.0
    weights[:, -1, :, : size // 2] = 1.0
    return weights


def test_selection_smoothness_charges_a_base_flip_in_a_flat_region_and_little_on_a_source_edge() -> None:
    from stfuse.losses.fusion import SelectionSmoothness

    smooth = SelectionSmoothness(levels=4, edge_scale=0.05)
    flat_a, flat_b = torch.full((1, 1, 64, 64), 0.3), torch.full((1, 1, 64, 64), 0.6)
    flip = _base_flip(4)
    assert float(smooth(torch.full_like(flip, 0.7), flat_a, flat_b)) == pytest.approx(0.0, abs=1e-6)
    in_flat = float(smooth(flip, flat_a, flat_b))
    assert in_flat > 0.01
    # the same flip along an edge of source a costs a small fraction of it
    edge_a = flat_a.clone()
    edge_a[..., :32] = 0.9
    assert float(smooth(flip, edge_a, flat_b)) < 0.2 * in_flat
    # only the base map counts: the detail maps may flip freely
    detail_flips = flip.clone()
    detail_flips[:, :-1, :, ::2] = 1.0
    assert float(smooth(detail_flips, flat_a, flat_b)) == pytest.approx(in_flat, rel=1e-6)
    # one map shared by every level is the base map
    shared = flip[:, -1:]
    assert float(smooth(shared, flat_a, flat_b)) == pytest.approx(in_flat, rel=1e-6)
    # a crop too small for 4 levels uses the blend's own fewer levels (its coarsest usable map), any size
    small = SelectionSmoothness(levels=4)(
        torch.rand(2, 4, 21, 27), torch.rand(2, 1, 21, 27), torch.rand(2, 1, 21, 27)
    )
    assert torch.isfinite(small) and float(small) > 0


def test_selection_smoothness_trains_the_weights_and_refuses_bad_input() -> None:
    from stfuse.losses.fusion import SelectionSmoothness

    smooth = SelectionSmoothness(levels=4)
    logits = torch.randn(2, 4, 48, 48, requires_grad=True)
    a, b = _texture(1), _texture(2)
    smooth(torch.sigmoid(logits), a, b).backward()
    assert logits.grad is not None and float(logits.grad[:, -1].abs().sum()) > 0
    assert float(logits.grad[:, :-1].abs().sum()) == 0.0  # the detail maps get nothing
    with pytest.raises(ValueError, match="1 or 4 channels"):
        smooth(torch.rand(2, 3, 48, 48), a, b)
    with pytest.raises(ValueError, match="N×L×H×W over the sources"):
        smooth(torch.rand(2, 4, 40, 48), a, b)
    with pytest.raises(ValueError, match="levels"):
        SelectionSmoothness(levels=0)
    with pytest.raises(ValueError, match="edge_scale"):
        SelectionSmoothness(levels=4, edge_scale=0.0)


def test_transfer_objective_adds_the_smoothness_of_the_select_maps() -> None:
    from stfuse.losses import TransferObjective
    from stfuse.losses.fusion import SelectionSmoothness

    torch.manual_seed(0)
    ir, vi, fused = (torch.rand(2, 1, 32, 32) for _ in range(3))
    weights = torch.rand(2, 4, 32, 32)
    features, groups = [torch.rand(2, 8, 16, 16), weights], ["cem", "select"]
    objective = TransferObjective(lambda_smooth=3.0, select_levels=4, guidance="none")
    terms = objective(fused, ir, vi, features=features, feature_groups=groups)
    expected = SelectionSmoothness(4)(weights, ir, vi)
    assert torch.allclose(terms["smooth"], expected)
    fusion = IVIFFusionLoss()(fused, ir, vi)["total"]
    assert torch.allclose(terms["total"], fusion + 3.0 * expected)
    assert "smooth" not in TransferObjective(guidance="none")(
        fused, ir, vi, features=features, feature_groups=groups
    )
    with pytest.raises(ValueError, match="select weight maps"):
        objective(fused, ir, vi, features=features[:1], feature_groups=groups[:1])
    with pytest.raises(ValueError, match="needs select_levels"):
        TransferObjective(lambda_smooth=1.0)
    with pytest.raises(ValueError, match="lambda_smooth must be ≥ 0"):
        TransferObjective(lambda_smooth=-1.0, select_levels=4)


# ---- what the teacher sees ------------------------------------------------------------------


def test_match_moments_gives_each_pair_one_mean_and_spread_and_keeps_its_structure() -> None:
    texture = _texture(3, n=2, size=48)
    dark = 0.05 + 0.2 * texture  # a night visible image: dark and flat
    bright = 0.2 + 0.6 * _texture(4, n=2, size=48)  # an infrared image: brighter and more contrasted
    a, b = match_moments(bright, dark)
    for index in range(2):
        assert float(a[index].mean()) == pytest.approx(float(b[index].mean()), abs=1e-5)
        assert float(a[index].std()) == pytest.approx(float(b[index].std()), rel=1e-4)
        target_mean = 0.5 * float(bright[index].mean() + dark[index].mean())
        assert float(a[index].mean()) == pytest.approx(target_mean, abs=1e-5)
    # an affine change of an image only: its structure is untouched
    standardised = (dark - dark.mean((1, 2, 3), keepdim=True)) / dark.std((1, 2, 3), keepdim=True)
    back = (b - b.mean((1, 2, 3), keepdim=True)) / b.std((1, 2, 3), keepdim=True)
    assert torch.allclose(standardised, back, atol=1e-4)
    # a pair that already shares its moments is left as it is; the pairs of a batch do not mix
    same, again = match_moments(texture, texture.flip(-1))
    assert torch.allclose(same, texture, atol=1e-6) and torch.allclose(again, texture.flip(-1), atol=1e-6)
    first, _ = match_moments(bright[:1], dark[:1])
    assert torch.allclose(first, a[:1], atol=1e-6)


def test_match_moments_keeps_a_flat_image_finite_and_refuses_mismatched_pairs() -> None:
    flat = torch.full((1, 1, 16, 16), 0.3)
    a, b = match_moments(flat, _texture(5, n=1, size=16))
    assert torch.isfinite(a).all() and torch.allclose(a, a.flatten()[0].expand_as(a))
    assert float(a.mean()) == pytest.approx(float(b.mean()), abs=1e-5)
    with pytest.raises(ValueError, match="share one shape"):
        match_moments(flat, torch.zeros(1, 1, 8, 8))
