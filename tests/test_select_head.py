"""The select head: a Laplacian-pyramid blend of the sources with learned weight maps, its decision loss in
the source stage and the guidance modes that read it."""

from __future__ import annotations

import pytest
import torch

from stfuse.losses import DecisionLoss, GuidanceLoss
from stfuse.models import STFuseNet, build_network
from stfuse.models.blend import bounded_weights, laplacian_blend


def _pair(n: int = 2, h: int = 37, w: int = 53) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, h, w, generator=generator), torch.rand(n, 1, h, w, generator=generator)


@pytest.mark.parametrize("levels", [1, 2, 4, 6])
@pytest.mark.parametrize("size", [(37, 53), (5, 7), (64, 64)])
def test_constant_weights_give_one_source_or_the_average(levels: int, size: tuple[int, int]) -> None:
    a, b = _pair(2, *size)
    ones = torch.ones(2, levels, *size)
    assert torch.allclose(laplacian_blend(a, b, ones, levels), a, atol=1e-5)
    assert torch.allclose(laplacian_blend(a, b, torch.zeros(2, 1, *size), levels), b, atol=1e-5)
    assert torch.allclose(laplacian_blend(a, b, 0.5 * ones, levels), 0.5 * (a + b), atol=1e-5)


def test_per_level_weights_take_fine_detail_from_one_source_and_coarse_content_from_the_other() -> None:
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = (0.3 + 0.4 * (x / 63))[None, None]  # a ramp: coarse content only
    texture = (0.5 + 0.2 * torch.sign(torch.sin(x * 1.6) * torch.sin(y * 1.6)))[None, None]  # fine detail
    weights = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 4, 1, 1).expand(1, 4, 64, 64)  # level 0 from A only
    fused = laplacian_blend(texture, smooth, weights, 4)
    # the fine checkerboard survives on top of the ramp's coarse brightness
    fine = fused - torch.nn.functional.avg_pool2d(fused, 5, 1, 2, count_include_pad=False)
    assert fine[..., 8:-8, 8:-8].abs().mean() > 0.05
    assert (fused.mean() - smooth.mean()).abs() < 0.05


def test_blend_is_differentiable_in_the_weights() -> None:
    a, b = _pair(1, 32, 32)
    logits = torch.zeros(1, 4, 32, 32, requires_grad=True)
    laplacian_blend(a, b, bounded_weights(logits, 4.0), 4).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def _fine(x: torch.Tensor) -> torch.Tensor:
    """x − its 5×5 local mean inside an 8-pixel border: the fine texture (a linear map of x)."""
    return (x - torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False))[..., 8:-8, 8:-8]


def test_independent_detail_weights_keep_the_texture_of_both_sources() -> None:
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    a = (0.4 + 0.1 * torch.sign(torch.sin(x * 1.6)))[None, None]  # vertical stripes
    b = (0.5 + 0.1 * torch.sign(torch.sin(y * 1.6)))[None, None]  # horizontal stripes
    half = torch.full((1, 4, 64, 64), 0.5)
    convex = laplacian_blend(a, b, half, 4)
    # V = 1 − W on every detail level is the convex blend itself
    assert torch.allclose(laplacian_blend(a, b, half, 4, 1.0 - half[:, :3]), convex, atol=1e-6)
    # W = V = 1 on the detail levels (base still half and half): the stripes of both sources at full strength,
    # where the convex blend keeps each at half strength
    detail_from_a = torch.cat([torch.ones(1, 3, 64, 64), half[:, :1]], 1)
    both = laplacian_blend(a, b, detail_from_a, 4, torch.ones(1, 3, 64, 64))
    assert torch.allclose(_fine(both), _fine(a) + _fine(b), atol=1e-3)
    assert torch.allclose(_fine(convex), 0.5 * (_fine(a) + _fine(b)), atol=1e-3)
    assert _fine(a).abs().mean() > 0.1  # the stripes are there to keep
    assert (both.mean() - convex.mean()).abs() < 0.01  # the base level is untouched
    # one map for every detail level: W = 1 and V = 0 everywhere but the base is A's texture alone
    only_a = laplacian_blend(a, b, detail_from_a, 4, torch.zeros(1, 1, 64, 64))
    assert torch.allclose(_fine(only_a), _fine(a), atol=1e-3)
    with pytest.raises(ValueError, match="detail_weights_b need 1 or 3 channels"):
        laplacian_blend(a, b, half, 4, torch.ones(1, 2, 64, 64))


