"""The ``tang`` and ``vifb`` presets against hand-checked consequences of their definitions (the
conventions only Tang's toolkit has, version by version: tests/test_metrics_tang.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy_reference import nabf as nabf_numpy
from scipy.signal import convolve2d

from stfuse.evaluation import read_gray_255
from stfuse.metrics import METRIC_NAMES, METRIC_PRESETS, FusionMetrics, build_metric, resolve_metric_names
from stfuse.metrics.registry import defined_by


def _value(name: str, preset: str, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    metric = build_metric(name, preset, data_range=255.0)
    metric.update(*(torch.from_numpy(np.asarray(x, dtype=np.float64))[None, None] for x in (f, a, b)))
    return float(metric.compute())


@pytest.fixture(scope="module")
def pair(data_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TNO 19 (270×360) with the reference max fusion, 0–255."""
    load = lambda *parts: read_gray_255(data_root.joinpath(*parts)).astype(np.float64)  # noqa: E731
    return (
        load("reference", "tno", "max", "19.png"),
        load("ivif", "tno", "ir", "19.png"),
        load("ivif", "tno", "vi", "19.png"),
    )


def test_vifb_mi_equals_cddfuse_mi(pair: tuple) -> None:
    """VIFB's min–max stretch maps distinct levels to distinct bins (Tang's MI: tests/test_metrics_tang.py)."""
    assert _value("MI", "vifb", *pair) == pytest.approx(_value("MI", "cddfuse", *pair), rel=1e-14)


def test_vifb_sf_divides_both_sums_by_the_pixel_count() -> None:
    f = np.array([[0.0, 1.0, 3.0], [2.0, 3.0, 3.0]])
    # Σ horizontal² = 1 + 4 + 1 + 0 = 6, Σ vertical² = 4 + 4 + 0 = 8, H·W = 6.
    assert _value("SF", "vifb", f, f, f) == pytest.approx(math.sqrt(14 / 6))
    # cddfuse: 6 / (2·2) + 8 / (1·3)
    assert _value("SF", "cddfuse", f, f, f) == pytest.approx(math.sqrt(6 / 4 + 8 / 3))


@pytest.mark.parametrize("preset", ["tang", "tang2022", "vifb"])
def test_matlab_presets_divide_ag_by_interior_count(pair: tuple, preset: str) -> None:
    h, w = pair[0].shape
    expected = _value("AG", "cddfuse", *pair) * h * w / ((h - 1) * (w - 1))
    assert _value("AG", preset, *pair) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("preset", ["tang", "tang2022"])
def test_tang_mse_and_psnr_use_unit_scale_mse_with_peak_255(pair: tuple, preset: str) -> None:
    mse_255 = _value("MSE", "cddfuse", *pair)
    assert _value("MSE", preset, *pair) == pytest.approx(mse_255 / 255**2, rel=1e-14)
    textbook = 10 * math.log10(255**2 / mse_255)
    offset = _value("PSNR", preset, *pair) - textbook
    assert offset == pytest.approx(20 * math.log10(255), abs=1e-9)  # the "+48.13 dB"
    assert offset == pytest.approx(48.1308, abs=1e-4)


def test_cddfuse_psnr_uses_the_fused_maximum_as_peak(pair: tuple) -> None:
    f = pair[0]
    expected = 10 * math.log10(f.max() ** 2 / _value("MSE", "cddfuse", *pair))
    assert _value("PSNR", "cddfuse", *pair) == pytest.approx(expected, rel=1e-14)


def test_vifb_psnr_reproduces_the_root_sum_bug() -> None:
    f = np.array([[10.0, 20.0], [30.0, 40.0]])
    a = np.zeros((2, 2))
    b = np.full((2, 2), 40.0)
    root_a = math.sqrt(100 + 400 + 900 + 1600) / 4
    root_b = math.sqrt(900 + 400 + 100 + 0) / 4
    expected = 20 * math.log10(255 / math.sqrt((root_a + root_b) / 2))
    assert _value("PSNR", "vifb", f, a, b) == pytest.approx(expected, rel=1e-14)


def test_vifb_ssim_is_gaussian_window_at_l255(pair: tuple) -> None:
    f, a, b = pair
    half = np.arange(11) - 5
    g = np.exp(-(half[:, None] ** 2 + half[None, :] ** 2) / (2 * 1.5**2))
    w = g / g.sum()

    def ssim_vifb(x: np.ndarray, y: np.ndarray) -> float:
        mx, my = convolve2d(x, w, "valid"), convolve2d(y, w, "valid")
        vx = convolve2d(x * x, w, "valid") - mx**2
        vy = convolve2d(y * y, w, "valid") - my**2
        vxy = convolve2d(x * y, w, "valid") - mx * my
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        return float(np.mean((2 * mx * my + c1) * (2 * vxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))))

    assert _value("SSIM", "vifb", f, a, b) == pytest.approx(ssim_vifb(a, f) + ssim_vifb(b, f), rel=1e-12)


@pytest.mark.parametrize("preset", ["tang", "tang2022"])
def test_tang_nabf_runs_on_unit_scale_where_no_strength_reaches_td(pair: tuple, preset: str) -> None:
    f, a, b = pair
    assert _value("Nabf", preset, f, a, b) == pytest.approx(nabf_numpy(f, a, b, scale=1 / 255), rel=1e-12)
    assert _value("Nabf", preset, f, a, b) != pytest.approx(_value("Nabf", "cddfuse", f, a, b), rel=1e-3)


#: The metrics whose definitions differ between cddfuse, tang and vifb (docs/metrics.md, "Presets").
PRESET_DEPENDENT = {"SF", "AG", "MI", "Qabf", "Nabf", "SSIM", "MS_SSIM", "MSE", "PSNR"}


@pytest.mark.parametrize("name", [n for n in METRIC_NAMES if n not in PRESET_DEPENDENT])
def test_metrics_without_preset_differences_agree(pair: tuple, name: str) -> None:
    presets = [p for p in ("cddfuse", "tang", "vifb") if defined_by(name, METRIC_PRESETS[p])]
    crop = tuple(x[:40, :50] for x in pair) if name.startswith("FMI") else pair
    values = [_value(name, p, *crop) for p in presets]
    assert values == pytest.approx([values[0]] * len(values), rel=1e-14)


@pytest.mark.parametrize("preset", ["tang", "tang2022"])
@pytest.mark.parametrize("name", ["SSIM", "MS_SSIM", "FMI_pixel"])
def test_tang_refuses_metrics_it_defines_differently(name: str, preset: str) -> None:
    with pytest.raises(ValueError, match=preset):
        build_metric(name, preset)


def test_preset_default_tables() -> None:
    assert resolve_metric_names(None, "cddfuse") == [
        "EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "MSE", "CC", "PSNR",
    ]  # fmt: skip
    assert "SSIM" not in resolve_metric_names(None, "tang")
    assert "SSIM" not in resolve_metric_names("all", "tang")
    assert len(resolve_metric_names("all", "cddfuse")) == 16
    FusionMetrics("tang")  # the default tang table builds


def test_unknown_preset_and_metric_names_are_reported() -> None:
    with pytest.raises(ValueError, match="unknown metric preset 'matlab'"):
        FusionMetrics("matlab")
    with pytest.raises(ValueError, match="unknown metric 'SSMI'"):
        FusionMetrics("cddfuse", ["SSMI"])
