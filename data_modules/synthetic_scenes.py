"""Synthetic infrared/visible scenes: the embedded IVIF default data, deterministic by seed (no download).

The visible image is an RGB street/field scene at day, dusk or night illumination; the infrared image has its
own thermal background, and warm targets (people, vehicles) are salient in infrared while they are
camouflaged and often dark in the visible image. That is the complementarity fusion must exploit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data_modules.io import write_image
from data_modules.paired import PairArrays, PairTransform, make_pair_item
from data_modules.synthetic import derive_seed, fractal_noise

PathLike = str | os.PathLike


_ILLUMINATION = {
    # name: (gain range, tint RGB, sensor noise std)
    "day": ((0.85, 1.0), (1.0, 1.0, 1.0), 0.006),
    "dusk": ((0.35, 0.6), (1.0, 0.78, 0.6), 0.012),
    "night": ((0.18, 0.35), (0.65, 0.75, 1.0), 0.02),
}
_SKY = {
    "day": ((0.55, 0.72, 0.95), (0.85, 0.9, 0.97)),
    "dusk": ((0.35, 0.3, 0.55), (0.98, 0.6, 0.35)),
    "night": ((0.02, 0.03, 0.08), (0.08, 0.08, 0.15)),
}
_GROUND_COLOURS = ((0.35, 0.5, 0.22), (0.45, 0.42, 0.36), (0.6, 0.55, 0.4), (0.3, 0.32, 0.3))


def _vertical_gradient(height: int, width: int, top: tuple, bottom: tuple) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top_rgb = np.asarray(top, dtype=np.float32)
    bottom_rgb = np.asarray(bottom, dtype=np.float32)
    return np.broadcast_to(top_rgb + ramp * (bottom_rgb - top_rgb), (height, width, 3)).copy()


def _draw_person(mask: np.ndarray, x: int, y_feet: int, height: int) -> None:
    body_w = max(2, height // 6)
    head_r = max(1, height // 9)
    cv2.ellipse(mask, (x, y_feet - height // 2 + head_r), (body_w, height // 2 - head_r), 0, 0, 360, 1, -1)
    cv2.circle(mask, (x, y_feet - height + head_r), head_r, 1, -1)


def _draw_vehicle(mask: np.ndarray, x: int, y_base: int, length: int) -> tuple[int, int, int, int]:
    body_h = max(3, length // 3)
    top = y_base - body_h
    cv2.rectangle(mask, (x, top), (x + length, y_base - body_h // 4), 1, -1)
    cabin_left = x + length // 4
    cv2.rectangle(mask, (cabin_left, top - body_h // 2), (cabin_left + length // 2, top), 1, -1)
    wheel_r = max(1, body_h // 4)
    for wheel_x in (x + length // 5, x + 4 * length // 5):
        cv2.circle(mask, (wheel_x, y_base - wheel_r), wheel_r, 1, -1)
    return x, top, length, body_h


def make_ivif_pair(seed: int, height: int = 256, width: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic scene: infrared 1×H×W and visible RGB 3×H×W, float32 in [0, 1], deterministic by seed."""
    ir, vi = make_ivif_arrays(seed, height, width)
    return torch.from_numpy(ir[None].copy()), torch.from_numpy(np.ascontiguousarray(vi.transpose(2, 0, 1)))


def _noise_bank() -> np.ndarray:
    """A fixed 512×512×4 bank of standard normal noise; random windows of it replace per-call draws."""
    global _NOISE_BANK
    if _NOISE_BANK is None:
        _NOISE_BANK = np.random.default_rng(20231030).standard_normal((512, 512, 4), dtype=np.float32)
    return _NOISE_BANK


_NOISE_BANK: np.ndarray | None = None


