"""The ``vifb`` preset scores colour and grey fused images the way VIFB's MATLAB code does
(docs/metrics.md, "VIFB's colour and grey conventions"): hand-computed values, a NumPy transcription of
the convention built on the independent oracle in ``benchmarks/numpy_reference.py``, and the
``stfuse evaluate`` read path."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import numpy_reference as nr
import pytest
import torch
from scipy.signal import convolve2d

from stfuse.evaluation import find_pairs, read_gray_255
from stfuse.evaluation.evaluator import evaluate_pairs
from stfuse.evaluation.vifb_io import grey_of_stored, read_as_stored
from stfuse.metrics import METRIC_NAMES, FusionMetrics, build_metric, prepare_batch
from stfuse.metrics.vifb import matlab_rgb2gray

VIFB_METRICS = ["EN", "SD", "SF", "AG", "MI", "SSIM", "PSNR", "Qabf"]
#: MATLAB rgb2gray weights, written out here independently of the module under test.
W_R, W_G, W_B = 0.2989360212937754, 0.5870430744511212, 0.11402090425510336


# --- a NumPy transcription of VIFB's convention (images H×W or H×W×3 RGB, 0–255) -------------------


def _rgb2gray(x: np.ndarray, rounded: bool) -> np.ndarray:
    g = (x[..., 0] * W_R + x[..., 1] * W_G) + x[..., 2] * W_B
    return np.floor(g + 0.5) if rounded else g


def _ssim_gaussian(x: np.ndarray, y: np.ndarray) -> float:
    half = np.arange(11) - 5
    g = np.exp(-(half[:, None] ** 2 + half[None, :] ** 2) / (2 * 1.5**2))
    w = g / g.sum()
    mx, my = convolve2d(x, w, "valid"), convolve2d(y, w, "valid")
    vx = convolve2d(x * x, w, "valid") - mx**2
    vy = convolve2d(y * y, w, "valid") - my**2
    vxy = convolve2d(x * y, w, "valid") - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float(np.mean((2 * mx * my + c1) * (2 * vxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))))


def _one(name: str, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    h, w = f.shape
    if name == "EN":
        return nr.en(f)
    if name == "SD":
        return nr.sd(f)
    if name == "SF":
        return math.sqrt((np.sum(np.diff(f, axis=1) ** 2) + np.sum(np.diff(f, axis=0) ** 2)) / (h * w))
    if name == "AG":
        return nr.ag(f) * h * w / ((h - 1) * (w - 1))
    if name == "MI":
        return nr.mi(f, a, b)
    if name == "SSIM":
        return _ssim_gaussian(a, f) + _ssim_gaussian(b, f)
    if name == "PSNR":
        m = 0.5 * (math.sqrt(np.sum((a - f) ** 2)) + math.sqrt(np.sum((b - f) ** 2))) / (h * w)
        return 20 * math.log10(255 / math.sqrt(m))
    if name == "Qabf":
        return nr.qabf(255 * f, 255 * a, 255 * b)  # VIFB: 255·im2double of double images
    raise KeyError(name)


def vifb_oracle(name: str, f: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    f, ir, vi = (x.astype(np.float64) for x in (f, ir, vi))
    if f.ndim == 3:  # colour: channel k against visible channel k (and IR channel k or the grey IR)
        if name == "SF":
            return _one("SF", np.hstack([f[..., k] for k in range(3)]), ir, vi)
        return float(
            np.mean([_one(name, f[..., k], ir[..., k] if ir.ndim == 3 else ir, vi[..., k]) for k in range(3)])
        )
    rounded = name not in ("PSNR", "Qabf")
    grey = lambda x: x if x.ndim == 2 else _rgb2gray(x, rounded)  # noqa: E731
    return _one(name, f, grey(ir), grey(vi))


# --- helpers -------------------------------------------------------------------------------------


def _tensor(x: np.ndarray) -> torch.Tensor:
    """H×W or H×W×3 uint8 → 1×C×H×W."""
    x = np.asarray(x)
    return torch.from_numpy(np.ascontiguousarray(x if x.ndim == 2 else x.transpose(2, 0, 1))).reshape(
        1, -1, *x.shape[:2]
    )


def _vifb(name: str, f: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    metric = build_metric(name, "vifb")
    metric.update(_tensor(f), _tensor(ir), _tensor(vi))
    return float(metric.compute())


def _smooth_image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """8-bit test image with edges, texture and flat patches (so Qabf and MI are not degenerate)."""
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    base = 110 + 60 * np.sin(x / 4.0 + rng.uniform(0, 6)) * np.cos(y / 5.0 + rng.uniform(0, 6))
    extra = shape[2:] or ()
    noise = rng.normal(0, 12, (h, w, *extra))
    image = (base[..., None] if extra else base) + noise
    image[: h // 3, : w // 3] = rng.integers(0, 256)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def triplet() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(15)
    return {
        "fused_rgb": _smooth_image(rng, (44, 46, 3)),
        "vi_rgb": _smooth_image(rng, (44, 46, 3)),
        "ir_grey": _smooth_image(rng, (44, 46)),
        "ir_rgb": _smooth_image(rng, (44, 46, 3)),
        "fused_grey": _smooth_image(rng, (44, 46)),
    }


# --- MATLAB's rgb2gray ---------------------------------------------------------------------------


def test_matlab_rgb2gray_weights_and_rounding() -> None:
    rgb = torch.tensor(
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 200, 30]], dtype=torch.float64
    )
    image = rgb.T.reshape(1, 3, 1, 5)
    exact = matlab_rgb2gray(image, rounded=False)[0, 0]
    assert exact.tolist() == pytest.approx(
        [255 * W_R, 255 * W_G, 255 * W_B, 255.0, 10 * W_R + 200 * W_G + 30 * W_B], rel=1e-15
    )
    # 76.23, 149.70, 29.08, 255 − 1e-13, 123.82: MATLAB's uint8 result
    assert matlab_rgb2gray(image, rounded=True)[0, 0].tolist() == [76.0, 150.0, 29.0, 255.0, 124.0]
    # OpenCV's 0.299/0.587/0.114 (the cddfuse reader) rounds some colours to the other neighbour.
    levels = torch.arange(256, dtype=torch.float64)
    r, g, b = torch.meshgrid(levels, levels[:8], levels[:8], indexing="ij")
    colours = torch.stack([r, g, b]).reshape(1, 3, 1, -1)
    ours = matlab_rgb2gray(colours, rounded=True)
    opencv = torch.round(colours[:, 0] * 0.299 + colours[:, 1] * 0.587 + colours[:, 2] * 0.114)
    assert (ours != opencv).any()


def test_identical_channels_round_back_to_their_level_but_not_in_floating_point() -> None:
    v = torch.arange(256, dtype=torch.float64)
    same = v.reshape(1, 1, 1, -1).expand(1, 3, 1, -1)
    assert torch.equal(matlab_rgb2gray(same, rounded=True)[0, 0], v)
    exact = matlab_rgb2gray(same, rounded=False)[0, 0]
    assert (exact != v).any()  # (w_R + w_G + w_B)·v is v − 1 ulp for some levels, as in MATLAB
    assert torch.allclose(exact, v, rtol=1e-15, atol=0)


# --- colour fused images: hand-computed values ---------------------------------------------------


def test_sf_sees_the_three_channels_side_by_side() -> None:
    red = np.array([[0, 1], [2, 3]])
    fused = np.stack([red, np.zeros((2, 2)), np.full((2, 2), 10)], axis=-1).astype(np.uint8)
    # R | G | B as one 2×6 image: rows [0 1 0 0 10 10] and [2 3 0 0 10 10].
    # Horizontal: 1+1+0+100+0 and 1+9+0+100+0 = 212; vertical: 4+4 = 8; divided by H·3W = 12.
    expected = math.sqrt(220 / 12)
    assert _vifb("SF", fused, fused[..., 0], fused) == pytest.approx(expected, rel=1e-15)
    per_channel_mean = (math.sqrt(10 / 4) + 0 + 0) / 3  # what averaging channels would give
    assert expected != pytest.approx(per_channel_mean, rel=1e-2)


def test_en_and_mi_are_averaged_over_channels() -> None:
    # R: two levels in equal halves (1 bit, ln 2 nats); G: flat (0); B: four levels in equal rows (2 bits).
    red = np.repeat([[0, 0, 255, 255]], 4, axis=0)
    green = np.full((4, 4), 7)
    blue = np.repeat([[0], [50], [100], [150]], 4, axis=1)
    vi = np.stack([red, green, blue], axis=-1).astype(np.uint8)
    ir = np.full((4, 4), 90, np.uint8)  # flat: MI with anything is 0
    assert _vifb("EN", vi, ir, vi) == pytest.approx((1 + 0 + 2) / 3, rel=1e-15)
    # fused = visible: MI(F_k, VI_k) = H(VI_k) in nats, MI(F_k, IR) = 0
    assert _vifb("MI", vi, ir, vi) == pytest.approx((math.log(2) + 0 + math.log(4)) / 3, rel=1e-14)


def test_psnr_per_channel_with_flat_images() -> None:
    h, w = 3, 5
    fused_levels, vi_levels, ir_level = (40, 100, 200), (50, 130, 180), 70
    fused = np.broadcast_to(np.array(fused_levels, np.uint8), (h, w, 3)).copy()
    vi = np.broadcast_to(np.array(vi_levels, np.uint8), (h, w, 3)).copy()
    ir = np.full((h, w), ir_level, np.uint8)

    def psnr(f: float, a: float, b: float) -> float:
        # VIFB's root-sum "MSE": (√(HW·(a−f)²) + √(HW·(b−f)²)) / 2 / (HW)
        m = 0.5 * (abs(a - f) + abs(b - f)) / math.sqrt(h * w)
        return 20 * math.log10(255 / math.sqrt(m))

    colour = np.mean([psnr(f, ir_level, v) for f, v in zip(fused_levels, vi_levels, strict=True)])
    assert _vifb("PSNR", fused, ir, vi) == pytest.approx(colour, rel=1e-14)
    # Grey fused: the visible image becomes grey in floating point (not rounded) for PSNR.
    grey_vi = (vi_levels[0] * W_R + vi_levels[1] * W_G) + vi_levels[2] * W_B  # 112.1…, not an integer
    assert _vifb("PSNR", fused[..., 1], ir, vi) == pytest.approx(psnr(100, ir_level, grey_vi), rel=1e-14)
    assert _vifb("PSNR", fused[..., 1], ir, vi) != pytest.approx(
        psnr(100, ir_level, round(grey_vi)), rel=1e-9
    )


def test_qabf_of_a_copy_of_the_visible_image_saturates_per_channel(triplet: dict[str, np.ndarray]) -> None:
    """F = VI and IR = 0: g_IR = 0 carries no weight; g_VI = g_F everywhere, where VIFB's strength
    'ratio' is its quirk value 255·g_F ≫ 1 (Q_g = 0.9994), orientations agree (Q_α = 0.9879/(1+e^(−4.4))),
    so every channel, and their mean, is 0.9994·Q_α."""
    vi = triplet["vi_rgb"]
    zeros = np.zeros(vi.shape[:2], np.uint8)
    expected = 0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert _vifb("Qabf", vi, zeros, vi) == pytest.approx(expected, rel=1e-12)


def test_qabf_quirk_value_is_on_vifbs_255_times_scale() -> None:
    """Isolated dots of level 1: every edge response is weak (g = √2 or 2 on 0–255), where the quirk
    value matters. VIFB's 255·g_F saturates Q_g at 0.9994; g_F on the 0–255 scale (cddfuse) does not."""
    dots = np.zeros((24, 24), np.uint8)
    dots[3::6, 3::6] = 1
    vi = np.stack([dots, np.roll(dots, 1, axis=1), np.roll(dots, 2, axis=0)], axis=-1)
    zeros = np.zeros_like(dots)
    expected = 0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert _vifb("Qabf", vi, zeros, vi) == pytest.approx(expected, rel=1e-14)
    cddfuse = build_metric("Qabf", "cddfuse")
    cddfuse.update(_tensor(dots), _tensor(zeros), _tensor(dots))
    assert float(cddfuse.compute()) < expected * (1 - 1e-7)


