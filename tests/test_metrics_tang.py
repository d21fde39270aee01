"""The ``tang`` and ``tang2022`` presets against hand values and NumPy transcriptions of the toolkit's
``.m`` formulas (Linfeng-Tang/Evaluation-for-Image-Fusion, ``Evaluation/``): ``MI_evaluation.m`` with
``Hab.m``'s saturating joint histogram, the 2022 ``SD_evaluation.m`` and ``vifp_mscale.m`` on uint8, and
SF/Qabf on the scale each version passes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from stfuse.evaluation import read_gray_255
from stfuse.metrics import build_metric, resolve_metric_names

TANG_PRESETS = ["tang", "tang2022"]
#: The metrics whose conventions changed in the toolkit's commit of 2023-03-03.
VERSIONED = {"SD", "SF", "VIF", "Qabf"}


def _value(name: str, preset: str, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    metric = build_metric(name, preset, data_range=255.0)
    metric.update(*(torch.from_numpy(np.asarray(x, dtype=np.float64))[None, None] for x in (f, a, b)))
    return float(metric.compute())


@pytest.fixture(scope="module")
def seafusion01(data_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TNO pair 01 with the reference SeAFusion image (the pair the toolkit's spreadsheet is quoted on)."""
    load = lambda *parts: read_gray_255(data_root.joinpath(*parts)).astype(np.float64)  # noqa: E731
    return (
        load("reference", "tno", "seafusion", "01.png"),
        load("ivif", "tno", "ir", "01.png"),
        load("ivif", "tno", "vi", "01.png"),
    )


# --- MI: MI_evaluation.m with Hab.m ------------------------------------------------------------------


def _entropy_bits(x: np.ndarray) -> float:
    """MATLAB ``entropy()`` of a uint8 image: 256-bin ``imhist``, empty bins dropped."""
    p = np.bincount(x.astype(np.int64).ravel(), minlength=256) / x.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _hab_bits(x: np.ndarray, y: np.ndarray) -> float:
    """``Hab.m``: ``counter(uint8(x) + 1, uint8(y) + 1)``, where uint8 + 1 saturates at 255."""
    counter = np.zeros((256, 256))
    ix = np.minimum(x.astype(np.int64) + 1, 255)  # 1-based MATLAB indices after saturation
    iy = np.minimum(y.astype(np.int64) + 1, 255)
    np.add.at(counter, (ix - 1, iy - 1), 1)
    p = counter[counter > 0] / counter.sum()
    return float(-(p * np.log2(p)).sum())


