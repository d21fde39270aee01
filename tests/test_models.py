"""STFuseNet and the cross-feature enhancement module: shapes, config round trip, options, gradients."""

from __future__ import annotations

import json

import pytest
import torch

from stfuse.models import PRESETS, CrossFeatureEnhancement, STFuseNet, build_network, list_presets
from stfuse.models.blocks import pad_to_multiple
from stfuse.models.cem import ChannelAttention

CEM_MODES = ["full", "self", "mutual", "off"]


def _tiny(**overrides: object) -> STFuseNet:
    """A fast network that still has every part (two CEM depths, decoder blocks)."""
    config: dict[str, object] = {
        "preset": "small",
        "channels": 8,
        "num_blocks": 2,
        "cem_depths": [1, 2],
        "heads": 2,
    }
    config.update(overrides)
    return STFuseNet(**config)


def _pair(n: int = 1, h: int = 16, w: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, h, w, generator=generator), torch.rand(n, 1, h, w, generator=generator)


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_presets_are_registered_and_sized() -> None:
    assert list_presets() == ["base", "compact", "small", "tiny"]
    small, base = _count(STFuseNet("small")), _count(STFuseNet("base"))
    compact = STFuseNet("compact")
    assert 50_000 <= small <= 250_000
    assert 50_000 <= _count(compact) <= 250_000
    # The reference CPU model: 1/2-resolution features, a 16-channel full-resolution head, no average prior.
    assert (compact.downsample, compact.config["head_channels"], compact.average_prior) == (2, 16, False)
    assert STFuseNet("small").average_prior and STFuseNet("base").average_prior
    assert STFuseNet("compact", average_prior=True).average_prior
    assert base <= 1_000_000
    assert small * 3 < base


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("size", [(1, 1), (5, 7), (37, 53)])
def test_any_size_gives_same_size_output_in_unit_range(preset: str, size: tuple[int, int]) -> None:
    net = STFuseNet(preset).eval()
    a, b = _pair(2, *size)
    with torch.no_grad():
        fused = net(a, b)
    assert fused.shape == (2, 1, *size)
    assert fused.min() >= 0 and fused.max() <= 1


def test_large_odd_size_is_padded_and_cropped_back() -> None:
    net = STFuseNet("small").eval()
    a, b = _pair(1, 475, 575)
    with torch.no_grad():
        fused, features = net(a, b, return_features=True)
    assert fused.shape == (1, 1, 475, 575)
    head = features[net.feature_groups().index("head")]
    assert head.shape[-2:] == (476, 576)  # the head runs at the padded size, a multiple of 4
    assert features[net.feature_groups().index("select")].shape[-2:] == (
        475,
        575,
    )  # the weight maps are cropped back with the image


def test_pad_to_multiple_reflects_and_falls_back_for_tiny_maps() -> None:
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[..., 3, :], x[..., 1, :])  # reflect: row 3 mirrors row 1
    tiny = pad_to_multiple(torch.ones(1, 1, 1, 1), 4)
    assert tiny.shape == (1, 1, 4, 4) and torch.all(tiny == 1)


@pytest.mark.parametrize("output", ["sigmoid", "clamp"])
def test_output_modes_stay_in_unit_range(output: str) -> None:
    net = _tiny(output=output).eval()
    with torch.no_grad():
        for p in net.decoder.to_image.parameters():
            p.add_(5.0)  # push the raw output far outside [0, 1]
        fused = net(*_pair())
    assert fused.min() >= 0 and fused.max() <= 1


@pytest.mark.parametrize("output", ["sigmoid", "clamp"])
def test_average_prior_makes_a_zero_correction_the_average_rule(output: str) -> None:
    net = _tiny(output=output, head="paint").eval()
    with torch.no_grad():
        for p in net.decoder.to_image.parameters():
            p.zero_()
        a, b = _pair(1, 12, 10)
        assert torch.allclose(net(a, b), 0.5 * (a + b), atol=1e-3)
        net_without = STFuseNet(**{**net.config, "average_prior": False}).eval()
        net_without.load_state_dict(net.state_dict())
        assert torch.allclose(net_without(a, b), torch.full_like(a, 0.5 if output == "sigmoid" else 0.0))


