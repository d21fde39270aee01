"""The network's fast CPU paths compute the same function as the plain ones (in float64, to rounding).

Each speed-up in stfuse.models has a plain counterpart that a second code path still runs: the convex blend of
A − B against the explicit pyramids of A and B, channels-last attention and layer norm against the NCHW ones,
a 1×1 conv of parts against the conv of their concatenation. A fast path that drifted from its plain twin
would change what the packaged weights compute only on the layout that users run (channels_last inference).
"""

from __future__ import annotations

import pytest
import torch

from stfuse.models import STFuseNet
from stfuse.models.blend import laplacian_blend
from stfuse.models.blocks import conv_of_concat
from stfuse.models.cem import ChannelAttention, ChannelLayerNorm, CrossFeatureEnhancement

CL = torch.channels_last


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("size", [(64, 48), (37, 53), (6, 9)])
@pytest.mark.parametrize("base", ["learned", "max", "prior", "salient"])
def test_convex_blend_of_the_difference_equals_the_blend_of_both_pyramids(size, base) -> None:
    a, b = _rand(2, 1, *size, seed=1), _rand(2, 1, *size, seed=2)
    weights = _rand(2, 4, *size, seed=3)
    # detail weights of B given as 1 − W take the explicit path (pyramids of A and B); None takes A − B
    explicit = laplacian_blend(a, b, weights, 4, 1.0 - weights[:, :3], base, 0.03)
    fast = laplacian_blend(a, b, weights, 4, None, base, 0.03)
    assert torch.allclose(fast, explicit, atol=1e-12)
    shared = weights[:, :1]
    assert torch.allclose(
        laplacian_blend(a, b, shared, 4, base=base),
        laplacian_blend(a, b, shared, 4, 1.0 - shared, base),
        atol=1e-12,
    )


def test_channels_last_attention_and_layer_norm_equal_the_nchw_paths() -> None:
    torch.manual_seed(0)
    x, y = _rand(2, 24, 13, 17, seed=4), _rand(2, 24, 13, 17, seed=5)
    attention = ChannelAttention(24, heads=3).double()
    with torch.no_grad():
        attention.temperature.copy_(torch.tensor([0.5, 2.0, 7.0]).view(3, 1, 1))
    norm = ChannelLayerNorm(24).double()
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    cem = CrossFeatureEnhancement(24, heads=2).double()
    plain = (attention(x, y), attention.attention_map(x, y), norm(x), *cem(x, y))
    attention, norm, cem = (m.to(memory_format=CL) for m in (attention, norm, cem))
    xl, yl = x.contiguous(memory_format=CL), y.contiguous(memory_format=CL)
    fast = (attention(xl, yl), attention.attention_map(xl, yl), norm(xl), *cem(xl, yl))
    for p, f in zip(plain, fast):
        assert torch.allclose(p, f, atol=1e-12)
    assert fast[0].is_contiguous(memory_format=CL)  # the attended map stays channels-last: no layout copy


def test_conv_of_concat_equals_the_conv_of_the_concatenation_and_checks_the_channels() -> None:
    conv = torch.nn.Conv2d(40, 8, 1).double()
    parts = (_rand(2, 24, 5, 7, seed=6), _rand(2, 16, 5, 7, seed=7))
    assert torch.allclose(conv_of_concat(conv, parts), conv(torch.cat(parts, dim=1)), atol=1e-12)
    with pytest.raises(ValueError, match="the parts have 24 channels in all; the conv takes 40"):
        conv_of_concat(conv, parts[:1])
    with pytest.raises(ValueError, match="needs a plain 1×1 conv"):
        conv_of_concat(torch.nn.Conv2d(40, 8, 3, padding=1).double(), parts)


def test_a_shared_encoder_run_on_the_stacked_batch_equals_two_encoders_with_its_weights() -> None:
    shared = STFuseNet("tiny", cem_depths=[0, 1]).double()  # a CEM splits the stacked batch between blocks
    separate = STFuseNet("tiny", cem_depths=[0, 1], shared_encoder=False).double()
    separate.load_state_dict(shared.state_dict())  # a shared state dict carries both encoders' prefixes
    a, b = _rand(2, 1, 40, 56, seed=10), _rand(2, 1, 40, 56, seed=11)
    out, features = shared(a, b, return_features=True)
    out_separate, features_separate = separate(a, b, return_features=True)
    assert torch.allclose(out, out_separate, atol=1e-12)
    assert all(torch.allclose(f, g, atol=1e-12) for f, g in zip(features, features_separate, strict=True))


@pytest.mark.parametrize("shared_encoder", [True, False])
def test_network_gives_the_same_fusion_and_gradients_in_either_layout(shared_encoder) -> None:
    net = STFuseNet("tiny", shared_encoder=shared_encoder).double()
    a, b = _rand(2, 1, 40, 56, seed=8), _rand(2, 1, 40, 56, seed=9)
    out = net(a, b)
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    net = net.to(memory_format=CL)
    out_cl = net(a.contiguous(memory_format=CL), b.contiguous(memory_format=CL))
    grads_cl = torch.autograd.grad(out_cl.square().sum(), list(net.parameters()))
    assert torch.allclose(out, out_cl, atol=1e-12)
    assert all(torch.allclose(g, h, atol=1e-10) for g, h in zip(grads, grads_cl))
