"""Cross-feature enhancement module (CEM): linear-cost self and mutual attention between two branches.

The attention is *channel* ("transposed") attention in the style of Restormer: queries and keys are
N×heads×c×(H·W) with c = C/heads, the attention map is c×c per head, and its cost is O(c²·H·W), linear in
the number of pixels. Full-resolution images therefore fit where spatial attention (O((H·W)²)) would not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stfuse.models.blocks import conv_of_concat

CEM_MODES = ("full", "self", "mutual", "off")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an N×C×H×W map.

    Restormer normalises each pixel's channel vector. On a channels-last map that vector is contiguous, so the
    fused ``layer_norm`` kernel runs on the NHWC view; any other layout takes plain ``mean(dim=1)`` reductions
    (the same values; tests/test_fast_paths.py). Both trace under ``torch.compile``.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            # NHWC in memory: each pixel's channel vector is contiguous, so the fused layer_norm kernel over
            # the permuted view normalises it in one pass (8× faster on CPU than the reductions below)
            nhwc = F.layer_norm(
                x.permute(0, 2, 3, 1), x.shape[1:2], self.weight.flatten(), self.bias.flatten(), self.eps
            )
            return nhwc.permute(0, 3, 1, 2)
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _row_norms(t: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each row of the ...×r×P matrices t, at least 1e-12, from the diagonal of t·tᵀ: an r×r
    matrix product is several times faster on CPU than a reduction over P, and more so on strided maps."""
    squares = (t @ t.transpose(-2, -1)).diagonal(dim1=-2, dim2=-1)
    return squares.clamp_min(1e-24).sqrt()


def _is_nhwc(t: torch.Tensor) -> bool:
    """True for an N×C×H×W map stored channels-last (each pixel's channels contiguous), C > 1."""
    return t.dim() == 4 and t.shape[1] > 1 and t.is_contiguous(memory_format=torch.channels_last)