def _noise(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    """H×W×C standard normal noise: a random window of the bank, tiled when the image is larger."""
    bank = _noise_bank()
    reps_h, reps_w = -(-height // bank.shape[0]) + 1, -(-width // bank.shape[1]) + 1
    source = (
        bank
        if reps_h == reps_w == 2 and height <= 256 and width <= 256
        else np.tile(bank, (reps_h, reps_w, 1))
    )
    top = int(rng.integers(0, source.shape[0] - height + 1))
    left = int(rng.integers(0, source.shape[1] - width + 1))
    first = int(rng.integers(0, bank.shape[2] - channels + 1))
    return source[top : top + height, left : left + width, first : first + channels]


def make_ivif_arrays(seed: int, height: int = 256, width: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """:func:`make_ivif_pair` as arrays: infrared H×W and visible H×W×3 (float32)."""
    scene = make_ivif_scene(seed, height, width)
    return scene.ir, scene.vi


@dataclass(frozen=True)
class IVIFScene:
    """A synthetic scene: infrared H×W, visible H×W×3 (float32 in [0, 1]), the warm-target mask H×W."""

    ir: np.ndarray
    vi: np.ndarray
    targets: np.ndarray
    illumination: str


def make_ivif_scene(seed: int, height: int = 256, width: int = 256) -> IVIFScene:
    """The scene behind :func:`make_ivif_pair`, with its target mask and illumination ("day", "dusk", "night")."""
    if height < 16 or width < 16:
        raise ValueError(f"synthetic scenes need at least 16×16 pixels, got {height}×{width}")
    rng = np.random.default_rng(seed)
    illumination = str(rng.choice(list(_ILLUMINATION), p=[0.45, 0.3, 0.25]))
    (gain_low, gain_high), tint, noise_std = _ILLUMINATION[illumination]
    horizon = int(rng.uniform(0.25, 0.5) * height)
    scale = min(height, width)

    vis_texture = fractal_noise(rng, height, width, octaves=7, base_cells=2, persistence=0.6)
    fine_texture = fractal_noise(
        rng, height, width, octaves=3, base_cells=max(8, scale // 16), persistence=0.7
    )
    thermal_texture = fractal_noise(rng, height, width, octaves=4, base_cells=2, persistence=0.5)

    # Visible reflectance (before illumination) and infrared temperature; the sky is the rows above the horizon.
    vi = np.empty((height, width, 3), dtype=np.float32)
    ir = np.empty((height, width), dtype=np.float32)
    vi[:horizon] = _vertical_gradient(horizon, width, *_SKY[illumination])
    ir[:horizon] = (0.06 + 0.08 * np.linspace(0.0, 1.0, horizon, dtype=np.float32))[:, None]
    ground_rgb = np.asarray(_GROUND_COLOURS[rng.integers(len(_GROUND_COLOURS))], dtype=np.float32)
    shade = (0.55 + 0.6 * vis_texture[horizon:]) * (0.85 + 0.3 * fine_texture[horizon:])
    vi[horizon:] = shade[:, :, None] * ground_rgb
    ground_temperature = rng.uniform(0.25, 0.42)
    ir[horizon:] = (
        ground_temperature + 0.12 * (thermal_texture[horizon:] - 0.5) + 0.04 * (fine_texture[horizon:] - 0.5)
    )

    # A road with lane markings: warm after a sunny day, cooler than the ground at night.
    if rng.random() < 0.7:
        road = np.zeros((height - horizon, width), dtype=np.uint8)
        centre = rng.uniform(0.3, 0.7) * width
        near, far = rng.uniform(0.3, 0.6) * width, rng.uniform(0.02, 0.1) * width
        span = height - horizon
        polygon = np.array(
            [[centre - far, 0], [centre + far, 0], [centre + near, span], [centre - near, span]]
        )
        cv2.fillPoly(road, [polygon.astype(np.int32)], 1)
        road_mask = road.astype(bool)
        fine_below = fine_texture[horizon:]
        np.copyto(vi[horizon:], (0.22 + 0.12 * fine_below)[:, :, None], where=road_mask[:, :, None])
        road_temperature = ground_temperature + (0.12 if illumination == "day" else -0.05)
        np.copyto(ir[horizon:], road_temperature + 0.03 * (fine_below - 0.5), where=road_mask)
        for y in range(horizon + 4, height, max(6, height // 12)):
            t = (y - horizon) / max(span, 1)
            dash = max(1, int(2 + 6 * t))
            cv2.line(
                vi,
                (int(centre), y),
                (int(centre), min(height - 1, y + dash)),
                (0.9, 0.9, 0.85),
                max(1, int(1 + 2 * t)),
            )

    # Buildings on the horizon: facades with window grids; lit windows at night are bright in VIS only.
    for _ in range(int(rng.integers(0, 5))):
        b_w = max(6, int(rng.uniform(0.08, 0.25) * width))
        b_h = int(rng.uniform(0.1, 0.35) * height)
        left = int(rng.integers(0, max(1, width - b_w)))
        top, bottom = max(0, horizon - b_h), min(height, horizon + int(0.05 * height))
        facade = np.asarray(rng.uniform(0.35, 0.8, 3), dtype=np.float32)
        vi[top:bottom, left : left + b_w] = facade * (
            0.8 + 0.3 * fine_texture[top:bottom, left : left + b_w, None]
        )
        ir[top:bottom, left : left + b_w] = (
            rng.uniform(0.3, 0.5) + 0.05 * np.linspace(0, 1, bottom - top)[:, None]
        )
        step = max(4, b_w // 6)
        size = max(1, step // 3)
        dark_window = tuple(float(c) for c in facade * 0.4)
        for wy in range(top + 2, bottom - 3, step):
            for wx in range(left + 2, left + b_w - 3, step):
                lit = illumination != "day" and rng.random() < 0.4
                cv2.rectangle(
                    vi, (wx, wy), (wx + size, wy + size), (1.0, 0.9, 0.6) if lit else dark_window, -1
                )
                cv2.rectangle(ir, (wx, wy), (wx + size, wy + size), float(ir[wy, wx] - 0.04), -1)

    # Vegetation: leafy dark blobs, cool in infrared.
    for _ in range(int(rng.integers(1, 6))):
        radius = max(2, int(rng.uniform(0.04, 0.12) * scale))
        radius_y = int(radius * rng.uniform(0.7, 1.5))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(max(0, horizon - radius), height))
        y0, y1, x0, x1 = (
            max(0, cy - radius_y),
            min(height, cy + radius_y + 1),
            max(0, cx - radius),
            min(width, cx + radius + 1),
        )
        if y1 <= y0 or x1 <= x0:
            continue
        bush = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        cv2.ellipse(bush, (cx - x0, cy - y0), (radius, radius_y), 0, 0, 360, 1, -1)
        leaf = fine_texture[y0:y1, x0:x1]
        bush_mask = (bush > 0) & (leaf > 0.25)
        leaves = np.stack([0.1 + 0.25 * leaf, 0.25 + 0.35 * leaf, 0.08 + 0.1 * leaf], axis=2)
        np.copyto(vi[y0:y1, x0:x1], leaves, where=bush_mask[:, :, None])
        np.copyto(ir[y0:y1, x0:x1], 0.18 + 0.08 * leaf, where=bush_mask)

    # Warm targets: people and vehicles, coloured like their surroundings in the visible image.
    heat = np.zeros((height, width), dtype=np.float32)
    targets = np.zeros((height, width), dtype=bool)
    body_heat = rng.uniform(0.72, 0.92)
    for _ in range(int(rng.integers(1, 5))):
        mask = np.zeros((height, width), dtype=np.uint8)
        base = int(rng.integers(min(height - 1, horizon + max(2, height // 10)), height))
        nearness = 0.12 + 0.5 * (base - horizon) / max(height - horizon, 1)
        hot_spot = None
        if rng.random() < 0.6:
            _draw_person(mask, int(rng.integers(0, width)), base, max(8, int(nearness * height * 0.6)))
        else:
            x, top, length, body_h = _draw_vehicle(
                mask, int(rng.integers(0, width)), base, max(10, int(nearness * width * 0.5))
            )
            engine_x = x + (length - length // 4 if rng.random() < 0.5 else 0)
            hot_spot = (engine_x, top, length // 4, body_h // 2)
        bx, by, bw, bh = cv2.boundingRect(mask)
        if bw == 0 or bh == 0:
            continue
        box = (slice(by, by + bh), slice(bx, bx + bw))
        target_mask = mask[box].astype(bool)
        surround = vi[box].reshape(-1, 3).mean(axis=0)
        camouflage = surround * rng.uniform(0.75, 1.1) + rng.normal(0.0, 0.03, 3).astype(np.float32)
        np.copyto(
            vi[box], camouflage * (0.9 + 0.2 * fine_texture[box][:, :, None]), where=target_mask[:, :, None]
        )
        np.copyto(heat[box], body_heat + 0.06 * (thermal_texture[box] - 0.5), where=target_mask)
        targets[box] |= target_mask
        if hot_spot is not None:
            hx, hy, hw, hh = hot_spot
            cv2.rectangle(heat, (hx, hy), (hx + hw, hy + hh), 0.98, -1)
    ir = np.maximum(ir, heat)

    # Illumination, sensor noise and optics.
    gain = rng.uniform(gain_low, gain_high)
    vi *= gain * np.asarray(tint, dtype=np.float32)
    if illumination == "night":  # street lights: local glow that hides targets behind glare
        for _ in range(int(rng.integers(0, 3))):
            cx, cy = int(rng.integers(0, width)), int(rng.integers(0, max(1, horizon + height // 8)))
            sigma = width / 12
            ys = np.exp(-0.5 * ((np.arange(height, dtype=np.float32) - cy) / sigma) ** 2)
            xs = np.exp(-0.5 * ((np.arange(width, dtype=np.float32) - cx) / sigma) ** 2)
            vi += (0.6 * ys[:, None] * xs[None, :])[:, :, None] * np.asarray(
                (1.0, 0.85, 0.55), dtype=np.float32
            )
    vi += noise_std * _noise(rng, height, width, 3)
    ir = cv2.GaussianBlur(ir, (0, 0), rng.uniform(0.5, 1.0))
    column_pattern = rng.normal(0.0, 0.006, (1, width)).astype(np.float32)  # microbolometer stripe noise
    ir += column_pattern + 0.01 * _noise(rng, height, width, 1)[:, :, 0]
    np.clip(vi, 0.0, 1.0, out=vi)
    np.clip(ir, 0.0, 1.0, out=ir)
    return IVIFScene(ir=ir, vi=vi, targets=targets, illumination=illumination)


class SyntheticIVIFDataset(Dataset):
    """``length`` synthetic pairs in the :class:`~data_modules.paired.PairedImageFolder` item format.

    Sample ``i`` depends only on (seed, stream, i); ``transform`` acts on the float arrays as for real
    folders (random crops and photometric changes during training).
    """

    def __init__(
        self,
        length: int,
        height: int = 256,
        width: int = 256,
        seed: int = 0,
        stream: str = "train",
        transform: PairTransform | None = None,
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        derive_seed(seed, stream, 0)  # validates the stream name now
        self.length, self.height, self.width = length, height, width
        self.seed, self.stream = seed, stream
        self.transform = transform

    def __len__(self) -> int:
        return self.length

    @property
    def names(self) -> list[str]:
        return [self.name_of(i) for i in range(self.length)]

    def name_of(self, index: int) -> str:
        return f"synthetic_{self.stream}_{index:05d}"

    def load_arrays(self, index: int) -> PairArrays:
        ir, vi = make_ivif_arrays(derive_seed(self.seed, self.stream, index), self.height, self.width)
        return {"ir": ir[:, :, None], "vi": vi}

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic pairs")
        arrays = self.load_arrays(index)
        if self.transform is not None:
            arrays = self.transform(arrays)
        return make_pair_item(arrays, self.name_of(index))

    def reseed(self, seed: int) -> None:
        reseed = getattr(self.transform, "reseed", None)
        if reseed is not None:
            reseed(seed)


def write_embedded_default(
    root: PathLike, n_pairs: int = 8, size: int | tuple[int, int] = 256, seed: int = 0
) -> Path:
    """Write ``n_pairs`` synthetic pairs as 8-bit PNGs in the generic layout ``root/ir`` + ``root/vi``.

    The pairs come from the "export" stream, so they are held out from the embedded training,
    validation and test sets of the same seed. Returns ``root``.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be positive, got {n_pairs}")
    height, width = (size, size) if isinstance(size, int) else size
    root = Path(root)
    (root / "ir").mkdir(parents=True, exist_ok=True)
    (root / "vi").mkdir(parents=True, exist_ok=True)
    for index in range(n_pairs):
        ir, vi = make_ivif_pair(derive_seed(seed, "export", index), height, width)
        name = f"synthetic_{index:04d}.png"
        write_image(root / "ir" / name, ir)
        write_image(root / "vi" / name, vi)
    return root


__all__ = [
    "IVIFScene",
    "SyntheticIVIFDataset",
    "make_ivif_arrays",
    "make_ivif_pair",
    "make_ivif_scene",
    "write_embedded_default",
]
