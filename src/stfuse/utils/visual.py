"""Image grids for logging and reports (IR | VIS | fused rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _to_rgb(image: torch.Tensor, height: int) -> torch.Tensor:
    """C×H×W in [0, 1] → 3×height×W' with the aspect ratio kept."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    h, w = image.shape[-2:]
    new_w = max(1, round(w * height / h))
    return F.interpolate(image[None], size=(height, new_w), mode="bilinear", align_corners=False)[0]


def make_grid(
    rows: list[list[torch.Tensor]], height: int = 160, pad: int = 4, labels: list[str] | None = None
) -> np.ndarray:
    """Tile rows of images (each C×H×W in [0, 1]) into one H×W×3 uint8 array.

    Every image is resized to ``height`` keeping its aspect ratio, so pairs of different sizes
    (TNO, RoadScene) sit side by side in one grid. ``labels`` titles the columns in a band above the
    first row, so the grid explains itself without the terminal output that made it.
    """
    if not rows or not any(rows):
        raise ValueError("make_grid needs at least one image")
    rendered = [[_to_rgb(img, height) for img in row] for row in rows]
    row_widths = [sum(img.shape[-1] for img in row) + pad * (len(row) + 1) for row in rendered]
    width = max(row_widths)
    canvas = torch.ones(3, len(rows) * (height + pad) + pad, width)
    for r, row in enumerate(rendered):
        x = pad
        y = pad + r * (height + pad)
        for img in row:
            canvas[:, y : y + height, x : x + img.shape[-1]] = img
            x += img.shape[-1] + pad
    grid = (canvas.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    if labels:
        widths = [img.shape[-1] for img in rendered[0]]
        grid = np.concatenate([_label_band(labels, widths, grid.shape[1], pad), grid], axis=0)
    return grid


def _label_band(labels: list[str], widths: list[int], total_width: int, pad: int) -> np.ndarray:
    """A white band with each label centred over its column (columns laid out as in the first row)."""
    from PIL import Image, ImageDraw, ImageFont

    if len(labels) != len(widths):
        raise ValueError(f"{len(labels)} labels for {len(widths)} columns")
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    band = Image.new("RGB", (total_width, 22), "white")
    draw = ImageDraw.Draw(band)
    x = pad
    for label, width in zip(labels, widths):
        left, _, right, _ = draw.textbbox((0, 0), label, font=font)
        draw.text((x + (width - (right - left)) / 2, 3), label, fill="black", font=font)
        x += width + pad
    return np.asarray(band)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write an H×W×3 uint8 array as PNG atomically (temporary file, then rename)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    tmp.replace(path)
    return path