def test_bounded_weights_never_saturate() -> None:
    logits = torch.tensor([-1e4, -5.0, 0.0, 5.0, 1e4])
    w = bounded_weights(logits, 4.0)
    assert w.min() > 0.017 and w.max() < 0.983 and w[2] == 0.5
    assert bounded_weights(torch.tensor([1e4]), 0.0) == 1.0  # bound ≤ 0: a plain sigmoid


def test_untrained_select_network_blends_half_and_half_and_stays_in_range() -> None:
    net = STFuseNet("tiny").eval()
    assert net.config["head"] == "select"
    a, b = _pair(1, 40, 30)
    with torch.no_grad():
        for p in net.decoder.to_image.parameters():
            p.zero_()
        assert torch.allclose(net(a, b), 0.5 * (a + b), atol=1e-5)
        out = STFuseNet("tiny", residual=0.1).eval()(a, b)
    assert out.shape == a.shape and out.min() >= 0 and out.max() <= 1


def test_select_options_are_validated_and_round_trip() -> None:
    for bad in ({"head": "draw"}, {"weight_maps": "pixel"}, {"levels": 0}, {"residual": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            STFuseNet("tiny", **bad)
    net = STFuseNet("tiny", weight_maps="shared", levels=3, residual=0.05)
    assert STFuseNet(**net.config).config == net.config
    _, features = net(*_pair(1, 24, 24), return_features=True)
    assert features[net.feature_groups().index("select")].shape == (1, 1, 24, 24)  # one shared map
    assert net.decoder.to_image.out_channels == 2  # the shared map + the residual


def test_independent_detail_option_adds_one_map_per_detail_level_and_is_validated() -> None:
    net = STFuseNet("tiny", detail="independent")
    assert net.decoder.to_image.out_channels == 4 + 3
    assert STFuseNet(**net.config).config == net.config
    assert (
        STFuseNet(
            "tiny", detail="independent", weight_maps="shared", residual=0.1
        ).decoder.to_image.out_channels
        == 3
    )
    a, b = _pair(1, 40, 30)
    with torch.no_grad():
        out, features = net.eval()(a, b, return_features=True)
    assert out.shape == a.shape and out.min() >= 0 and out.max() <= 1
    assert features[net.feature_groups().index("select")].shape == (
        1,
        4,
        40,
        30,
    )  # the guidance sees the weights of A only
    with pytest.raises(ValueError, match="unknown detail 'add'"):
        STFuseNet("tiny", detail="add")
    for bad in ({"head": "paint"}, {"levels": 1}):
        with pytest.raises(ValueError, match="needs the select head with levels ≥ 2"):
            STFuseNet("tiny", detail="independent", **bad)


def test_a_residual_on_the_paint_head_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="and 0 for another head .*got 0.5 with head 'paint'"):
        STFuseNet("tiny", head="paint", residual=0.5)
    assert STFuseNet("tiny", head="paint", residual=0.0).config["residual"] == 0.0


def test_max_base_rule_takes_the_brighter_local_mean_whatever_the_weights_say() -> None:
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    left = (x < 32).float()[None, None]
    bright_left = 0.2 + 0.6 * left  # A: bright on the left half, dark on the right
    bright_right = 0.8 - 0.6 * left  # B: the mirror image
    for weights in (torch.zeros(1, 4, 64, 64), torch.ones(1, 4, 64, 64), torch.rand(1, 4, 64, 64)):
        fused = laplacian_blend(bright_left, bright_right, weights, 4, base="max")
        # both halves keep the brighter source's level (0.8) away from the seam, whichever source W chose
        assert (fused[..., :, :8] - 0.8).abs().max() < 0.02
        assert (fused[..., :, 56:] - 0.8).abs().max() < 0.02
    # equal local means: the rule blends half and half at the base; the detail still follows W
    texture = (0.5 + 0.2 * torch.sign(torch.sin(x * 1.6) * torch.sin(y * 1.6)))[None, None]
    flat = torch.full_like(texture, 0.5)
    ones = torch.ones(1, 4, 64, 64)
    assert torch.allclose(laplacian_blend(texture, flat, ones, 4, base="max"), texture, atol=2e-3)
    assert (laplacian_blend(texture, flat, 0 * ones, 4, base="max") - 0.5).abs().max() < 2e-3
    with pytest.raises(ValueError, match="unknown base 'min'"):
        laplacian_blend(texture, flat, ones, 4, base="min")


def test_salient_base_rule_takes_a_dark_region_that_the_brighter_source_rule_drops() -> None:
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    square = ((x - 32).abs() < 12).float() * ((y - 32).abs() < 12).float()
    ir = (0.5 - 0.4 * square)[None, None]  # a cold object: dark in IR, far below IR's own mean
    vi = torch.full_like(ir, 0.7)  # a flat, brighter visible image: no deviation from its mean anywhere
    for weights in (torch.zeros(1, 4, 64, 64), torch.ones(1, 4, 64, 64)):
        salient = laplacian_blend(ir, vi, weights, 4, base="salient")
        brighter = laplacian_blend(ir, vi, weights, 4, base="max")
        # inside the object the base takes IR's dark level; the brighter-source rule keeps VIS's 0.7 there
        assert salient[..., 28:36, 28:36].mean() < 0.3, weights.mean()  # (0.1, blurred at the base scale)
        assert brighter[..., 28:36, 28:36].mean() > 0.5, weights.mean()
    # the rule is symmetric: swapping the sources (and W for 1 − W) gives the same image
    weights = torch.rand(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(
        laplacian_blend(ir, vi, weights, 4, base="salient"),
        laplacian_blend(vi, ir, 1.0 - weights, 4, base="salient"),
        atol=1e-5,
    )
    # sources that deviate equally from their own means blend half and half at the base, whatever W says
    left = (x < 32).float()[None, None]
    a, b = 0.2 + 0.6 * left, 0.8 - 0.6 * left  # mirror images: |A − μ_A| = |B − μ_B| everywhere
    for weights in (torch.zeros(1, 4, 64, 64), torch.ones(1, 4, 64, 64)):
        fused = laplacian_blend(a, b, weights, 4, base="salient")
        assert (fused[..., :, :8] - 0.5).abs().max() < 0.02 and (fused[..., :, 56:] - 0.5).abs().max() < 0.02
    net = STFuseNet("tiny", base="salient", base_tau=0.02)
    assert STFuseNet(**net.config).config == net.config and net.config["base"] == "salient"


def test_max_base_rule_leaves_the_base_weight_map_without_a_gradient_and_the_prior_rule_does_not() -> None:
    a, b = _pair(2, 32, 48)
    for base, base_gradient in (("max", False), ("salient", False), ("prior", True)):
        weights = torch.full((2, 4, 32, 48), 0.3, requires_grad=True)
        laplacian_blend(a, b, weights, 4, base=base).square().sum().backward()
        assert weights.grad[:, :3].abs().sum() > 0
        assert (weights.grad[:, 3].abs().sum() > 0) == base_gradient, base


def test_prior_base_rule_is_the_max_rule_shifted_by_the_learned_base_weight() -> None:
    a = torch.full((1, 1, 32, 32), 0.6)  # A brighter by 0.1: the rule's log-odds are 0.1 / τ = 2
    b = torch.full((1, 1, 32, 32), 0.5)
    half = torch.full((1, 4, 32, 32), 0.5)
    assert torch.allclose(
        laplacian_blend(a, b, half, 4, base="prior"), laplacian_blend(a, b, half, 4, base="max"), atol=1e-6
    )
    expected_weight = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(
        laplacian_blend(a, b, half, 4, base="prior"), 0.5 + 0.1 * expected_weight, atol=1e-5
    )
    # a learned base weight of σ(−4) for A outvotes the rule: the base takes mostly B
    leaning_b = torch.full((1, 4, 32, 32), float(torch.sigmoid(torch.tensor(-4.0))))
    assert torch.allclose(
        laplacian_blend(a, b, leaning_b, 4, base="prior"),
        0.5 + 0.1 * torch.sigmoid(torch.tensor(-2.0)),
        atol=1e-5,
    )


def test_base_rule_temperature_sets_how_hard_the_brighter_source_wins() -> None:
    a = torch.full((1, 1, 32, 32), 0.6)  # A brighter by 0.1
    b = torch.full((1, 1, 32, 32), 0.5)
    half = torch.full((1, 4, 32, 32), 0.5)
    for tau in (0.01, 0.05, 0.2):
        expected = 0.5 + 0.1 * torch.sigmoid(torch.tensor(0.1 / tau))
        assert torch.allclose(laplacian_blend(a, b, half, 4, base="max", tau=tau), expected, atol=1e-5), tau
    # the default is BASE_MAX_TAU, and the network passes its own base_tau to the blend
    assert torch.equal(
        laplacian_blend(a, b, half, 4, base="max"), laplacian_blend(a, b, half, 4, base="max", tau=0.05)
    )
    net = STFuseNet("tiny", base="max", base_tau=0.01)
    assert net.config["base_tau"] == 0.01 and STFuseNet(**net.config).config == net.config
    assert STFuseNet("tiny").config["base_tau"] == 0.05
    soft = STFuseNet("tiny", base="max", base_tau=0.2)
    soft.load_state_dict(net.state_dict())
    with torch.no_grad():  # a flat pair has no detail: the base rule alone sets the output
        assert (net(a, b) - 0.6).abs().max() < 1e-3
        assert (soft(a, b) - (0.5 + 0.1 * torch.sigmoid(torch.tensor(0.5)))).abs().max() < 1e-4
    for bad in (0, -0.1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="base_tau must be a finite temperature > 0"):
            STFuseNet("tiny", base="max", base_tau=bad)
    with pytest.raises(ValueError, match="tau must be > 0"):
        laplacian_blend(a, b, half, 4, base="max", tau=0.0)


def test_max_base_option_is_validated_round_trips_and_bounds_the_output() -> None:
    net = STFuseNet("tiny", base="max").eval()
    assert net.config["base"] == "max" and STFuseNet(**net.config).config == net.config
    assert STFuseNet(**STFuseNet("tiny", base="prior").config).config["base"] == "prior"
    assert STFuseNet("tiny").config["base"] == "learned"
    a, b = _pair(1, 37, 53)
    with torch.no_grad():
        out = net(a, b)
    assert out.shape == a.shape and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="unknown base 'min'"):
        STFuseNet("tiny", base="min")
    for bad in ({"head": "paint"}, {"levels": 1}):
        with pytest.raises(ValueError, match="base 'max' needs the select head with levels ≥ 2"):
            STFuseNet("tiny", base="max", **bad)


def test_configs_saved_before_the_select_head_build_the_painting_network() -> None:
    old = {key: value for key, value in STFuseNet("compact", head="paint").config.items()}
    for key in ("head", "levels", "weight_maps", "residual", "select_bound", "detail", "base", "base_tau"):
        old.pop(key)
    assert STFuseNet(**STFuseNet.saved_config(old)).config["head"] == "paint"
    assert (
        build_network({"preset": "compact"}).config["head"] == "select"
    )  # a user's short config: the preset


def test_decision_loss_prefers_the_true_mask_and_ignores_flat_regions() -> None:
    a, b = _pair(1, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :16] = 1.0
    loss = DecisionLoss()
    right = loss(mask.expand(1, 4, 32, 32) * 0.96 + 0.02, mask, a, b)
    wrong = loss((1 - mask).expand(1, 4, 32, 32) * 0.96 + 0.02, mask, a, b)
    assert right < 0.05 < 1.0 < wrong
    flat = loss(torch.rand(1, 4, 32, 32), mask, a, a)  # A = B: no choice matters
    assert flat == 0
    with pytest.raises(ValueError, match="weights"):
        loss(torch.rand(1, 4, 16, 16), mask, a, b)


def test_selection_guidance_follows_only_the_teachers_confident_decisions() -> None:
    loss = GuidanceLoss("selection")
    groups = ["cem", "select"]
    dummy = torch.zeros(1, 1, 8, 8)
    feature = torch.rand(1, 4, 8, 8)
    teacher = torch.full((1, 4, 8, 8), 0.5)
    teacher[..., :4] = 0.95  # sure about the left half only
    student_agrees = teacher.clone()
    student_differs_where_unsure = teacher.clone()
    student_differs_where_unsure[..., 4:] = 0.0
    student_differs_where_sure = teacher.clone()
    student_differs_where_sure[..., :4] = 0.05

    def value(student: torch.Tensor) -> float:
        return float(loss(dummy, dummy, [feature, student], [feature, teacher], groups=groups))

    assert value(student_agrees) == 0.0
    assert value(student_differs_where_unsure) == 0.0
    assert value(student_differs_where_sure) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="select head"):
        loss(dummy, dummy, [feature], [feature], groups=["cem"])