def test_config_round_trip_is_json_and_rebuilds_same_architecture() -> None:
    net = STFuseNet("base", shared_encoder=False, cem="mutual", gated=False, output="clamp")
    config = json.loads(json.dumps(net.config))
    rebuilt = STFuseNet(**config)
    assert rebuilt.config == net.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()
    }
    rebuilt.load_state_dict(net.state_dict())
    a, b = _pair()
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(a, b), net.eval()(a, b))
    assert build_network(config).config == net.config


def test_preset_fills_only_missing_fields() -> None:
    config = STFuseNet("base", channels=16, num_blocks=1).config
    assert config["channels"] == 16 and config["num_blocks"] == 1
    assert config["heads"] == PRESETS["base"]["heads"]
    assert config["cem_depths"] == [1]  # the preset's [2, 4] does not fit one block


def test_config_is_a_copy() -> None:
    net = _tiny()
    net.config["cem_depths"].append(7)
    assert net.config["cem_depths"] == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "huge"}, "unknown preset"),
        ({"cem": "cross"}, "unknown cem"),
        ({"channels": 10, "heads": 4}, "divisible by heads"),
        ({"cem_depths": [5]}, "cem_depths"),
        ({"output": "tanh"}, "unknown output"),
        ({"downsample": 3}, "downsample"),
        ({"block": "transformer"}, "unknown block"),
    ],
)
def test_bad_config_raises_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        STFuseNet(**kwargs)


def test_build_network_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown network config keys"):
        build_network({"preset": "small", "chanels": 8})


def test_build_network_reads_yaml_boolean_off_as_cem_off() -> None:
    """YAML 1.1 parses a bare ``cem: off`` as False."""
    assert build_network({"preset": "small", "cem": False}).config["cem"] == "off"


def test_bad_inputs_raise_clear_errors() -> None:
    net = _tiny()
    a, b = _pair()
    with pytest.raises(ValueError, match="N×1×H×W"):
        net(a.expand(1, 3, 16, 16), b)
    with pytest.raises(ValueError, match="same shape"):
        net(a, b[..., :8])
    with pytest.raises(TypeError, match="floating"):
        net((a * 255).to(torch.uint8), b)


@pytest.mark.parametrize("cem", CEM_MODES)
@pytest.mark.parametrize("shared_encoder", [True, False])
def test_feature_list_structure_is_the_same_for_every_option(cem: str, shared_encoder: bool) -> None:
    net = _tiny(cem=cem, shared_encoder=shared_encoder)
    fused, features = net(*_pair(2, 16, 24), return_features=True)
    assert fused.shape == (2, 1, 16, 24)
    # one concat(X', Y') per CEM depth, the merged decoder map, the full-resolution head map, the weight maps,
    # then the encoder's concat(X, Y) entering each CEM depth
    assert [tuple(f.shape) for f in features] == [
        (2, 16, 4, 6),
        (2, 16, 4, 6),
        (2, 8, 4, 6),
        (2, 8, 16, 24),
        (2, 4, 16, 24),
        (2, 16, 4, 6),
        (2, 16, 4, 6),
    ]
    assert net.feature_groups() == ["cem", "cem", "decoder", "head", "select", "encoder", "encoder"]
    if cem == "off":  # no CEM: the maps it would refine are the encoder's, unchanged
        torch.testing.assert_close(features[0], features[5])
        torch.testing.assert_close(features[1], features[6])


def test_encoder_maps_see_each_source_alone_and_cem_maps_see_both() -> None:
    net = _tiny(cem="full").eval()
    a, b = _pair(1, 16, 24, seed=0)
    _, other_b = _pair(1, 16, 24, seed=1)
    groups = net.feature_groups()
    with torch.no_grad():
        _, features = net(a, b, return_features=True)
        _, changed = net(a, other_b, return_features=True)
    half = net.config["channels"]
    encoder, cem = groups.index("encoder"), groups.index("cem")
    # A's half of the encoder map is A's alone; B's half moves with B
    torch.testing.assert_close(features[encoder][:, :half], changed[encoder][:, :half])
    assert (features[encoder][:, half:] - changed[encoder][:, half:]).abs().max() > 1e-3
    # after the mutual attention, A's branch has looked at B
    assert (features[cem][:, :half] - changed[cem][:, :half]).abs().max() > 1e-4


