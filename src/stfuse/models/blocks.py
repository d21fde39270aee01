"""Small convolutional building blocks shared by the STFuse encoder and decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLOCK_TYPES = ("residual", "dense")


def activation() -> nn.Module:
    """The one activation used throughout; LeakyReLU is cheap on CPU and keeps gradients on dark pixels.

    In place: every use follows a conv, a sum or a pixel shuffle, whose fresh output nothing else reads (and
    whose backward does not need it); on CPU, writing into a new full-resolution map costs more than the
    activation itself."""
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualBlock(nn.Module):
    """x + Conv3×3(act(Conv3×3(x))), followed by an activation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            activation(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class DenseBlock(nn.Module):
    """Three densely connected 3×3 convs (growth ``channels // 2``), a 1×1 fusion, and a residual add.

    The DenseFuse-style option: every layer sees all earlier maps, which keeps shallow texture available
    to the fusion at a small parameter cost.
    """

    def __init__(self, channels: int, layers: int = 3) -> None:
        super().__init__()
        growth = max(channels // 2, 1)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels + i * growth, growth, 3, padding=1), activation())
            for i in range(layers)
        )
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for layer in self.layers:
            maps.append(layer(torch.cat(maps, dim=1)))
        return self.act(x + self.fuse(torch.cat(maps, dim=1)))


def make_block(kind: str, channels: int) -> nn.Module:
    """Build one encoder/decoder block by name (``"residual"`` or ``"dense"``)."""
    if kind == "residual":
        return ResidualBlock(channels)
    if kind == "dense":
        return DenseBlock(channels)
    raise ValueError(f"unknown block type {kind!r}; expected one of {BLOCK_TYPES}")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W at the bottom/right up to a multiple of ``multiple``.

    Reflect padding avoids a dark border that the fusion would treat as an edge; maps too small to reflect
    (a pad as large as the side) fall back to replicate padding.
    """
    h, w = x.shape[-2:]
    pad_h = (-h) % multiple
    pad_w = (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def check_sources(a: torch.Tensor, b: torch.Tensor) -> None:
    """Raise a clear error unless a and b are floating N×1×H×W tensors of one shape (the network's inputs)."""
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"source {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 1:
            raise ValueError(f"source {name} must be N×1×H×W, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"source {name} must be a floating tensor in [0, 1], got {t.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"sources must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


#: the two branches' maps: (X, Y), or one batch of 2N with both sources stacked (a shared encoder)
Pair = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def split_pair(pair: Pair) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, Y) of a pair, splitting a stacked batch of 2N into its two halves."""
    return pair if isinstance(pair, tuple) else pair.chunk(2, dim=0)


def run_branches(module_a: nn.Module, module_b: nn.Module, pair: Pair) -> Pair:
    """Apply a branch module to each source of ``pair``: (X, Y), or one batch of 2N with both sources stacked.

    A shared module (``module_a is module_b``) runs once on the stacked batch and returns it stacked, so
    consecutive shared steps neither split nor re-concatenate; separate modules get one half each.
    """
    if module_a is module_b:
        return module_a(pair if isinstance(pair, torch.Tensor) else torch.cat(pair, dim=0))
    x, y = split_pair(pair)
    return module_a(x), module_b(y)


def conv_of_concat(conv: nn.Conv2d, parts: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``conv(torch.cat(parts, dim=1))`` for a 1×1 conv, as the sum of one conv per part (the matching slice of
    the weight): the same values without the concatenated map, which on channels-last CPU maps costs more than
    the sum."""
    weight = conv.weight
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError(
            f"conv_of_concat needs a plain 1×1 conv, got kernel {conv.kernel_size}, groups {conv.groups}"
        )
    channels = sum(part.shape[1] for part in parts)
    if not parts or channels != weight.shape[1]:
        raise ValueError(f"the parts have {channels} channels in all; the conv takes {weight.shape[1]}")
    start, total = 0, None
    for part in parts:
        out = F.conv2d(part, weight[:, start : start + part.shape[1]], conv.bias if total is None else None)
        total = out if total is None else total.add_(out)
        start += part.shape[1]
    return total