def test_selection_guidance_on_chosen_levels_leaves_the_others_free() -> None:
    dummy = torch.zeros(1, 1, 8, 8)
    teacher = torch.full((1, 4, 8, 8), 0.9)
    student = teacher.clone()
    student[:, 3] = 0.1  # disagrees on the base level only
    every_level = GuidanceLoss("selection")
    fine_levels = GuidanceLoss("selection", levels=[2, 0, 1, 1])
    assert fine_levels.levels == (0, 1, 2)
    assert float(every_level(dummy, dummy, [student], [teacher], groups=["select"])) > 0.1
    assert float(fine_levels(dummy, dummy, [student], [teacher], groups=["select"])) == 0.0
    student[:, 1] = 0.1  # and now on a fine level too
    assert float(fine_levels(dummy, dummy, [student], [teacher], groups=["select"])) > 0.1
    with pytest.raises(ValueError, match="1 level"):  # one shared map has level 0 only
        fine_levels(dummy, dummy, [student[:, :1]], [teacher[:, :1]], groups=["select"])
    with pytest.raises(ValueError, match="selection"):
        GuidanceLoss("relation", levels=[0])
    with pytest.raises(ValueError, match="≥ 0"):
        GuidanceLoss("selection", levels=[-1])


def test_centered_selection_guidance_matches_the_decision_pattern_not_its_balance() -> None:
    dummy = torch.zeros(1, 1, 8, 8)
    teacher = torch.full((1, 2, 8, 8), 0.85)
    teacher[..., :2] = 0.98  # prefers IR everywhere, and even more on the left
    shifted = teacher - 0.5  # the same pattern, half the IR weight everywhere
    flipped = teacher.clone()
    flipped[..., :2] = 0.70  # the balance kept, the pattern reversed
    plain = GuidanceLoss("selection")
    centered = GuidanceLoss("selection", centering="weights")

    def value(loss: GuidanceLoss, student: torch.Tensor) -> float:
        return float(loss(dummy, dummy, [student], [teacher], groups=["select"]))

    assert value(plain, shifted) == pytest.approx(0.5, abs=1e-6)
    assert value(centered, shifted) == pytest.approx(0.0, abs=1e-6)
    assert value(centered, flipped) > 0.1
    assert value(centered, teacher) == 0.0
    with pytest.raises(ValueError, match="selection"):
        GuidanceLoss("feature_in", centering="weights")
    with pytest.raises(ValueError, match="centering must be one of"):
        GuidanceLoss("selection", centering="mean")


