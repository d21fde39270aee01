"""Classical fusion baselines: registry, shapes (odd sizes), exactness of the simple rules, pyramid
reconstruction, and the avg/max rows against the reference fused images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stfuse.baselines import (
    BASELINES,
    canonical_baseline_name,
    collapse_pyramid,
    fuse_baseline,
    laplacian_pyramid,
)
from stfuse.evaluation import read_gray_255


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 1, 7, 5), (1, 1, 63, 97), (1, 3, 32, 33)])
def test_every_baseline_keeps_shape_and_range(name: str, shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    ir, vi = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    fused = fuse_baseline(name, ir, vi)
    assert fused.shape == ir.shape and fused.dtype == ir.dtype
    assert float(fused.min()) >= 0.0 and float(fused.max()) <= 1.0


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_fusing_an_image_with_itself_returns_it(name: str) -> None:
    x = torch.rand(1, 1, 45, 38, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(fuse_baseline(name, x, x), x, atol=1e-12)


def test_laplacian_pyramid_reconstructs_exactly_for_odd_sizes() -> None:
    x = torch.rand(2, 1, 101, 77, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    pyramid = laplacian_pyramid(x, levels=5)
    # 101×77 → 51×39 → 26×20 → 13×10 → 7×5, where the next level would drop below 8 pixels.
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(101, 77), (51, 39), (26, 20), (13, 10), (7, 5)]
    assert torch.allclose(collapse_pyramid(pyramid), x, atol=1e-12)


def test_laplacian_fusion_keeps_the_stronger_detail() -> None:
    """A step edge in IR and a flat VIS: the fused image keeps (most of) the edge, the average halves it."""
    ir = torch.zeros(1, 1, 64, 64)
    ir[..., :, 32:] = 1.0
    vi = torch.full_like(ir, 0.5)
    lap = fuse_baseline("laplacian", ir, vi)
    avg = fuse_baseline("average", ir, vi)
    contrast = lambda x: float(x[..., 32, 33] - x[..., 32, 30])  # noqa: E731
    assert contrast(lap) > 0.9
    assert contrast(avg) == pytest.approx(0.5)


def test_gradient_weighted_fusion_follows_the_textured_source() -> None:
    g = torch.Generator().manual_seed(3)
    textured = torch.rand(1, 1, 40, 40, generator=g)
    flat = torch.full_like(textured, 0.3)
    fused = fuse_baseline("gradient", textured, flat)
    assert float((fused - textured).abs().mean()) < float((fused - flat).abs().mean())


def test_names_aliases_and_errors() -> None:
    assert canonical_baseline_name("avg") == "average"
    assert canonical_baseline_name("MAX") == "maximum"
    with pytest.raises(ValueError, match="unknown baseline 'median'"):
        fuse_baseline("median", torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="same shape"):
        fuse_baseline("avg", torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
    with pytest.raises(TypeError, match="floating-point"):
        fuse_baseline(
            "avg", torch.zeros(1, 1, 2, 2, dtype=torch.uint8), torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
        )


@pytest.mark.parametrize("name,folder", [("avg", "avg"), ("max", "max")])
def test_avg_and_max_on_the_8_bit_scale_reproduce_the_reference_images(
    data_root: Path, name: str, folder: str
) -> None:
    for image in ("07", "19"):
        ir, vi = (
            torch.from_numpy(
                read_gray_255(data_root / "ivif" / "tno" / k / f"{image}.png").astype(np.float64)
            )[None, None]
            for k in ("ir", "vi")
        )
        fused = fuse_baseline(name, ir, vi, data_range=255.0).round()
        reference = read_gray_255(data_root / "reference" / "tno" / folder / f"{image}.png")
        assert np.array_equal(fused[0, 0].numpy(), reference)
