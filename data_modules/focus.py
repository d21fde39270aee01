"""Multi-focus synthesis: focus masks, blur kernels and :class:`MultiFocusSynthesizer`.

From an all-in-focus image take the Y channel G of a random crop, draw a smooth random mask M, blur G with a
random Gaussian or disk kernel, and set ``A = M·G + (1−M)·blur(G)`` and ``B = (1−M)·G + M·blur(G)``;
M = 1 where A is in focus (docs/data.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from data_modules.io import to_unit_float

BLUR_KINDS = ("mixed", "gaussian", "disk")


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised, anti-aliased disk (pill-box) kernel: the defocus point-spread function of a lens."""
    if radius <= 0:
        raise ValueError(f"disk radius must be positive, got {radius}")
    half = int(math.ceil(radius))
    coords = np.arange(-half, half + 1, dtype=np.float32)
    distance = np.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
    kernel = np.clip(radius + 0.5 - distance, 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


def random_focus_mask(
    rng: np.random.Generator, height: int, width: int, coverage: tuple[float, float] = (0.25, 0.75)
) -> np.ndarray:
    """A smooth random binary mask H×W (float32 0/1) covering a fraction in ``coverage`` of the image.

    Half the masks are blobs (thresholded low-frequency noise: organic, possibly several regions), half
    are one to three filled random polygons smoothed at the corners (objects with straight edges).
    """
    target = rng.uniform(*coverage)
    if rng.random() < 0.5:
        mask = _polygon_mask(rng, height, width)
        fraction = float(mask.mean())
        if coverage[0] <= fraction <= coverage[1]:
            return mask
        if coverage[0] <= 1.0 - fraction <= coverage[1]:
            return 1.0 - mask
    cells = int(rng.integers(2, 6))
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    threshold = np.quantile(field, 1.0 - target)
    return (field > threshold).astype(np.float32)


def _polygon_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    size = min(height, width)
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform((0.15 * width, 0.15 * height), (0.85 * width, 0.85 * height))
        vertices = int(rng.integers(4, 11))
        angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
        radii = rng.uniform(0.15, 0.5, vertices) * size
        points = centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    smooth = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(1.0, size / 64))
    return (smooth > 0.5).astype(np.float32)