def test_log_odds_centering_lets_the_student_change_the_prior_between_the_sources() -> None:
    dummy = torch.zeros(1, 1, 8, 8)
    logits = torch.full((1, 2, 8, 8), 2.0)
    logits[..., :2] = 3.5  # prefers IR everywhere, and more on the left
    teacher = torch.sigmoid(logits)
    reprioritised = torch.sigmoid(logits - 3.0)  # the same evidence, a prior towards the visible image
    reversed_pattern = torch.sigmoid(-logits)
    in_logits = GuidanceLoss("selection", centering="logits")
    in_weights = GuidanceLoss("selection", centering="weights")

    def value(loss: GuidanceLoss, student: torch.Tensor) -> float:
        return float(loss(dummy, dummy, [student], [teacher], groups=["select"]))

    assert value(in_logits, reprioritised) == pytest.approx(0.0, abs=1e-5)
    assert value(in_weights, reprioritised) > 0.05  # the weights' pattern shrinks when the prior moves
    assert value(in_logits, reversed_pattern) > 0.1


def test_relation_guidance_ignores_per_channel_scale_and_shift_of_the_teacher() -> None:
    torch.manual_seed(0)
    phi = torch.randn(2, 6, 10, 10)
    scale = torch.rand(1, 6, 1, 1) + 0.5
    shifted = phi * scale + torch.randn(1, 6, 1, 1)
    loss = GuidanceLoss("relation")
    dummy = torch.zeros(1)
    assert float(loss(dummy, dummy, [phi], [shifted], groups=["cem"])) < 1e-5
    assert float(loss(dummy, dummy, [phi], [torch.randn(2, 6, 10, 10)], groups=["cem"])) > 0.05


