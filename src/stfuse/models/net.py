"""STFuseNet: two-branch encoder, cross-feature enhancement (CEM) and a fusion decoder.

Layout (s = ``downsample``, C = ``channels``, C_f = ``head_channels``)::

    A ─ pixel-unshuffle ×s ─ 3×3 stem ─ block₁ … block_B ─┐   a CEM after each block depth listed in
    B ─ pixel-unshuffle ×s ─ 3×3 stem ─ block₁ … block_B ─┘   ``cem_depths`` refines (X, Y) → (X', Y')
    concat(X', Y') ─ 1×1 ─ decoder blocks ─ 3×3 + pixel-shuffle ×s ─ concat(·, A, B) ─ 3×3 ─ 3×3 ─ k ch

``head="paint"``: k = 1, the fused pixels themselves (+ the average of A and B when ``average_prior``) ─
sigmoid | clamp. ``head="select"``: k = ``levels`` (or 1 shared) weight maps W of source A, and the fused image
is the Laplacian-pyramid blend of A and B with them (stfuse.models.blend), plus an optional bounded detail
residual (one more channel, ``residual`` · tanh). Selecting keeps the real source pixels, so information is
carried through instead of re-rendered.

Everything but the last two convs runs at 1/s resolution, which is what makes the network cheap on CPU;
the raw sources are fed to the full-resolution head so fine detail survives the down-sampling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stfuse.models.blend import BASE_MAX_TAU, bounded_weights, laplacian_blend
from stfuse.models.blocks import (
    BLOCK_TYPES,
    activation,
    check_sources,
    conv_of_concat,
    make_block,
    pad_to_multiple,
    run_branches,
    split_pair,
)
from stfuse.models.cem import CEM_MODES, CrossFeatureEnhancement
from stfuse.models.presets import (
    BASE_RULES,
    DEFAULT_PRESET,
    DETAIL_MODES,
    HEAD_MODES,
    OUTPUT_MODES,
    PRESETS,
    WEIGHT_MAPS,
)


class BranchEncoder(nn.Module):
    """One source branch: space-to-depth + 3×3 conv stem at 1/s resolution, then conv blocks.

    Pixel-unshuffle keeps every input pixel (nothing is averaged away) while no C-channel map is ever
    stored at full resolution; on CPU those full-resolution maps, not the FLOPs, dominate the run time.
    A container without ``forward``: STFuseNet runs the steps itself so that CEMs can sit between blocks.
    """

    def __init__(self, channels: int, num_blocks: int, downsample: int, block: str) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(downsample),
            nn.Conv2d(downsample * downsample, channels, 3, padding=1),
            activation(),
        )
        self.blocks = nn.ModuleList(make_block(block, channels) for _ in range(num_blocks))


class FusionDecoder(nn.Module):
    """concat(X', Y') → 1×1 merge → blocks → pixel-shuffle ×s → [up, A, B] → 3×3 → 3×3 → one channel.

    The sources themselves are the full-resolution skip: the last two convs see the raw pixels of A and B
    beside the up-sampled fusion features, so fine detail does not have to pass through the 1/s bottleneck.
    A container without ``forward``, driven by STFuseNet (which also returns its intermediate maps).
    """

    def __init__(
        self,
        channels: int,
        num_blocks: int,
        downsample: int,
        head_channels: int,
        block: str,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        self.merge = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), activation())
        self.blocks = nn.Sequential(*(make_block(block, channels) for _ in range(num_blocks)))
        self.upsample = nn.Sequential(
            nn.Conv2d(channels, head_channels * downsample * downsample, 3, padding=1),
            nn.PixelShuffle(downsample),
            activation(),
        )
        self.head = nn.Sequential(nn.Conv2d(head_channels + 2, head_channels, 3, padding=1), activation())
        self.to_image = nn.Conv2d(head_channels, out_channels, 3, padding=1)


class STFuseNet(nn.Module):
    """The STFuse fusion network; a plain nn.Module whose kwargs are all JSON types.

    Args:
        preset: a name of :data:`PRESETS` (``"compact"``, ``"small"``, ``"base"``, ``"tiny"``); fills every
            argument left as None.
        channels: feature width C of both branches (divisible by ``heads``).
        num_blocks: conv blocks per encoder branch (the decoder gets ``max(1, num_blocks // 2)``).
        shared_encoder: one encoder for both sources (source stage) or two separate ones.
        cem: ``"full"`` (self + mutual attention), ``"self"``, ``"mutual"`` or ``"off"`` (plain concat).
        cem_depths: encoder depths after which a CEM refines both branches; depth d means "after block d"
            (0 = right after the down-sampling). None: the preset's depths if they fit ``num_blocks``,
            otherwise ``[num_blocks]``.
        heads: attention heads of the channel attention.
        gated: gate the CEM update per pixel (X' = X + g ⊙ update).
        output: ``"sigmoid"`` or ``"clamp"`` to [0, 1].
        downsample: 1, 2 or 4; the encoder stride. Attention runs at 1/downsample resolution.
        head_channels: width C_f of the full-resolution output head (the main CPU cost per pixel).
        block: ``"residual"`` or ``"dense"`` conv blocks.
        average_prior: the decoder predicts a correction to the average of A and B (added before the
            sigmoid/clamp) instead of the image itself, so an untrained network already fuses like the
            average rule and short CPU runs start from a sensible image. None: the preset's choice.
            ``paint`` head only.
        head: ``"select"`` (the decoder predicts the weight of A for a Laplacian-pyramid blend of the sources;
            an untrained network blends 50/50) or ``"paint"`` (it predicts the fused pixels, the ablation).
            None: the preset's choice (``select`` for every preset).
        levels: pyramid levels of the ``select`` blend (1 = a per-pixel blend).
        weight_maps: ``"level"`` (one weight map per pyramid level) or ``"shared"`` (one map for all levels).
        residual: bound of the ``select`` head's detail residual added to the blend (0 = none, a pure blend).
        detail: ``"convex"`` (each detail level is W·L(A) + (1 − W)·L(B)) or ``"independent"`` (W·L(A) + V·L(B)
            with V predicted by its own maps, one per detail level or one shared, so the texture of both sources
            can be kept). The base level is convex either way. ``select`` head only.
        select_bound: soft bound on the weight logits (weights stay in [σ(−b), σ(b)]); ≤ 0 disables it.
        base: ``"learned"`` (the base level takes the predicted weight map), ``"max"`` (a soft brighter-source rule
            on the coarsest levels; the network selects the detail levels), ``"prior"`` (that rule shifted by the
            predicted base weight) or ``"salient"`` (the source farther from its own mean). Select, levels ≥ 2.

    ``net.config`` returns the resolved kwargs, so ``STFuseNet(**net.config)`` rebuilds the architecture.
    With a shared encoder, ``encoder_b`` *is* ``encoder_a``; the state dict then carries both prefixes, which
    lets shared source-stage weights load straight into a separate-encoder target network.
    """

    def __init__(
        self,
        preset: str = DEFAULT_PRESET,
        channels: int | None = None,
        num_blocks: int | None = None,
        shared_encoder: bool = True,
        cem: str = "full",
        cem_depths: list[int] | None = None,
        heads: int | None = None,
        gated: bool = True,
        output: str = "sigmoid",
        downsample: int | None = None,
        head_channels: int | None = None,
        block: str | None = None,
        average_prior: bool | None = None,
        head: str | None = None,
        levels: int = 4,
        weight_maps: str = "level",
        residual: float = 0.0,
        select_bound: float = 4.0,
        detail: str = "convex",
        base: str = "learned",
        base_tau: float = BASE_MAX_TAU,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        defaults = PRESETS[preset]
        channels = int(defaults["channels"] if channels is None else channels)
        num_blocks = int(defaults["num_blocks"] if num_blocks is None else num_blocks)
        heads = int(defaults["heads"] if heads is None else heads)
        downsample = int(defaults["downsample"] if downsample is None else downsample)
        head_channels = int(defaults["head_channels"] if head_channels is None else head_channels)
        block = str(defaults["block"] if block is None else block)
        average_prior = bool(defaults["average_prior"] if average_prior is None else average_prior)
        head = str(defaults["head"] if head is None else head)
        if cem_depths is None:
            preset_depths = list(defaults["cem_depths"])
            cem_depths = preset_depths if max(preset_depths) <= num_blocks else [num_blocks]
        cem_depths = sorted({int(d) for d in cem_depths})

        options = {"cem": (cem, CEM_MODES), "output": (output, OUTPUT_MODES), "block": (block, BLOCK_TYPES),
                   "head": (head, HEAD_MODES), "weight_maps": (weight_maps, WEIGHT_MAPS)}  # fmt: skip
        for name, (value, modes) in options.items():
            if value not in modes:
                raise ValueError(f"unknown {name} {value!r}; expected one of {modes}")
        if channels < 1 or num_blocks < 0:
            raise ValueError(f"channels must be ≥ 1 and num_blocks ≥ 0, got {channels} and {num_blocks}")
        if heads < 1 or channels % heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        if not cem_depths or any(d < 0 or d > num_blocks for d in cem_depths):
            raise ValueError(
                f"cem_depths must be a non-empty list within [0, num_blocks={num_blocks}], got {cem_depths}"
            )
        if downsample not in (1, 2, 4):
            raise ValueError(f"downsample must be 1, 2 or 4, got {downsample}")
        if head_channels < 1:
            raise ValueError(f"head_channels must be ≥ 1, got {head_channels}")
        if not 1 <= int(levels) <= 8:
            raise ValueError(f"levels must be within [1, 8], got {levels}")
        if not 0 < float(base_tau) < float("inf"):
            raise ValueError(f"base_tau must be a finite temperature > 0, got {base_tau}")
        if not 0 <= float(residual) < float("inf") or (float(residual) > 0 and head != "select"):
            raise ValueError(  # the paint head predicts the pixels: it has no detail residual to bound
                f"residual must be a finite bound ≥ 0 of the select head's detail residual, and 0 for another "
                f"head (set net.residual: 0.0), got {residual} with head {head!r}"
            )
        for name, value, plain, modes in (
            ("detail", detail, "convex", DETAIL_MODES),
            ("base", base, "learned", BASE_RULES),
        ):
            if value not in modes:
                raise ValueError(f"unknown {name} {value!r}; expected one of {modes}")
            if value != plain and (head != "select" or int(levels) < 2):
                raise ValueError(
                    f"{name} {value!r} needs the select head with levels ≥ 2 (detail levels above a base level), "
                    f"got head {head!r} and levels {levels}"
                )

        self._config: dict[str, Any] = {
            "preset": preset,
            "channels": channels,
            "num_blocks": num_blocks,
            "shared_encoder": bool(shared_encoder),
            "cem": cem,
            "cem_depths": cem_depths,
            "heads": heads,
            "gated": bool(gated),
            "output": output,
            "downsample": downsample,
            "head_channels": head_channels,
            "block": block,
            "average_prior": bool(average_prior),
            "head": head,
            "levels": int(levels),
            "weight_maps": weight_maps,
            "residual": float(residual),
            "select_bound": float(select_bound),
            "detail": detail,
            "base": base,
            "base_tau": float(base_tau),
        }
        self.downsample = downsample
        self.output = output
        self.shared_encoder = bool(shared_encoder)
        self.average_prior = bool(average_prior)
        self.cem_depths = cem_depths
        self.head = head
        self.levels = int(levels)
        self.residual = float(residual)
        self.select_bound = float(select_bound)
        weight_channels = (self.levels if weight_maps == "level" else 1) if head == "select" else 0
        #: output channels [0, weight_channels): the weights of A; then the detail weights of B (``independent``)
        self.weight_channels = weight_channels
        self.detail = detail
        self.base = base
        self.base_tau = float(base_tau)
        self.detail_channels = 0 if detail == "convex" else (self.levels - 1 if weight_maps == "level" else 1)
        out_channels = (
            1 if head == "paint" else weight_channels + self.detail_channels + (1 if self.residual > 0 else 0)
        )

        self.encoder_a = BranchEncoder(channels, num_blocks, downsample, block)
        self.encoder_b = (
            self.encoder_a if shared_encoder else BranchEncoder(channels, num_blocks, downsample, block)
        )
        self.cems = nn.ModuleList(CrossFeatureEnhancement(channels, heads, cem, gated) for _ in cem_depths)
        self.decoder = FusionDecoder(
            channels, max(1, num_blocks // 2), downsample, head_channels, block, out_channels
        )

    @staticmethod
    def saved_config(config: dict[str, Any]) -> dict[str, Any]:
        """A config read from a checkpoint, as this version builds it.

        Networks saved before the ``select`` head existed list every key of their resolved config but
        ``head``; they painted their output, so their config gets ``head: paint`` (the presets now select).
        """
        config = dict(config)
        if "head" not in config and "average_prior" in config:
            config["head"] = "paint"
        return config

    @property
    def config(self) -> dict[str, Any]:
        """The resolved, JSON-serialisable kwargs: ``STFuseNet(**net.config)`` rebuilds this architecture."""
        return {key: list(value) if isinstance(value, list) else value for key, value in self._config.items()}

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of both branch encoders, each listed once (a shared encoder is not counted twice)."""
        params = list(self.encoder_a.parameters())
        if not self.shared_encoder:
            params += list(self.encoder_b.parameters())
        return params

    def cem_parameters(self) -> list[nn.Parameter]:
        """Parameters of all cross-feature enhancement modules."""
        return list(self.cems.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the fusion decoder."""
        return list(self.decoder.parameters())

    def _prior(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The average rule, in the output's pre-activation space (logit for sigmoid)."""
        average = 0.5 * (a + b)
        if self.output == "sigmoid":
            return torch.logit(average.clamp(1e-3, 1 - 1e-3))
        return average

    def feature_groups(self) -> list[str]:
        """The group of each guidance feature that ``forward(..., return_features=True)`` returns, in order:
        ``cem`` per CEM depth, then ``decoder`` (the merged 1/s map), ``head`` (the full-resolution map), for
        the ``select`` head ``select`` (the N×k×H×W weight maps of source A), and last ``encoder`` per CEM depth
        (the branch encoders' concat(X, Y) that enters that CEM: each source's features on their own, before
        the branches see each other). The encoder maps come last so that the earlier indices keep their
        meaning."""
        groups = ["cem"] * len(self.cem_depths) + ["decoder", "head"]
        groups += ["select"] if self.head == "select" else []
        return groups + ["encoder"] * len(self.cem_depths)

    def cem_maps_on(self, encoder_maps: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """Each CEM's concat(X', Y') recomputed from the given concat(X, Y) encoder maps (group ``encoder``).

        Given the maps ``forward(..., return_features=True)`` returned, detached, the values equal the ``cem``
        maps of that call, but a loss on them trains only the CEMs, never the encoder that fed them.
        """
        if len(encoder_maps) != len(self.cems):
            raise ValueError(
                f"expected {len(self.cems)} encoder map(s), one per CEM depth, got {len(encoder_maps)}"
            )
        return [torch.cat(cem(*phi.chunk(2, dim=1)), dim=1) for cem, phi in zip(self.cems, encoder_maps)]

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Fuse N×1×H×W sources a and b (in [0, 1], any H×W) into an N×1×H×W image in [0, 1].

        With ``return_features=True`` also returns the guidance features φ_l: one concat(X', Y') map
        (N×2C×h×w) per CEM depth, the merged decoder map (N×C×h×w) and the full-resolution decoder map
        (N×C×H'×W'), the select head's weight maps, and one pre-CEM concat(X, Y) map per CEM depth (group
        ``encoder``, :meth:`feature_groups`), where h×w = H'/s×W'/s and H'×W' is the padded size. The list
        structure depends only on ``cem_depths`` and the head, not on the CEM mode (``cem="off"`` gives the
        unrefined maps, equal to the encoder maps).
        """
        check_sources(a, b)
        height, width = a.shape[-2:]
        a = pad_to_multiple(a, self.downsample)  # N×1×H'×W'
        b = pad_to_multiple(b, self.downsample)
        enc_a, enc_b = self.encoder_a, self.encoder_b
        pair = run_branches(enc_a.stem, enc_b.stem, (a, b))  # N×C×h×w each, h×w = H'/s×W'/s

        features: list[torch.Tensor] = []
        encoder_maps: list[torch.Tensor] = []
        cem_index = 0
        for depth in range(len(enc_a.blocks) + 1):
            if depth > 0:
                pair = run_branches(enc_a.blocks[depth - 1], enc_b.blocks[depth - 1], pair)
            if cem_index < len(self.cem_depths) and self.cem_depths[cem_index] == depth:
                x, y = split_pair(pair)
                if return_features:
                    encoder_maps.append(torch.cat([x, y], dim=1))
                pair = self.cems[cem_index](x, y)
                if return_features:
                    features.append(torch.cat(pair, dim=1))
                cem_index += 1
        x, y = split_pair(pair)

        dec = self.decoder
        merged = conv_of_concat(dec.merge[0], (x, y))  # the merge conv of concat(X', Y')
        fused = dec.blocks(dec.merge[1](merged))  # N×C×h×w
        up, sources = dec.upsample(fused), torch.cat([a, b], dim=1)
        if up.is_contiguous(memory_format=torch.channels_last):  # else the concat below comes out NCHW
            sources = sources.contiguous(memory_format=torch.channels_last)
        full = dec.head(torch.cat([up, sources], dim=1))  # N×C_f×H'×W'
        raw = dec.to_image(full)[..., :height, :width]  # N×k×H×W
        a, b = a[..., :height, :width], b[..., :height, :width]
        weights = None
        if self.head == "select":
            weights = bounded_weights(raw[:, : self.weight_channels], self.select_bound)  # N×L×H×W
            end = self.weight_channels + self.detail_channels
            detail_b = (
                bounded_weights(raw[:, self.weight_channels : end], self.select_bound)
                if self.detail_channels
                else None
            )
            out = laplacian_blend(a, b, weights, self.levels, detail_b, self.base, self.base_tau)
            if self.residual > 0:
                out = out + self.residual * torch.tanh(raw[:, end:])
            out = out.clamp(0.0, 1.0)
        else:
            if self.average_prior:
                raw = raw + self._prior(a, b)
            out = torch.sigmoid(raw) if self.output == "sigmoid" else raw.clamp(0.0, 1.0)
        if return_features:
            features.append(fused)
            features.append(full)
            if weights is not None:
                features.append(weights)
            return out, features + encoder_maps
        return out