def _mi_evaluation(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    h_f = _entropy_bits(f)
    return (_entropy_bits(a) + h_f - _hab_bits(a, f)) + (_entropy_bits(b) + h_f - _hab_bits(b, f))


@pytest.mark.parametrize("preset", TANG_PRESETS)
def test_mi_merges_levels_254_and_255_in_the_joint_histograms_only(preset: str) -> None:
    """F = A = [[254, 255], [0, 0]], B = 0. Marginals keep 254 and 255 apart: H(F) = H(A) = 1.5 bits,
    H(B) = 0. Hab.m's joint histograms merge them: H(A, F) = 1 bit (two cells of 2), H(B, F) = 1 bit.
    MI = (1.5 + 1.5 − 1) + (0 + 1.5 − 1) = 2.5 bits, where exact histograms give 1.5 + 0."""
    f = np.array([[254.0, 255.0], [0.0, 0.0]])
    zeros = np.zeros_like(f)
    assert _value("MI", preset, f, f, zeros) == pytest.approx(2.5, rel=1e-14)
    assert _value("MI", "cddfuse", f, f, zeros) == pytest.approx(1.5 * math.log(2), rel=1e-14)  # nats


def test_mi_without_levels_254_and_255_is_the_exact_mi_in_bits() -> None:
    f = np.array([[3.0, 200.0, 17.0], [253.0, 0.0, 3.0]])
    a = np.array([[1.0, 1.0, 2.0], [253.0, 9.0, 9.0]])
    b = np.array([[0.0, 50.0, 50.0], [7.0, 7.0, 253.0]])
    exact_bits = _value("MI", "cddfuse", f, a, b) / math.log(2)
    for preset in TANG_PRESETS:
        assert _value("MI", preset, f, a, b) == pytest.approx(exact_bits, rel=1e-13)


@pytest.mark.parametrize("preset", TANG_PRESETS)
def test_mi_equals_the_transcription_of_mi_evaluation_on_a_real_pair(seafusion01: tuple, preset: str) -> None:
    f, a, b = seafusion01
    assert (b >= 254).sum() > 100  # the visible image has saturated pixels, so the quirk matters here
    expected = _mi_evaluation(f, a, b)
    assert _value("MI", preset, f, a, b) == pytest.approx(expected, rel=1e-12)
    assert expected != pytest.approx(_value("MI", "cddfuse", f, a, b) / math.log(2), rel=1e-4)


# --- SD: the 2022 SD_evaluation.m on uint8 --------------------------------------------------------


def test_sd_of_a_constant_image_is_zero_in_both_versions() -> None:
    f = np.full((3, 4), 77.0)
    for preset in TANG_PRESETS:
        assert _value("SD", preset, f, f, f) == 0.0


def test_tang2022_sd_saturates_the_uint8_deviation_and_its_square() -> None:
    # u = 50: F − u is 0 (saturated from −50) or 50; 50² = 2500 saturates at 255 → √(2·255/4).
    f = np.array([[0.0, 0.0], [100.0, 100.0]])
    assert _value("SD", "tang2022", f, f, f) == pytest.approx(math.sqrt(127.5), rel=1e-15)
    assert _value("SD", "tang", f, f, f) == pytest.approx(50.0, rel=1e-15)
    # u = 5: squares 25 stay below 255, negative deviations still vanish → √(2·25/4).
    f = np.array([[0.0, 0.0], [10.0, 10.0]])
    assert _value("SD", "tang2022", f, f, f) == pytest.approx(math.sqrt(12.5), rel=1e-15)


def test_tang2022_sd_rounds_half_away_from_zero_as_a_uint8_cast() -> None:
    # u = 0.5: 1 − u = 0.5 rounds to 1 (not to the even 0), 0 − u = −0.5 rounds to −1 and saturates to 0.
    f = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert _value("SD", "tang2022", f, f, f) == pytest.approx(math.sqrt(0.5), rel=1e-15)
    assert _value("SD", "tang", f, f, f) == pytest.approx(0.5, rel=1e-15)


def test_tang2022_sd_reproduces_the_toolkits_spreadsheet_for_seafusion_pair_01(seafusion01: tuple) -> None:
    """The toolkit's shipped Metric/ spreadsheet (2022 code): SeAFusion, pair 01, SD 8.90; correct 48.15."""
    assert round(_value("SD", "tang2022", *seafusion01), 2) == 8.90
    assert round(_value("SD", "tang", *seafusion01), 2) == 48.15
    assert _value("SD", "tang", *seafusion01) == _value("SD", "cddfuse", *seafusion01)


# --- VIF: the 2022 vifp_mscale.m on uint8 ---------------------------------------------------------


def _fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', n, sigma)``."""
    half = (n - 1) / 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def _vifp_mscale(ref: np.ndarray, dist: np.ndarray, *, uint8: bool) -> float:
    """``vifp_mscale.m`` line by line; ``uint8``: ``ref``/``dist`` are uint8 at scale 1, so ``ref.*ref``,
    ``dist.*dist`` and ``ref.*dist`` saturate at 255 there (``filter2`` returns doubles afterwards)."""
    product = (lambda x, y: np.minimum(x * y, 255.0)) if uint8 else (lambda x, y: x * y)
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _fspecial_gaussian(n, n / 5.0)
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
            product = lambda x, y: x * y  # noqa: E731
        mu1, mu2 = convolve2d(ref, win, mode="valid"), convolve2d(dist, win, mode="valid")
        sigma1_sq = convolve2d(product(ref, ref), win, mode="valid") - mu1 * mu1
        sigma2_sq = convolve2d(product(dist, dist), win, mode="valid") - mu2 * mu2
        sigma12 = convolve2d(product(ref, dist), win, mode="valid") - mu1 * mu2
        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0
        g = sigma12 / (sigma1_sq + 1e-10)
        sv_sq = sigma2_sq - g * sigma12
        low1 = sigma1_sq < 1e-10
        g[low1] = 0
        sv_sq[low1] = sigma2_sq[low1]
        sigma1_sq[low1] = 0
        low2 = sigma2_sq < 1e-10
        g[low2] = 0
        sv_sq[low2] = 0
        negative = g < 0
        sv_sq[negative] = sigma2_sq[negative]
        g[negative] = 0
        sv_sq[sv_sq <= 1e-10] = 1e-10
        num += np.sum(np.log10(1 + g * g * sigma1_sq / (sv_sq + 2.0)))
        den += np.sum(np.log10(1 + sigma1_sq / 2.0))
    return float(num / den)


def test_tang2022_vif_saturates_the_first_scales_uint8_products(seafusion01: tuple) -> None:
    f, a, b = (x[100:196, 150:270] for x in seafusion01)  # 96×120: four scales, fast
    expected = _vifp_mscale(a, f, uint8=True) + _vifp_mscale(b, f, uint8=True)
    assert _value("VIF", "tang2022", f, a, b) == pytest.approx(expected, rel=1e-10)
    correct = _vifp_mscale(a, f, uint8=False) + _vifp_mscale(b, f, uint8=False)
    assert _value("VIF", "tang", f, a, b) == pytest.approx(correct, rel=1e-10)
    assert _value("VIF", "tang", f, a, b) == _value("VIF", "cddfuse", f, a, b)
    assert expected > correct + 0.05


def test_tang2022_vif_of_bright_images_comes_from_the_coarser_scales_only() -> None:
    """Above level 15 every uint8 square saturates (16² > 255), so at scale 1 E[x²] ≤ 255 < μ² and every
    variance clamps to 0: the first scale adds nothing to either sum."""
    rng = np.random.default_rng(3)
    f, a, b = (rng.integers(16, 256, (48, 52)).astype(np.float64) for _ in range(3))
    sums = [_vifp_mscale(s, f, uint8=True) for s in (a, b)]
    assert _value("VIF", "tang2022", f, a, b) == pytest.approx(sum(sums), rel=1e-10)


# --- SF and Qabf: 0–255 since 2023-03-03, 0–1 before ---------------------------------------------


def test_sf_and_qabf_are_on_the_255_scale_for_tang_and_unit_scale_for_tang2022(seafusion01: tuple) -> None:
    sf = _value("SF", "cddfuse", *seafusion01)
    assert _value("SF", "tang", *seafusion01) == sf
    assert _value("SF", "tang2022", *seafusion01) == pytest.approx(sf / 255, rel=1e-14)
    assert _value("Qabf", "tang", *seafusion01) == _value("Qabf", "cddfuse", *seafusion01)


def test_tang_qabf_keeps_the_equal_strength_quirk_on_each_versions_scale() -> None:
    """F = A and B = 0: g_A = g_F everywhere, so the strength 'ratio' is g_F itself: on 0–255 for tang
    (≥ 1 wherever there is an edge, so Q_g saturates at 0.9994), g_F/255 for tang2022. Orientations
    agree (Q_α = 0.9879/(1 + e^(−22·0.2))) and B carries no weight, so Qabf = Σ Q_g(g)·Q_α·g / Σ g."""
    y, x = np.mgrid[0:20, 0:24]
    a = np.round(128 + 20 * np.sin(x / 3.0) + 15 * np.cos(y / 4.0))
    zeros = np.zeros_like(a)
    sx = convolve2d(a, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), mode="same")
    sy = convolve2d(a, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]), mode="same")
    g = np.sqrt(sx**2 + sy**2)
    q_alpha = 0.9879 / (1 + math.exp(-22 * 0.2))

    def expected(ratio: np.ndarray) -> float:
        return float(np.sum(0.9994 / (1 + np.exp(-15 * (ratio - 0.5))) * q_alpha * g) / np.sum(g))

    assert _value("Qabf", "tang", a, a, zeros) == pytest.approx(expected(g), rel=1e-6)
    assert _value("Qabf", "tang2022", a, a, zeros) == pytest.approx(expected(g / 255), rel=1e-6)
    assert expected(g / 255) < 0.9 * expected(g)


@pytest.mark.parametrize("name", [n for n in resolve_metric_names("all", "tang") if n not in VERSIONED])
def test_the_two_versions_agree_on_everything_else(seafusion01: tuple, name: str) -> None:
    assert _value(name, "tang2022", *seafusion01) == _value(name, "tang", *seafusion01)
