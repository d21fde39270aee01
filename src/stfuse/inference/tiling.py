"""Fusion of images too large for one pass, in overlapping tiles blended without seams.

Each tile's prediction is weighted by a separable window that is 1 in its interior and rises across the
overlap with each neighbour (never at the image border): zero over the overlap's outer quarter, a raised
cosine over its middle half, one over its inner quarter. Neighbouring ramps are complementary, so the
weights sum to one and a tile's unreliable edge (padding, missing context) is replaced by its neighbour's
reliable interior, with a smooth hand-over in between. Because the window is separable, the weight
normaliser is an outer product of two 1-D sums: only one full-size buffer, the output accumulator, is ever
allocated, on the CPU; the network only sees tile-sized inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

__all__ = ["FuseFn", "TileGrid", "axis_windows", "fuse_tiled", "tile_starts"]

#: a fusion function on N×1×h×w tensors in [0, 1] (on its own device) returning N×1×h×w.
FuseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared pixels.

    Tiles are spread evenly (not stacked against the far border), so every overlap is about the same.
    """
    if tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile={tile}), got {overlap}")
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(width: int) -> torch.Tensor:
    """Rising weight across an overlap of ``width`` samples; ramp + reversed ramp = 1 everywhere.

    The outer quarter on each side is flat (0, then 1), so a tile's last few pixels, which saw zero padding
    instead of image context, get no weight at all; the middle half is a raised cosine.
    """
    margin = width // 4
    core = width - 2 * margin
    x = (torch.arange(core, dtype=torch.float64) + 0.5) / core
    rising = 0.5 - 0.5 * torch.cos(math.pi * x)
    return torch.cat(
        [torch.zeros(margin, dtype=torch.float64), rising, torch.ones(margin, dtype=torch.float64)]
    )


def axis_windows(length: int, tile: int, starts: list[int]) -> list[torch.Tensor]:
    """The 1-D blending weight of each tile along one axis (float64, each of size ``min(tile, length)``)."""
    size = min(tile, length)
    windows = []
    for index, start in enumerate(starts):
        window = torch.ones(size, dtype=torch.float64)
        if index > 0:
            shared = starts[index - 1] + size - start
            window[:shared] *= _ramp(shared)
        if index < len(starts) - 1:
            shared = start + size - starts[index + 1]
            window[size - shared :] *= _ramp(shared).flip(0)
        windows.append(window)
    return windows


@dataclass(frozen=True)
class TileGrid:
    """The tiles of an H×W image: offsets and 1-D weights along each axis."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    rows: list[int]
    cols: list[int]
    row_windows: list[torch.Tensor]
    col_windows: list[torch.Tensor]

    @classmethod
    def build(cls, height: int, width: int, tile: int, overlap: int) -> TileGrid:
        rows = tile_starts(height, tile, overlap)
        cols = tile_starts(width, tile, overlap)
        return cls(
            height=height,
            width=width,
            tile_h=min(tile, height),
            tile_w=min(tile, width),
            rows=rows,
            cols=cols,
            row_windows=axis_windows(height, tile, rows),
            col_windows=axis_windows(width, tile, cols),
        )

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def positions(self) -> Iterator[tuple[int, int]]:
        """(row index, column index) of every tile, row-major."""
        for i in range(len(self.rows)):
            for j in range(len(self.cols)):
                yield i, j

    def normaliser(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row and per-column weight sums; their outer product is the total weight at each pixel."""
        row_sum = torch.zeros(self.height, dtype=torch.float64)
        col_sum = torch.zeros(self.width, dtype=torch.float64)
        for start, window in zip(self.rows, self.row_windows):
            row_sum[start : start + self.tile_h] += window
        for start, window in zip(self.cols, self.col_windows):
            col_sum[start : start + self.tile_w] += window
        return row_sum, col_sum


@torch.no_grad()
def fuse_tiled(
    fuse: FuseFn,
    a: torch.Tensor,
    b: torch.Tensor,
    tile: int,
    overlap: int,
    device: torch.device | str | None = None,
    tiles_per_batch: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Fuse N×1×H×W ``a`` and ``b`` tile by tile; the result is float32 N×1×H×W on ``a``'s device.

    ``device`` is where ``fuse`` runs (default: ``a``'s device); tiles travel there one batch at a time
    and their predictions come back into an accumulator beside the inputs, so GPU memory stays bounded by
    the tile size even for 100-megapixel images. ``tiles_per_batch`` tiles go through ``fuse`` together.
    ``progress(done, total)`` is called after each batch of tiles.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"expected two N×1×H×W tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    n, channels, height, width = a.shape
    grid = TileGrid.build(height, width, tile, overlap)
    run_device = torch.device(device) if device is not None else a.device
    out = torch.zeros((n, channels, height, width), dtype=torch.float32, device=a.device)
    positions = list(grid.positions())
    tiles_per_batch = max(1, tiles_per_batch)
    for first in range(0, len(positions), tiles_per_batch):
        chunk = positions[first : first + tiles_per_batch]
        crops_a, crops_b = [], []
        for i, j in chunk:
            top, left = grid.rows[i], grid.cols[j]
            crops_a.append(a[:, :, top : top + grid.tile_h, left : left + grid.tile_w])
            crops_b.append(b[:, :, top : top + grid.tile_h, left : left + grid.tile_w])
        batch_a = torch.cat(crops_a).to(run_device, non_blocking=True)
        batch_b = torch.cat(crops_b).to(run_device, non_blocking=True)
        fused = fuse(batch_a, batch_b).float().to(a.device)  # (k·N)×1×th×tw
        for k, (i, j) in enumerate(chunk):
            top, left = grid.rows[i], grid.cols[j]
            weight = torch.outer(grid.row_windows[i], grid.col_windows[j]).to(torch.float32).to(a.device)
            out[:, :, top : top + grid.tile_h, left : left + grid.tile_w] += (
                fused[k * n : (k + 1) * n] * weight
            )
        if progress is not None:
            progress(first + len(chunk), len(positions))
    row_sum, col_sum = grid.normaliser()
    out.div_(row_sum.to(torch.float32).to(a.device).view(-1, 1)).div_(
        col_sum.to(torch.float32).to(a.device).view(1, -1)
    )
    return out.clamp_(0.0, 1.0)
