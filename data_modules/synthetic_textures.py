"""Natural-like textures: the embedded MFIF default data, deterministic by seed (no download).

1/f noise, shapes with sharp edges, gratings, lines and grain: rich in high frequencies, so that synthetic
defocus blur is clearly detectable.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data_modules.synthetic import derive_seed, fractal_noise


def _random_colour(rng: np.random.Generator, channels: int) -> tuple[float, ...]:
    if channels == 1:
        return (float(rng.uniform(0.0, 1.0)),)
    return tuple(float(c) for c in rng.uniform(0.0, 1.0, 3))


def make_texture_array(seed: int, height: int = 256, width: int = 256, channels: int = 1) -> np.ndarray:
    """:func:`make_texture_image` as an H×W×C float32 array."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    rng = np.random.default_rng(seed)
    base = fractal_noise(rng, height, width, octaves=7, base_cells=2, persistence=rng.uniform(0.45, 0.75))
    if channels == 1:
        image = base[:, :, None].copy()
    else:
        dark, light = rng.uniform(0.0, 0.5, 3), rng.uniform(0.5, 1.0, 3)
        image = (dark + base[:, :, None] * (light - dark)).astype(np.float32)
    image = np.ascontiguousarray(image)
    scale = min(height, width)

    # Gratings and checkerboards inside random discs: strong, oriented high frequencies.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(int(rng.integers(1, 5))):
        region = np.zeros((height, width), dtype=np.uint8)
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(region, centre, int(rng.uniform(0.1, 0.35) * scale), 1, -1, lineType=cv2.LINE_8)
        period = rng.uniform(3.0, 16.0)
        angle = rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
        pattern = np.sin(phase)
        if rng.random() < 0.3:
            pattern = np.sign(
                pattern * np.sin((xx * -np.sin(angle) + yy * np.cos(angle)) * (2 * np.pi / period))
            )
        pattern = 0.5 + 0.5 * rng.uniform(0.4, 1.0) * pattern
        mask = region.astype(bool)
        tone = np.asarray(_random_colour(rng, channels), dtype=np.float32)
        image[mask] = (pattern[mask, None] * tone + (1 - tone) * 0.2).astype(np.float32)

    # Opaque shapes with sharp, anti-aliased edges, and thin lines.
    for _ in range(int(rng.integers(8, 30))):
        colour = _random_colour(rng, channels)
        kind = rng.integers(4)
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = max(2, int(rng.uniform(0.02, 0.2) * scale))
        if kind == 0:
            cv2.circle(image, (x, y), size, colour, -1, lineType=cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2.0))), colour, -1)
        elif kind == 2:
            points = rng.integers(-size, size, (int(rng.integers(3, 7)), 2)) + np.array([x, y])
            cv2.fillPoly(image, [points.astype(np.int32)], colour, lineType=cv2.LINE_AA)
        else:
            end = (x + int(rng.integers(-3 * size, 3 * size)), y + int(rng.integers(-3 * size, 3 * size)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 4)), lineType=cv2.LINE_AA)

    # Texture inside shapes (multiplicative), then grain.
    detail = fractal_noise(rng, height, width, octaves=3, base_cells=max(8, scale // 12), persistence=0.7)
    image *= (0.8 + 0.4 * detail)[:, :, None]
    image += rng.normal(0.0, rng.uniform(0.005, 0.02), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def make_texture_image(seed: int, h: int = 256, w: int = 256, channels: int = 3) -> torch.Tensor:
    """A natural-like all-in-focus image C×H×W in [0, 1] (C = 3 colour or 1 grey), deterministic by seed."""
    return torch.from_numpy(np.ascontiguousarray(make_texture_array(seed, h, w, channels).transpose(2, 0, 1)))


class TextureDataset(Dataset):
    """``length`` texture images {"image": C×H×W, "name"}; sample ``i`` depends only on (seed, stream, i)."""

    def __init__(
        self,
        length: int,
        height: int = 256,
        width: int = 256,
        seed: int = 0,
        stream: str = "train",
        channels: int = 3,
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        derive_seed(seed, stream, 0)
        self.length, self.height, self.width = length, height, width
        self.seed, self.stream, self.channels = seed, stream, channels

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} textures")
        seed = derive_seed(self.seed, self.stream, index)
        image = make_texture_image(seed, self.height, self.width, self.channels)
        return {"image": image, "name": f"texture_{self.stream}_{index:05d}"}


__all__ = ["TextureDataset", "make_texture_array", "make_texture_image"]
