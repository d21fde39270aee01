"""``Fuser``: the Python API for fusing infrared/visible pairs with a trained network or a classical baseline.

    from stfuse import Fuser
    fuser = Fuser.from_checkpoint("ivif.ckpt")          # or None: the packaged default weights
    fused = fuser.fuse(ir, vi)                          # numpy / PIL / tensor in, the same kind out

Colour follows METHOD.md: the network fuses the infrared image with the visible image's luminance Y, and
the result is recombined with the visible image's Cb/Cr. Any size is accepted; large images are fused in
blended tiles (see :mod:`stfuse.inference.tiling`), and a CUDA out-of-memory error falls back to tiles.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stfuse.inference.compute import autocast, is_out_of_memory, resolve_device, resolve_precision
from stfuse.inference.convert import check_unit_range, from_batch, to_batch
from stfuse.inference.options import DEFAULT_MAX_PIXELS, DEFAULT_TILE, DEFAULT_TILE_OVERLAP
from stfuse.inference.tiling import fuse_tiled

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TILE",
    "DEFAULT_TILE_OVERLAP",
    "DEFAULT_WEIGHTS",
    "Fuser",
    "NoDefaultWeightsError",
]

#: where a release ships trained weights; absent in a development checkout.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "stfuse_default.safetensors"
_MIN_TILE = 128


class NoDefaultWeightsError(FileNotFoundError):
    """No checkpoint was given and this installation ships no default weights."""


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    from data_modules.io import rgb_to_y_cbcr

    return rgb_to_y_cbcr(rgb)[0]


class Fuser:
    """Fuses infrared/visible pairs of any size with a network (or a classical baseline).

    Args:
        net: a fusion network ``net(a, b)`` on N×1×H×W in [0, 1]; None with ``baseline``.
        baseline: name of a classical rule from :mod:`stfuse.baselines` used instead of a network.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        precision: ``"fp32"``, ``"bf16"`` (CPU or GPU) or ``"fp16"`` (GPU) autocast.
        channels_last: run convolutions in NHWC memory layout (faster on recent CPUs and tensor cores).
        compile: wrap the network in ``torch.compile`` (pays off on long runs of same-size images).
        tile: tile side for large images; None: tile only above ``max_pixels``, in the largest tiles
            within that budget (at most :data:`DEFAULT_TILE`); 0: never tile (but still fall back to tiles
            on out-of-memory).
        tile_overlap: pixels shared by neighbouring tiles, blended with raised-cosine weights.
        max_pixels: images with more pixels than this are tiled automatically; None disables that.
            The default suits CPUs and GPUs with 16 GB or more; the OOM fallback covers smaller GPUs.
        tiles_per_batch: tiles sent through the network together.
        progress: show a progress bar (on stderr) while an image is fused in tiles.
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        *,
        baseline: str | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool = False,
        tile: int | None = None,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        tiles_per_batch: int = 1,
        progress: bool = False,
    ) -> None:
        if (net is None) == (baseline is None):
            raise ValueError("give exactly one of `net` and `baseline`")
        if tile is not None and tile != 0 and tile <= tile_overlap:
            raise ValueError(f"tile ({tile}) must be larger than tile_overlap ({tile_overlap})")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = channels_last
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.max_pixels = max_pixels
        self.tiles_per_batch = tiles_per_batch
        self.progress = progress
        self.baseline = baseline
        self.net: nn.Module | None = None
        self._run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
        if net is not None:
            net = net.to(self.device).eval()
            for parameter in net.parameters():
                parameter.requires_grad_(False)
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
            self.net = net
            runner: Callable[..., torch.Tensor] = net
            if compile:
                # The weights never change after this point, so inductor may fold them into the compiled
                # graph as constants ("freezing"): on CPU that pre-packs them for oneDNN once instead of on
                # every call (about 10 % faster on the compact preset, docs/inference.md).
                runner = torch.compile(net, dynamic=True, options={"freezing": True})
            self._run = runner
        else:
            self._run = _baseline_function(str(baseline))
        self.config: dict[str, Any] = dict(getattr(net, "config", {}) or {})
        self.metadata: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ builders
    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        expected_config: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Fuser:
        """A Fuser over the network in ``path`` (``.ckpt``, ``.pt``/``.pth`` or ``.safetensors``), loaded safely.

        ``path=None`` uses the packaged default weights. Other keyword arguments go to :class:`Fuser`.
        """
        from stfuse.models.checkpoint import load_network_with_metadata

        if path is None:
            if not DEFAULT_WEIGHTS.is_file():
                raise NoDefaultWeightsError(
                    f"no default weights are packaged with this STFuse installation (expected {DEFAULT_WEIGHTS}); "
                    "pass a checkpoint path (--ckpt on the command line)"
                )
            path = DEFAULT_WEIGHTS
        net, net_config, metadata = load_network_with_metadata(
            path, map_location="cpu", expected_config=expected_config, config=config
        )
        fuser = cls(net, device=device, **kwargs)
        fuser.config = net_config
        fuser.metadata = metadata
        return fuser

    @classmethod
    def from_baseline(cls, name: str, device: str | torch.device = "cpu", **kwargs: Any) -> Fuser:
        """A Fuser applying the classical rule ``name`` (see ``stfuse.baselines``)."""
        return cls(baseline=name, device=device, **kwargs)

    # --------------------------------------------------------------------------------------------- core
    def _forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """One network pass on device tensors: autocast, channels_last, fp32 output."""
        if self.net is None:
            return self._run(a.float(), b.float()).float()
        if self.channels_last:
            a = a.contiguous(memory_format=torch.channels_last)
            b = b.contiguous(memory_format=torch.channels_last)
        # no_grad rather than inference_mode: results stay ordinary tensors that callers may modify in place.
        with torch.no_grad(), autocast(self.device, self.precision):
            return self._run(a, b).float().contiguous()

    def _tile_for(self, height: int, width: int) -> int | None:
        """The tile side to use for an H×W input, or None for a single pass."""
        if self.net is None or self.tile == 0:
            return None
        if self.tile is not None:
            return self.tile if max(height, width) > self.tile else None
        if self.max_pixels is not None and height * width > self.max_pixels:
            return self._budget_tile()
        return None

    def _budget_tile(self) -> int:
        """The largest tile within the pixel budget (at most :data:`DEFAULT_TILE`), a multiple of 16."""
        side = math.isqrt(self.max_pixels) if self.max_pixels is not None else DEFAULT_TILE
        return max(_MIN_TILE, min(DEFAULT_TILE, side // 16 * 16))

    def fuse_luminance(self, ir: torch.Tensor, vi_y: torch.Tensor) -> torch.Tensor:
        """Fuse N×1×H×W infrared and visible-Y tensors in [0, 1]; float32 N×1×H×W on ``ir``'s device.

        Anything else (another type or shape, integer or bool pixels, a meta tensor, NaN, infinite or
        out-of-range values) is a ``TypeError``/``ValueError`` naming the argument.
        """
        for role, tensor in (("ir", ir), ("vi_y", vi_y)):
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(
                    f"{role}: expected an N×1×H×W torch tensor, got {type(tensor).__name__} "
                    "(Fuser.fuse takes numpy arrays and PIL images)"
                )
            if tensor.device.type == "meta":
                raise ValueError(f"{role}: a meta tensor holds no pixels; pass a tensor on the CPU or a GPU")
        if ir.ndim != 4 or ir.shape[1] != 1 or ir.shape != vi_y.shape:
            raise ValueError(
                f"ir and vi_y: expected two N×1×H×W tensors of the same shape, got {tuple(ir.shape)} and "
                f"{tuple(vi_y.shape)}"
            )
        if ir.numel() == 0:
            raise ValueError(
                f"empty input: ir and vi_y have shape {tuple(ir.shape)}; there are no pixels to fuse"
            )
        if ir.dtype == torch.bool or vi_y.dtype == torch.bool:
            raise TypeError("ir and vi_y must be floating tensors in [0, 1], not bool masks")
        for role, tensor in (("ir", ir), ("vi_y", vi_y)):
            if not tensor.is_floating_point():
                raise TypeError(
                    f"{role}: expected floats in [0, 1], got {tensor.dtype} (Fuser.fuse converts 8/16-bit images)"
                )
            check_unit_range(tensor, role)
        home = ir.device
        height, width = ir.shape[-2:]
        tile = self._tile_for(height, width)
        if tile is None:
            try:
                a = ir.to(self.device, non_blocking=True).float()
                b = vi_y.to(self.device, non_blocking=True).float()
                return self._forward(a, b).to(home)
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not is_out_of_memory(error) or self.net is None:
                    raise
                tile = self._fallback_tile(height, width)
                warnings.warn(
                    f"out of memory fusing {height}×{width} on {self.device}; retrying in {tile}-pixel tiles",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self._fuse_in_tiles(ir, vi_y, tile).to(home)

    def _fallback_tile(self, height: int, width: int) -> int:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        side = max(height, width)
        return max(_MIN_TILE, min(self.tile or DEFAULT_TILE, 1 << (max(side - 1, 1).bit_length() - 1)))

    def _fuse_in_tiles(self, ir: torch.Tensor, vi_y: torch.Tensor, tile: int) -> torch.Tensor:
        """Tiled fusion; on out-of-memory the tile side halves until it fits (down to 128 pixels)."""
        ir_cpu, vi_cpu = ir.float().cpu(), vi_y.float().cpu()
        while True:
            overlap = min(self.tile_overlap, tile // 2)  # beyond half a tile, three tiles would share pixels
            try:
                with _TileBar(self.progress, f"{ir.shape[-2]}×{ir.shape[-1]} in {tile}-px tiles") as bar:
                    return fuse_tiled(
                        self._forward,
                        ir_cpu,
                        vi_cpu,
                        tile,
                        overlap,
                        device=self.device,
                        tiles_per_batch=self.tiles_per_batch,
                        progress=bar.update,
                    )
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not is_out_of_memory(error) or tile // 2 < _MIN_TILE:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                tile //= 2
                warnings.warn(
                    f"out of memory in tiled fusion; retrying with {tile}-pixel tiles",
                    RuntimeWarning,
                    stacklevel=3,
                )

    # --------------------------------------------------------------------------------------- public API
    def fuse(self, ir: Any, vi: Any, gray: bool = False) -> Any:
        """Fuse one pair (or a batch of tensors) and return the result as the visible image was given.

        ``ir`` and ``vi`` are numpy arrays (H×W, H×W×C; uint8, uint16 or float in [0, 1]), PIL images or
        tensors (H×W, C×H×W, N×C×H×W). A colour infrared image is reduced to its luminance. The output is
        colour when ``vi`` is colour, unless ``gray``; its container, dtype, layout and device follow ``vi``
        (uint8 in → uint8 out). RGBA alpha is dropped.
        """
        from data_modules.io import merge_y_cbcr, split_visible

        _check_pixels(ir, "ir")
        _check_pixels(vi, "vi")
        ir_batch, _ = to_batch(ir, "ir")
        vi_batch, kind = to_batch(vi, "vi")
        if ir_batch.shape[0] != vi_batch.shape[0] or ir_batch.shape[-2:] != vi_batch.shape[-2:]:
            raise ValueError(
                f"ir and vi differ in size: ir is {_describe(ir_batch)}, vi is {_describe(vi_batch)}"
            )
        ir_batch = ir_batch.to(vi_batch.device)  # the result goes back to where vi came from
        if ir_batch.shape[1] == 3:
            ir_batch = _luma(ir_batch)
        vi_y, vi_cbcr, is_colour = split_visible(vi_batch)
        fused = self.fuse_luminance(ir_batch, vi_y)  # N×1×H×W
        if is_colour and not gray:
            fused = merge_y_cbcr(fused, vi_cbcr)  # N×3×H×W
        return from_batch(fused, kind)

    __call__ = fuse

    def __repr__(self) -> str:
        what = f"baseline={self.baseline!r}" if self.net is None else f"config={self.config}"
        return f"Fuser({what}, device='{self.device}', precision='{self.precision}')"


class _TileBar:
    """A tqdm bar over the tiles of one image, created on the first update (when the total is known)."""

    def __init__(self, enabled: bool, description: str) -> None:
        self.enabled = enabled
        self.description = description
        self._bar: Any = None

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            import sys

            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=self.description, unit="tile", leave=False, file=sys.stderr)
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> _TileBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _check_pixels(image: Any, role: str) -> None:
    """Refuse what would otherwise fail deep inside a convolution, or pass silently as nonsense."""
    import numpy as np

    dtype = getattr(image, "dtype", None)
    if dtype is not None and (dtype == torch.bool or dtype == np.bool_):
        raise TypeError(
            f"{role}: a bool array is a mask, not an image; pass intensities (uint8, uint16 or floats in [0, 1]), "
            "e.g. mask.astype(np.uint8) * 255"
        )
    if isinstance(image, torch.Tensor) and image.device.type == "meta":
        raise ValueError(f"{role}: a meta tensor holds no pixels; pass a tensor on the CPU or a GPU")
    if hasattr(image, "shape"):
        shape = tuple(image.shape)
    elif hasattr(image, "size") and not callable(image.size):  # PIL: size is (width, height)
        shape = tuple(image.size)
    else:
        shape = ()
    if shape and min(shape) == 0:
        raise ValueError(f"{role}: empty image (shape {shape}); there are no pixels to fuse")


def _describe(batch: torch.Tensor) -> str:
    n, _, h, w = batch.shape
    return f"{h}×{w}" if n == 1 else f"{n}×{h}×{w}"


def _baseline_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The classical rule ``name`` from :mod:`stfuse.baselines`; an unknown name fails here, before any work."""
    try:
        from stfuse import baselines
    except ImportError as error:
        raise ValueError(
            f"baseline {name!r} requested but stfuse.baselines cannot be imported: {error}"
        ) from error
    fuse_baseline = getattr(baselines, "fuse_baseline", None)
    if fuse_baseline is None:
        raise ValueError(f"baseline {name!r} requested but stfuse.baselines provides no fuse_baseline")
    canonical = getattr(baselines, "canonical_baseline_name", None)
    if canonical is not None:
        name = canonical(name)  # ValueError listing the known names

    def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return fuse_baseline(name, a, b)

    return run