# --- colour and grey paths against the NumPy transcription ---------------------------------------


@pytest.mark.parametrize("name", VIFB_METRICS)
@pytest.mark.parametrize("ir_kind", ["ir_grey", "ir_rgb"])
def test_colour_fused_matches_the_numpy_transcription(
    triplet: dict[str, np.ndarray], name: str, ir_kind: str
) -> None:
    f, ir, vi = triplet["fused_rgb"], triplet[ir_kind], triplet["vi_rgb"]
    assert _vifb(name, f, ir, vi) == pytest.approx(vifb_oracle(name, f, ir, vi), rel=1e-11)


@pytest.mark.parametrize("name", VIFB_METRICS)
@pytest.mark.parametrize("ir_kind", ["ir_grey", "ir_rgb"])
def test_grey_fused_matches_the_numpy_transcription(
    triplet: dict[str, np.ndarray], name: str, ir_kind: str
) -> None:
    f, ir, vi = triplet["fused_grey"], triplet[ir_kind], triplet["vi_rgb"]
    assert _vifb(name, f, ir, vi) == pytest.approx(vifb_oracle(name, f, ir, vi), rel=1e-11)


@pytest.mark.parametrize("name", ["MI", "SSIM", "PSNR", "Qabf"])
def test_grey_fused_rounds_the_visible_grey_only_for_mi_and_ssim(
    triplet: dict[str, np.ndarray], name: str
) -> None:
    f, ir = triplet["fused_grey"].astype(np.float64), triplet["ir_grey"].astype(np.float64)
    vi = triplet["vi_rgb"].astype(np.float64)
    rounded = _one(name, f, ir, _rgb2gray(vi, True))
    exact = _one(name, f, ir, _rgb2gray(vi, False))
    vi32 = vi.astype(np.float32)
    opencv = _one(
        name,
        f,
        ir,
        np.round(vi32[..., 2] * 0.114 + vi32[..., 1] * 0.587 + vi32[..., 0] * 0.299).astype(np.float64),
    )
    ours = _vifb(name, f.astype(np.uint8), ir.astype(np.uint8), triplet["vi_rgb"])
    assert ours == pytest.approx(exact if name in ("PSNR", "Qabf") else rounded, rel=1e-11)
    assert ours != pytest.approx(opencv, rel=1e-9)  # the former conversion (OpenCV weights, rounded)
    if name != "MI":  # MI bins grey levels, so it is defined on rounded values only
        assert rounded != pytest.approx(exact, rel=1e-9)


