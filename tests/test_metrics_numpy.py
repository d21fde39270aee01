"""The vectorised torch metrics against independent per-image NumPy/SciPy code and hand-computed cases,
including the metrics the reference CSVs do not cover (FMI, Nabf, MS-SSIM)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy_reference import REFERENCE_FUNCTIONS, fmi, fmi_vectorised, nabf

from stfuse.evaluation import read_gray_255
from stfuse.metrics import METRICS, build_metric


def _value(name: str, f: np.ndarray, a: np.ndarray, b: np.ndarray, preset: str = "cddfuse") -> float:
    metric = build_metric(name, preset, data_range=255.0)
    metric.update(*(torch.from_numpy(np.asarray(x, dtype=np.float64))[None, None] for x in (f, a, b)))
    return float(metric.compute())


@pytest.fixture(scope="module")
def tno07(data_root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """TNO pair 07 (256×256) with the reference avg and max fusions, as 0–255 float64 arrays."""
    a = read_gray_255(data_root / "ivif" / "tno" / "ir" / "07.png").astype(np.float64)
    b = read_gray_255(data_root / "ivif" / "tno" / "vi" / "07.png").astype(np.float64)
    out = {}
    for fusion in ("avg", "max", "seafusion"):
        f = read_gray_255(data_root / "reference" / "tno" / fusion / "07.png").astype(np.float64)
        out[fusion] = (f, a, b)
    return out


#: float32 arithmetic in our Qabf (as CDDFuse's) and SSIM (scikit-image's float32 repeated) against
#: float64 NumPy; everything else is float64 on both sides.
NUMPY_TOLERANCE = {"Qabf": 1e-6, "SSIM": 1e-6}


@pytest.mark.parametrize("name", [n for n in METRICS if not n.startswith("FMI")])
@pytest.mark.parametrize("fusion", ["avg", "max", "seafusion"])
def test_torch_metric_equals_numpy_reference_on_tno(tno07: dict, name: str, fusion: str) -> None:
    f, a, b = tno07[fusion]
    expected = REFERENCE_FUNCTIONS[name](f, a, b)
    assert _value(name, f, a, b) == pytest.approx(expected, rel=NUMPY_TOLERANCE.get(name, 1e-12), abs=1e-15)


@pytest.mark.parametrize("feature", ["pixel", "gradient"])
@pytest.mark.parametrize("fusion", ["avg", "max", "seafusion"])
def test_fmi_equals_window_by_window_numpy_on_a_crop(tno07: dict, feature: str, fusion: str) -> None:
    f, a, b = (x[96:136, 80:140] for x in tno07[fusion])
    expected = fmi(f, a, b, feature)
    assert _value(f"FMI_{feature}", f, a, b) == pytest.approx(expected, rel=1e-9)


def test_fmi_full_image_equals_vectorised_numpy(tno07: dict) -> None:
    f, a, b = tno07["seafusion"]
    assert _value("FMI_pixel", f, a, b) == pytest.approx(fmi_vectorised(f, a, b, "pixel"), rel=1e-12)


def test_fmi_of_identical_images_is_one() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 15)).astype(np.float64)
    assert _value("FMI_pixel", x, x, x) == 1.0
    assert _value("FMI_gradient", x, x, x) == 1.0


def test_fmi_is_one_half_when_fused_equals_one_source_and_the_other_is_flat() -> None:
    """Every window: FMI_AF = 1 (identical), FMI_BF = 0 (a flat window has a uniform pdf, zero correlation,
    so the joint pdf is the product and the mutual information vanishes)."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (10, 11)).astype(np.float64)
    b = np.full_like(a, 77.0)
    assert _value("FMI_pixel", a, a, b) == pytest.approx(0.5, abs=1e-12)


def test_nabf_is_zero_without_new_edges_and_matches_numpy_with_them() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (30, 40)).astype(np.float64)
    b = rng.integers(0, 256, (30, 40)).astype(np.float64)
    assert _value("Nabf", a, a, b) == pytest.approx(nabf(a, a, b), rel=1e-12)
    assert _value("Nabf", a, a, a) == 0.0  # no pixel has a fused edge stronger than both sources
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).round()
    assert _value("Nabf", noisy, a, b) == pytest.approx(nabf(noisy, a, b), rel=1e-12)
    assert _value("Nabf", noisy, a, b) > 0


def test_ms_ssim_of_a_copy_is_two_and_matches_numpy(tno07: dict) -> None:
    f, a, b = tno07["avg"]
    assert _value("MS_SSIM", a, a, a) == pytest.approx(2.0, abs=1e-12)
    assert _value("MS_SSIM", f, a, b) == pytest.approx(REFERENCE_FUNCTIONS["MS_SSIM"](f, a, b), rel=1e-12)


def test_ms_ssim_refuses_images_too_small_for_five_scales() -> None:
    x = np.zeros((160, 300))
    with pytest.raises(ValueError, match="at least 161 pixels"):
        _value("MS_SSIM", x, x, x)


def test_hand_computed_small_cases() -> None:
    f = np.array([[0.0, 1.0], [2.0, 3.0]])
    a = np.zeros((2, 2))
    b = np.full((2, 2), 3.0)
    # SF: horizontal differences 1, 1 (mean 1); vertical 2, 2 (mean 4).
    assert _value("SF", f, a, b) == pytest.approx(math.sqrt(5.0))
    # AG: numpy.gradient gives gx = 1, gy = 2 everywhere.
    assert _value("AG", f, a, b) == pytest.approx(math.sqrt(5.0 / 2.0))
    # MSE: ((0+1+4+9)/4 + (9+4+1+0)/4) / 2 = 3.5; PSNR peak is max(F) = 3.
    assert _value("MSE", f, a, b) == pytest.approx(3.5)
    assert _value("PSNR", f, a, b) == pytest.approx(10 * math.log10(9 / 3.5))
    # EN: four distinct levels, equally frequent.
    assert _value("EN", f, a, b) == pytest.approx(2.0)
    half = np.array([[0.0, 255.0]] * 4)
    assert _value("EN", half, half, half) == pytest.approx(1.0)
    # MI(F, A) with F = A two equiprobable levels: ln 2 nats; twice for both sources.
    assert _value("MI", half, half, half) == pytest.approx(2 * math.log(2.0))
    assert _value("SD", half, half, half) == pytest.approx(127.5)


def test_vif_of_identical_images_is_two_and_flat_images_count_one() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (64, 64)).astype(np.float64)
    assert _value("VIF", x, x, x) == pytest.approx(2.0, rel=1e-9)  # σ_v² is floored at 1e-10
    flat = np.full((64, 64), 100.0)
    assert _value("VIF", flat, flat, flat) == 2.0  # 0/0 per source → 1, as the reference does