def test_source_stage_refuses_a_decision_loss_for_a_painting_network() -> None:
    from stfuse.stages import MFIFStage

    with pytest.raises(ValueError, match="head: select"):
        MFIFStage(net={"preset": "tiny", "head": "paint"})
    MFIFStage(net={"preset": "tiny", "head": "paint"}, lambda_decision=0.0)  # the paint ablation


def test_pyramid_steps_equal_kornias_on_even_sizes() -> None:
    from kornia.geometry.transform import pyrdown, pyrup

    from stfuse.models.blend import pyr_down, pyr_up

    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(pyr_down(x), pyrdown(x), atol=1e-6)
    assert torch.allclose(pyr_up(x), pyrup(x), atol=1e-6)
    nhwc = x.contiguous(memory_format=torch.channels_last)  # the layout of Fuser's channels_last inference
    assert torch.allclose(pyr_down(nhwc), pyrdown(x), atol=1e-6)
    assert torch.allclose(pyr_down(x[:, :1, :46, :62]), pyrdown(x[:, :1, :46, :62]), atol=1e-6)  # one channel


def _recording(forward, calls: list):
    """Wrap a network's forward so each call's two inputs are appended to ``calls``."""

    def wrapped(a: torch.Tensor, b: torch.Tensor, **kwargs):
        calls.append((a, b))
        return forward(a, b, **kwargs)

    return wrapped