def test_grey_and_colour_reading_of_one_fused_image_differ_as_in_vifb(triplet: dict[str, np.ndarray]) -> None:
    """The same grey fused image, once stored grey and once as three identical channels (as a JPEG
    from a grey image often is): MATLAB gives a grey and a colour image, VIFB takes two paths."""
    grey = triplet["fused_grey"]
    three = np.repeat(grey[..., None], 3, axis=-1)
    ir, vi = triplet["ir_grey"], triplet["vi_rgb"]
    h, w = grey.shape
    values = {
        p: {n: _vifb(n, f, ir, vi) for n in VIFB_METRICS} for p, f in (("grey", grey), ("colour", three))
    }
    for name in ("EN", "SD", "AG"):  # fused-only, per channel: identical channels change nothing
        assert values["colour"][name] == pytest.approx(values["grey"][name], rel=1e-14)
    # SF gains exactly the two seams between R|G and G|B: Σ_rows (F[:, 0] − F[:, −1])², twice, / (3HW).
    seams = 2 * float(np.sum((grey[:, 0].astype(np.float64) - grey[:, -1]) ** 2))
    assert values["colour"]["SF"] ** 2 == pytest.approx(
        values["grey"]["SF"] ** 2 + seams / (3 * h * w), rel=1e-13
    )
    for name in ("MI", "SSIM", "PSNR", "Qabf"):  # against VI channels vs against rgb2gray(VI)
        assert values["colour"][name] != pytest.approx(values["grey"][name], rel=1e-4)
        assert values["colour"][name] == pytest.approx(vifb_oracle(name, three, ir, vi), rel=1e-11)
        assert values["grey"][name] == pytest.approx(vifb_oracle(name, grey, ir, vi), rel=1e-11)