def _pixels(t: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×(H·W)×C; a view for channels-last maps and for channel chunks of them."""
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(n, h * w, c)


class ChannelAttention(nn.Module):
    """Multi-head channel attention; queries from ``x``, keys and values from ``context``.

    With ``context is x`` this is self-attention SA(X); with another branch it is mutual attention
    MA(X←Y). q, k and v are 1×1-projected then depthwise-3×3-projected (local context at negligible cost),
    q and k are L2-normalised over pixels and scaled by a learned per-head temperature.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_q = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        )
        self.to_kv = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 1, bias=False),
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, groups=2 * channels, bias=False),
        )
        self.project_out = nn.Conv2d(channels, channels, 1, bias=False)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        n, c, h, w = t.shape
        return t.reshape(n, self.heads, c // self.heads, h * w)  # N×heads×c'×(H·W), c' = C/heads

    def _attention(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """N×heads×c'×c' softmax of the temperature-scaled cosine similarities (over pixels) of q's and k's
        channels within each head; the norms are at least 1e-12, as in F.normalize."""
        if _is_nhwc(q):
            return self._attention_nhwc(_pixels(q), _pixels(k))
        q, k = self._split_heads(q), self._split_heads(k)
        cosine = (q @ k.transpose(-2, -1)) / (_row_norms(q)[..., :, None] * _row_norms(k)[..., None, :])
        return (cosine * self.temperature).softmax(dim=-1)

    def _attention_nhwc(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """:meth:`_attention` on N×P×C pixel-major maps (channels-last memory, where a per-head split would
        copy): one C×C product of every channel pair, whose diagonal blocks are the heads' c'×c' products."""
        n, _, c = q.shape
        heads, width = self.heads, c // self.heads
        gram = (q.transpose(1, 2) @ k).reshape(n, heads, width, heads, width)
        blocks = gram.diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)  # N×heads×c'×c'
        norm_q = _row_norms(q.transpose(1, 2)).reshape(n, heads, width)
        norm_k = _row_norms(k.transpose(1, 2)).reshape(n, heads, width)
        cosine = blocks / (norm_q[..., :, None] * norm_k[..., None, :])
        return (cosine * self.temperature).softmax(dim=-1)

    def attention_map(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The N×heads×c'×c' attention weights; their size does not depend on H×W."""
        k, _ = self.to_kv(context).chunk(2, dim=1)
        return self._attention(self.to_q(x), k)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if x.shape != context.shape:
            raise ValueError(
                f"query and context maps must match, got {tuple(x.shape)} and {tuple(context.shape)}"
            )
        k, v = self.to_kv(context).chunk(2, dim=1)
        q = self.to_q(x)
        attn = self._attention(q, k)
        if not _is_nhwc(q):
            out = attn @ self._split_heads(v)  # N×heads×c'×(H·W)
            return self.project_out(out.reshape(x.shape))
        # channels-last: every pixel's channels mixed by one block-diagonal C×C matrix (the heads' maps), so
        # the result is channels-last too and nothing is copied into a per-head layout and back
        n, c, h, w = x.shape
        eye = torch.eye(self.heads, dtype=attn.dtype, device=attn.device)
        mixing = (attn[:, :, :, None, :] * eye[None, :, None, :, None]).reshape(n, c, c)
        out = (_pixels(v) @ mixing.transpose(1, 2)).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return self.project_out(out)


class BranchRefinement(nn.Module):
    """X' = X + g ⊙ Conv(concat(SA(X), MA(X←Y))) for one branch, with g a learned sigmoid gate.

    The gate lets each pixel decide how much of the attended features to take, so that a branch whose own
    features are already good (e.g. the in-focus side) is not overwritten.
    """

    def __init__(self, channels: int, heads: int, use_self: bool, use_mutual: bool, gated: bool) -> None:
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.norm_context = ChannelLayerNorm(channels) if use_mutual else None
        self.self_attention = ChannelAttention(channels, heads) if use_self else None
        self.mutual_attention = ChannelAttention(channels, heads) if use_mutual else None
        paths = int(use_self) + int(use_mutual)
        self.merge = nn.Conv2d(paths * channels, channels, 1)
        self.gate = nn.Conv2d(2 * channels, channels, 1) if gated else None

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm(x)
        attended: list[torch.Tensor] = []
        if self.self_attention is not None:
            attended.append(self.self_attention(x_norm, x_norm))
        if self.mutual_attention is not None and self.norm_context is not None:
            attended.append(self.mutual_attention(x_norm, self.norm_context(context)))
        update = conv_of_concat(self.merge, attended)
        if self.gate is not None:
            update = torch.sigmoid(conv_of_concat(self.gate, (x, update))) * update
        return x + update


class CrossFeatureEnhancement(nn.Module):
    """Refines both branches with self- and mutual-attention features (the STFuse CEM).

    ``mode``: ``"full"`` (SA + MA), ``"self"`` (SA only), ``"mutual"`` (MA only) or ``"off"`` (identity: the
    decoder then sees the plain concatenation of the encoder features). Each branch has its own weights,
    because the two modalities (or focus sides) call for different refinements.
    """

    def __init__(self, channels: int, heads: int = 4, mode: str = "full", gated: bool = True) -> None:
        super().__init__()
        if mode not in CEM_MODES:
            raise ValueError(f"unknown CEM mode {mode!r}; expected one of {CEM_MODES}")
        if channels < 1 or heads < 1:
            raise ValueError(f"channels and heads must be positive, got channels={channels}, heads={heads}")
        if channels % heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.mode = mode
        if mode == "off":
            self.refine_x = None
            self.refine_y = None
        else:
            use_self = mode in ("full", "self")
            use_mutual = mode in ("full", "mutual")
            self.refine_x = BranchRefinement(channels, heads, use_self, use_mutual, gated)
            self.refine_y = BranchRefinement(channels, heads, use_self, use_mutual, gated)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y: N×C×h×w features of branch A and branch B; returns (X', Y') of the same shapes."""
        if x.shape != y.shape:
            raise ValueError(
                f"branch features must have equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if self.refine_x is None or self.refine_y is None:
            return x, y
        return self.refine_x(x, y), self.refine_y(y, x)