def test_matched_guidance_inputs_show_the_teacher_the_pair_with_equal_moments(tmp_path) -> None:
    from stfuse.losses import match_moments
    from stfuse.models import build_network
    from stfuse.models.checkpoint import save_network
    from stfuse.stages.ivif import IVIFTransferStage

    source = save_network(build_network({"preset": "tiny"}), tmp_path / "source.safetensors")
    generator = torch.Generator().manual_seed(0)
    ir = 0.3 + 0.6 * torch.rand(2, 1, 32, 32, generator=generator)
    vi = 0.1 * torch.rand(2, 1, 32, 32, generator=generator)  # a dark visible image
    seen = {}
    for inputs in ("raw", "matched"):
        stage = IVIFTransferStage(
            source_ckpt=str(source),
            guidance="selection",
            guidance_inputs=inputs,
            guidance_detail_tau=0.05,  # the detail weighting reads the raw pair through the objective
            lambda_src=0.0,
            lambda_g_schedule="constant",
        )
        stage.configure_models()
        stage.configure_losses()
        stage.teacher.forward = _recording(stage.teacher.forward, seen.setdefault(inputs, []))
        student_inputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        stage.net.forward = _recording(stage.net.forward, student_inputs)
        loss = stage.training_step({"ir": ir, "vi": vi}, 0)
        assert torch.isfinite(loss)
        assert torch.equal(student_inputs[0][0], ir)  # the student always sees the raw pair
        assert torch.equal(student_inputs[0][1], vi)
    raw, matched = seen["raw"][0], seen["matched"][0]
    assert torch.equal(raw[0], ir) and torch.equal(raw[1], vi)
    expected = match_moments(ir, vi)
    assert torch.allclose(matched[0], expected[0]) and torch.allclose(matched[1], expected[1])
    assert float(matched[1].mean()) == pytest.approx(float(matched[0].mean()), abs=1e-3)
    with pytest.raises(ValueError, match="guidance_inputs must be one of"):
        IVIFTransferStage(source_ckpt=str(source), guidance_inputs="equalised")