def test_a_three_channel_infrared_image_is_used_channel_by_channel(triplet: dict[str, np.ndarray]) -> None:
    f, vi, ir = triplet["fused_rgb"], triplet["vi_rgb"], triplet["ir_rgb"]
    per_channel = np.mean([_vifb("MI", f[..., k], ir[..., k], vi[..., k]) for k in range(3)])
    assert _vifb("MI", f, ir, vi) == pytest.approx(per_channel, rel=1e-14)
    assert _vifb("MI", f, ir, vi) != pytest.approx(_vifb("MI", f, ir[..., 0], vi), rel=1e-4)


def test_grey_inputs_give_what_the_grey_path_gave_before(triplet: dict[str, np.ndarray]) -> None:
    """Grey fused and grey sources: VIFB and the former grey conversion agree, so the values are the
    grey kernels' own, bit for bit (Qabf's kernel under vifb is VIFB's float64 one, tested above)."""
    f, ir, vi = (_tensor(triplet[k]) for k in ("fused_grey", "ir_grey", "fused_rgb"))
    vi = vi[:, 1:2]
    for name in [n for n in METRIC_NAMES if n != "MS_SSIM"]:  # MS-SSIM needs ≥ 161 px
        metric = build_metric(name, "vifb")
        metric.update(f, ir, vi)
        before = metric.values_for(prepare_batch(f, ir, vi))
        assert torch.equal(metric.compute_per_image(), before.to(torch.float64)), name