class MultiFocusSynthesizer:
    """Turns an all-in-focus Y image into one random multi-focus sample (see the module docstring).

    Blur: Gaussian with σ in ``sigma_range`` or a disk with radius in ``disk_radius_range`` (both drawn
    log-uniformly, so mild, hard-to-see defocus is as common as strong defocus); ``blur="mixed"`` picks
    either kind with equal odds. The crop is taken with a margin as wide as the largest kernel, blurred,
    and then cut to ``crop_size``, so the blur near the crop border sees real image content.
    ``soft_edges`` feathers the mask (Gaussian, σ in ``feather_range``) for a gradual focus boundary.
    """

    def __init__(
        self,
        crop_size: int = 128,
        blur: str = "mixed",
        sigma_range: tuple[float, float] = (0.5, 8.0),
        disk_radius_range: tuple[float, float] = (2.0, 15.0),
        soft_edges: bool = False,
        feather_range: tuple[float, float] = (1.0, 6.0),
        coverage: tuple[float, float] = (0.25, 0.75),
        swap: bool = True,
        flips: bool = True,
    ) -> None:
        if blur not in BLUR_KINDS:
            raise ValueError(f"blur must be one of {BLUR_KINDS}, got {blur!r}")
        if crop_size < 8:
            raise ValueError(f"crop_size must be at least 8, got {crop_size}")
        if not 0 < sigma_range[0] <= sigma_range[1] or not 0 < disk_radius_range[0] <= disk_radius_range[1]:
            raise ValueError(
                f"blur ranges must be positive and ordered, got {sigma_range} and {disk_radius_range}"
            )
        self.crop_size = crop_size
        self.blur = blur
        self.sigma_range = sigma_range
        self.disk_radius_range = disk_radius_range
        self.soft_edges = soft_edges
        self.feather_range = feather_range
        self.coverage = coverage
        self.swap = swap
        self.flips = flips

    @property
    def margin(self) -> int:
        """Context needed around the crop for the widest kernel."""
        widest = 0.0
        if self.blur in ("mixed", "gaussian"):
            widest = max(widest, 3.0 * self.sigma_range[1])
        if self.blur in ("mixed", "disk"):
            widest = max(widest, self.disk_radius_range[1] + 1.0)
        return int(math.ceil(widest))

    def window_size(self, crop_size: int | None = None) -> int:
        return (crop_size or self.crop_size) + 2 * self.margin

    def random_blur(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Blur an H×W float32 image with a random Gaussian or disk kernel."""
        kind = self.blur if self.blur != "mixed" else ("gaussian" if rng.random() < 0.5 else "disk")
        if kind == "gaussian":
            sigma = math.exp(rng.uniform(math.log(self.sigma_range[0]), math.log(self.sigma_range[1])))
            return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        radius = math.exp(
            rng.uniform(math.log(self.disk_radius_range[0]), math.log(self.disk_radius_range[1]))
        )
        return cv2.filter2D(image, -1, disk_kernel(radius), borderType=cv2.BORDER_REFLECT_101)

    def sample(
        self, image: np.ndarray, rng: np.random.Generator, crop_size: int | None = None
    ) -> dict[str, np.ndarray]:
        """One sample from an H×W Y image: "a", "b", "gt", "mask", each crop×crop float32 in [0, 1].

        ``image`` may be uint8/uint16 as stored (only the window is converted to float) or float in [0, 1].
        """
        crop = crop_size or self.crop_size
        window = crop + 2 * self.margin
        if image.ndim != 2:
            raise ValueError(f"the synthesizer takes an H×W grey image, got shape {image.shape}")
        pad_h, pad_w = max(0, window - image.shape[0]), max(0, window - image.shape[1])
        if pad_h or pad_w:
            image = cv2.copyMakeBorder(
                image, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2, cv2.BORDER_REFLECT_101
            )
        top = int(rng.integers(0, image.shape[0] - window + 1))
        left = int(rng.integers(0, image.shape[1] - window + 1))
        patch = image[top : top + window, left : left + window]
        if self.flips:
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1, :]
        return self.synthesize(np.ascontiguousarray(to_unit_float(patch)), rng, crop)

    def synthesize(
        self, patch: np.ndarray, rng: np.random.Generator, crop: int | None = None
    ) -> dict[str, np.ndarray]:
        """Blur ``patch`` (H×W) and combine with a random mask; the centre ``crop`` (default: all) is kept."""
        height, width = patch.shape
        crop_h = crop if crop is not None else height
        crop_w = crop if crop is not None else width
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        inner = (slice(top, top + crop_h), slice(left, left + crop_w))
        gt = patch[inner]
        blurred = self.random_blur(patch, rng)[inner]
        mask = random_focus_mask(rng, crop_h, crop_w, self.coverage)
        if self.soft_edges:
            sigma = rng.uniform(*self.feather_range)
            mask = np.clip(cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101), 0.0, 1.0)
        a = mask * gt + (1.0 - mask) * blurred
        b = (1.0 - mask) * gt + mask * blurred
        if self.swap and rng.random() < 0.5:
            a, b, mask = b, a, 1.0 - mask
        return {
            "a": np.ascontiguousarray(a, dtype=np.float32),
            "b": np.ascontiguousarray(b, dtype=np.float32),
            "gt": np.ascontiguousarray(gt, dtype=np.float32),
            "mask": np.ascontiguousarray(mask, dtype=np.float32),
        }


__all__ = ["BLUR_KINDS", "MultiFocusSynthesizer", "disk_kernel", "random_focus_mask"]