def test_band_energy_finds_each_sources_detail_and_leaves_the_base_level_empty() -> None:
    from stfuse.models.blend import band_energy

    flat = torch.full((2, 1, 32, 48), 0.4)
    stripes = flat.clone()
    stripes[..., ::2] = 0.8  # the finest detail there is, in the left half only
    stripes[..., 24:] = 0.4
    energy = band_energy(flat, stripes, 4)
    assert energy.shape == (2, 4, 32, 48)
    assert float(band_energy(flat, flat, 4).abs().max()) < 1e-6
    assert torch.equal(energy, band_energy(stripes, flat, 4))  # either source's detail counts
    assert float(energy[:, 0, :, 4:20].mean()) > 0.1  # the textured half, at the finest level
    assert float(energy[:, 0, :, 30:].max()) < 1e-6  # the flat half carries none
    assert float(energy[:, 3].abs().max()) == 0.0  # the base level is left to the objective
    small = band_energy(flat[..., :10, :10], stripes[..., :10, :10], 4)
    assert small.shape == (2, 4, 10, 10) and float(small[:, 1:].abs().max()) == 0.0  # too small for 4 levels


def test_detail_weighted_selection_guidance_leaves_flat_regions_and_the_base_to_the_student() -> None:
    dummy = torch.zeros(1, 1, 64, 32)
    flat = torch.full((1, 1, 64, 32), 0.3)
    textured = flat.clone()
    textured[..., :16, ::2] = 0.9  # detail in the top quarter only
    teacher = torch.full((1, 4, 64, 32), 0.95)
    disagree_flat = teacher.clone()
    disagree_flat[..., 48:, :] = 0.05  # the bottom rows, far from any detail
    disagree_base = teacher.clone()
    disagree_base[:, 3] = 0.05
    disagree_detail = teacher.clone()
    disagree_detail[:, :3, :16, :] = 0.05  # where the detail is
    loss = GuidanceLoss("selection", detail_tau=0.05)
    plain = GuidanceLoss("selection")

    def value(guidance: GuidanceLoss, student: torch.Tensor) -> float:
        return float(
            guidance(dummy, dummy, [student], [teacher], groups=["select"], sources=(flat, textured))
        )

    assert value(plain, disagree_flat) > 0.1 and value(plain, disagree_base) > 0.1
    assert value(loss, disagree_flat) == pytest.approx(0.0, abs=1e-3)
    assert value(loss, disagree_base) == 0.0
    assert value(loss, disagree_detail) > 0.3
    shared = GuidanceLoss("selection", detail_tau=0.05)  # one shared map takes the finest level's detail
    assert (
        float(shared(dummy, dummy, [disagree_detail[:, :1]], [teacher[:, :1]], sources=(flat, textured)))
        > 0.3
    )
    with pytest.raises(ValueError, match="needs the sources"):
        loss(dummy, dummy, [teacher], [teacher], groups=["select"])
    with pytest.raises(ValueError, match="selection"):
        GuidanceLoss("feature_in", detail_tau=0.05)
    with pytest.raises(ValueError, match="positive"):
        GuidanceLoss("selection", detail_tau=0.0)