def test_float_network_output_is_quantised_per_channel_like_a_saved_png(
    triplet: dict[str, np.ndarray],
) -> None:
    f, ir, vi = (_tensor(triplet[k]) for k in ("fused_rgb", "ir_grey", "vi_rgb"))
    as_float = FusionMetrics("vifb", VIFB_METRICS)
    as_float.update(f / 255.0 + 1e-3 / 255, ir / 255.0, vi / 255.0)  # rounding brings back the levels
    as_uint8 = FusionMetrics("vifb", VIFB_METRICS)
    as_uint8.update(f, ir, vi)
    for name, value in as_uint8.compute().items():
        assert float(as_float.compute()[name]) == pytest.approx(float(value), rel=1e-14), name


def test_other_presets_still_convert_colour_to_grey_first(triplet: dict[str, np.ndarray]) -> None:
    f, ir, vi = (_tensor(triplet[k]) for k in ("fused_rgb", "ir_grey", "vi_rgb"))
    colour = FusionMetrics("cddfuse", ["EN", "MI"])
    colour.update(f, ir, vi)
    grey = FusionMetrics("cddfuse", ["EN", "MI"])
    to_grey = lambda x: torch.round(x[:, 2:3] * 0.114 + x[:, 1:2] * 0.587 + x[:, 0:1] * 0.299)  # noqa: E731
    grey.update(to_grey(f.float()).to(torch.uint8), ir, to_grey(vi.float()).to(torch.uint8))
    assert {k: float(v) for k, v in colour.compute().items()} == pytest.approx(
        {k: float(v) for k, v in grey.compute().items()}
    )


# --- stfuse evaluate: reading as stored ----------------------------------------------------------


def test_images_are_read_with_their_stored_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    bgr = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "colour.png"), bgr)
    cv2.imwrite(str(tmp_path / "grey.jpg"), grey)
    cv2.imwrite(str(tmp_path / "three.jpg"), np.repeat(grey[..., None], 3, axis=-1))  # three equal channels
    assert np.array_equal(read_as_stored(tmp_path / "grey.png"), grey[None])
    assert np.array_equal(read_as_stored(tmp_path / "colour.png"), bgr[..., ::-1].transpose(2, 0, 1))  # RGB
    assert read_as_stored(tmp_path / "grey.jpg").shape == (1, 16, 24)
    three = read_as_stored(tmp_path / "three.jpg")
    assert three.shape == (3, 16, 24)  # MATLAB's imread: three channels, even though they are equal
    assert (three[0] == three[1]).all() and (three[1] == three[2]).all()
    for name in ("grey.png", "colour.png", "grey.jpg", "three.jpg"):
        assert np.array_equal(
            grey_of_stored(read_as_stored(tmp_path / name)), read_gray_255(tmp_path / name).astype(np.uint8)
        )


def test_the_grey_reading_derived_from_stored_channels_equals_the_reference_reader(data_root: Path) -> None:
    files = [
        p
        for d in ("tno", "roadscene", "msrs")
        for kind in ("ir", "vi")
        for p in sorted((data_root / "ivif" / d / kind).iterdir())[:3]
    ]
    for path in files:
        assert np.array_equal(grey_of_stored(read_as_stored(path)), read_gray_255(path).astype(np.uint8)), (
            path
        )