def test_cem_modes_differ_in_parameters() -> None:
    counts = {mode: _count(CrossFeatureEnhancement(16, heads=2, mode=mode)) for mode in CEM_MODES}
    assert counts["off"] == 0
    assert counts["self"] == counts["mutual"] - 2 * 32  # mutual has an extra context LayerNorm per branch
    assert counts["self"] < counts["full"] and counts["mutual"] < counts["full"]
    assert _count(CrossFeatureEnhancement(16, 2, "full", gated=False)) < counts["full"]


def test_mutual_attention_lets_the_other_branch_change_a_branch() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    y_other = torch.randn(1, 8, 6, 6)
    for mode, depends_on_y in [("full", True), ("mutual", True), ("self", False), ("off", False)]:
        cem = CrossFeatureEnhancement(8, heads=2, mode=mode)
        x_refined, _ = cem(x, y)
        x_refined_other, _ = cem(x, y_other)
        assert torch.allclose(x_refined, x_refined_other) != depends_on_y, mode


def test_channel_attention_map_size_does_not_grow_with_pixels() -> None:
    """The attention is c'×c' per head whatever H×W is: the cost is linear in the number of pixels."""
    attention = ChannelAttention(8, heads=2)
    for side in (8, 64):
        x, context = torch.randn(1, 8, side, side), torch.randn(1, 8, side, side)
        weights = attention.attention_map(x, context)
        assert weights.shape == (1, 2, 4, 4)
        assert torch.allclose(weights.sum(dim=-1), torch.ones(1, 2, 4))
        assert attention(x, context).shape == x.shape


def test_gradients_reach_both_branches_and_every_cem() -> None:
    net = _tiny(shared_encoder=False)
    fused = net(*_pair(2, 16, 16))
    fused.square().mean().backward()
    for group_name, module in [
        ("encoder_a", net.encoder_a),
        ("encoder_b", net.encoder_b),
        ("decoder", net.decoder),
    ]:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), group_name
    for index, cem in enumerate(net.cems):
        for branch in (cem.refine_x, cem.refine_y):
            assert branch is not None
            weight = branch.mutual_attention.to_q[0].weight
            assert weight.grad is not None and weight.grad.abs().sum() > 0, f"cem {index}"


def test_parameter_groups_cover_the_network_once() -> None:
    for shared in (True, False):
        net = _tiny(shared_encoder=shared)
        groups = net.encoder_parameters() + net.cem_parameters() + net.decoder_parameters()
        assert len({id(p) for p in groups}) == len(groups) == len(list(net.parameters()))


def test_shared_encoder_weights_load_into_separate_encoders() -> None:
    shared = _tiny(shared_encoder=True).eval()
    assert shared.encoder_b is shared.encoder_a
    separate = _tiny(shared_encoder=False).eval()
    separate.load_state_dict(shared.state_dict())
    a, b = _pair()
    with torch.no_grad():
        assert torch.allclose(separate(a, b), shared(a, b), atol=1e-6)


def test_batch_samples_do_not_mix() -> None:
    """The shared encoder stacks A and B along the batch; each sample must still be fused on its own."""
    net = _tiny().eval()
    a, b = _pair(3, 12, 20)
    with torch.no_grad():
        batched = net(a, b)
        single = net(a[1:2], b[1:2])
    assert torch.allclose(batched[1:2], single, atol=1e-6)


def test_channels_last_matches_contiguous() -> None:
    net = STFuseNet("small").eval()
    a, b = _pair(2, 40, 56)
    with torch.no_grad():
        reference = net(a, b)
        net_cl = net.to(memory_format=torch.channels_last)
        result = net_cl(
            a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
        )
    assert torch.allclose(result, reference, atol=1e-5)


def test_dense_blocks_and_no_downsampling_work() -> None:
    net = _tiny(block="dense", downsample=1)
    fused, features = net(*_pair(1, 9, 11), return_features=True)
    assert fused.shape == (1, 1, 9, 11)
    assert features[0].shape[-2:] == (9, 11)