def _write_colour_set(folder: Path, names: list[str], seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    for kind in ("ir", "vi", "colour", "mixed"):
        (folder / kind).mkdir(parents=True)
    for index, name in enumerate(names):
        vi = _smooth_image(rng, (40, 44, 3))
        ir = _smooth_image(rng, (40, 44))
        fused = np.maximum(vi, ir[..., None])
        cv2.imwrite(str(folder / "vi" / f"{name}.png"), vi[..., ::-1])
        cv2.imwrite(str(folder / "ir" / f"{name}.png"), ir)
        cv2.imwrite(str(folder / "colour" / f"{name}.png"), fused[..., ::-1])
        # every other fused image stored grey: channel counts differ inside one batch
        mixed = fused if index % 2 else fused[..., 1]
        cv2.imwrite(str(folder / "mixed" / f"{name}.png"), mixed if mixed.ndim == 2 else mixed[..., ::-1])
    return {kind: folder / kind for kind in ("ir", "vi", "colour", "mixed")}


def test_evaluate_reads_colour_under_vifb_only(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    dirs = _write_colour_set(tmp_path, names, seed=7)
    pairs = find_pairs(dirs["ir"], dirs["vi"])
    fused = {"colour": dirs["colour"], "mixed": dirs["mixed"]}
    metrics = ["EN", "SF", "MI", "SSIM", "PSNR", "Qabf"]
    for batch_pixels in (1, 10_000_000):  # one pair per update, and all three in one batch
        result = evaluate_pairs(
            pairs, fused, ["avg"], preset="vifb", metrics=metrics, batch_pixels=batch_pixels
        )
        assert result.images == names
        for method in ("colour", "mixed"):
            for index, name in enumerate(names):
                expected = FusionMetrics("vifb", metrics)
                stored = [read_as_stored(dirs[k] / f"{name}.png") for k in (method, "ir", "vi")]
                expected.update(*(torch.from_numpy(x)[None] for x in stored))
                for metric, value in expected.compute().items():
                    assert result.values[method][metric][index] == pytest.approx(float(value), rel=1e-13)
        # baselines stay grey images made from the grey sources: the grey path, against rgb2gray(VI)
        average = FusionMetrics("vifb", metrics)
        ir, vi = (read_as_stored(dirs[k] / "a.png") for k in ("ir", "vi"))
        grey_avg = np.round((grey_of_stored(ir).astype(np.float64) + grey_of_stored(vi)) / 2)
        average.update(
            torch.from_numpy(grey_avg)[None, None] / 255,
            torch.from_numpy(ir)[None] / 255,
            torch.from_numpy(vi)[None] / 255,
        )
        for metric, value in average.compute().items():
            assert result.values["average"][metric][0] == pytest.approx(float(value), rel=1e-13)
    # cddfuse reads every image grey, as before
    grey_result = evaluate_pairs(pairs, {"colour": dirs["colour"]}, preset="cddfuse", metrics=["EN", "MI"])
    expected = FusionMetrics("cddfuse", ["EN", "MI"], data_range=255.0)
    read = lambda kind: torch.from_numpy(read_gray_255(dirs[kind] / "b.png"))[None, None]  # noqa: E731
    expected.update(read("colour"), read("ir"), read("vi"))
    assert grey_result.values["colour"]["EN"][1] == pytest.approx(float(expected.compute()["EN"]), rel=1e-14)
    assert grey_result.values["colour"]["EN"][1] != pytest.approx(result.values["colour"]["EN"][1], rel=1e-6)


def test_tno_three_equal_channels_keep_the_grey_values(data_root: Path) -> None:
    """TNO's PNGs hold three equal channels, read as three under vifb (as MATLAB does). rgb2gray rounds
    them back to their levels, so every metric that takes the rounded grey is unchanged bit for bit;
    PSNR's floating-point grey is off by at most an ulp."""
    ir, vi = (read_as_stored(data_root / "ivif" / "tno" / kind / "19.png") for kind in ("ir", "vi"))
    assert ir.shape[0] == vi.shape[0] == 3
    fused = torch.from_numpy(read_as_stored(data_root / "reference" / "tno" / "max" / "19.png"))[None]
    names = ["EN", "SD", "SF", "AG", "MI", "SSIM", "SCD", "CC", "PSNR"]
    stored, grey = FusionMetrics("vifb", names), FusionMetrics("vifb", names)
    stored.update(fused, torch.from_numpy(ir)[None], torch.from_numpy(vi)[None])
    grey.update(fused, torch.from_numpy(ir[:1])[None], torch.from_numpy(vi[:1])[None])
    for name in names[:-1]:
        assert torch.equal(stored.compute()[name], grey.compute()[name]), name
    assert float(stored.compute()["PSNR"]) == pytest.approx(float(grey.compute()["PSNR"]), rel=1e-14)
