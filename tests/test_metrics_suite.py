"""The fast paths behind ``stfuse evaluate``: :class:`MetricSuite` against ``FusionMetrics``, the OpenCV
filters against the torch ones they replace on the CPU, the VIF FFT path (used on GPUs) against the
separable one, thread-parallel evaluation against serial, and an evaluate run that never imports
torchmetrics or Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from stfuse.evaluation import find_pairs, read_gray_255
from stfuse.evaluation.evaluator import evaluate_pairs, map_in_threads
from stfuse.metrics import METRIC_PRESETS, FusionMetrics, MetricSuite, resolve_metric_names
from stfuse.metrics import filters as flt
from stfuse.metrics.vif import _sum_log1p, _vifp_pair_sums_fft, _vifp_pair_sums_separable


@pytest.fixture(scope="module")
def tno07(data_root: Path) -> list[torch.Tensor]:
    """TNO pair 07 (256×256) with the reference SeAFusion image, as 1×1×H×W uint8 (fused, ir, vi)."""
    paths = [
        data_root / "reference" / "tno" / "seafusion" / "07.png",
        data_root / "ivif" / "tno" / "ir" / "07.png",
        data_root / "ivif" / "tno" / "vi" / "07.png",
    ]
    return [torch.from_numpy(read_gray_255(p).astype(np.uint8))[None, None] for p in paths]


@pytest.mark.parametrize("preset", sorted(METRIC_PRESETS))
def test_suite_equals_fusion_metrics_for_every_metric_of_every_preset(
    tno07: list[torch.Tensor], preset: str
) -> None:
    names = [
        n for n in resolve_metric_names("all", preset) if not n.startswith("FMI")
    ]  # FMI: below, on a crop
    suite_values = MetricSuite(preset, names, data_range=255.0)(*tno07)
    collection = FusionMetrics(preset, names, data_range=255.0)
    collection.update(*tno07)
    for name, value in collection.compute_per_image().items():
        assert torch.equal(suite_values[name], value), name


def test_suite_equals_fusion_metrics_on_colour_float_input_and_fmi() -> None:
    rng = np.random.default_rng(5)
    fused, ir, vi = (torch.from_numpy(rng.random((2, 3, 48, 52))) for _ in range(3))
    for preset in ("cddfuse", "vifb"):
        names = [n for n in resolve_metric_names("all", preset) if n != "MS_SSIM"]  # MS-SSIM needs ≥ 161 px
        suite_values = MetricSuite(preset, names)(fused, ir, vi)
        collection = FusionMetrics(preset, names)
        collection.update(fused, ir, vi)
        for name, value in collection.compute_per_image().items():
            assert torch.equal(suite_values[name], value), f"{preset} {name}"


def test_a_batch_of_images_gives_each_image_its_own_values(tno07: list[torch.Tensor]) -> None:
    """Batched across images (what a GPU run does) equals one image at a time, for every metric."""
    f, a, b = tno07
    flipped = [x.flip(-1) for x in tno07]
    suite = MetricSuite("cddfuse", "all", data_range=255.0)
    batched = suite(*(torch.cat([x, y]) for x, y in zip(tno07, flipped)))
    alone = [suite(f, a, b), suite(*flipped)]
    for name, values in batched.items():
        expected = torch.cat([alone[0][name], alone[1][name]])
        assert torch.allclose(values, expected, rtol=1e-12, atol=0), name


def test_the_suite_refuses_what_the_preset_does_not_define_and_missing_sources() -> None:
    with pytest.raises(ValueError, match="MEF-SSIM"):
        MetricSuite("tang", ["SSIM"])
    with pytest.raises(ValueError, match="compare with the sources"):
        MetricSuite("cddfuse", ["EN", "VIF"])(torch.rand(1, 1, 50, 50))
    assert set(MetricSuite("cddfuse", ["EN", "SD"])(torch.rand(1, 1, 50, 50))) == {"EN", "SD"}


@pytest.mark.parametrize("taps", [17, 11, 9, 5, 3])
def test_opencv_separable_filter_equals_fft_direct_and_convolve2d(taps: int) -> None:
    rng = np.random.default_rng(taps)
    x = torch.from_numpy(rng.integers(0, 256, (2, 3, 61, 70)).astype(np.float64) ** 2)
    window = flt.gaussian_window_1d(taps, taps / 5.0)
    ours = flt.filter_valid(x, window)  # OpenCV on the CPU
    assert ours.shape == (2, 3, 61 - taps + 1, 70 - taps + 1)
    expected = convolve2d(x[1, 2].numpy(), np.outer(window.numpy(), window.numpy()), mode="valid")
    np.testing.assert_allclose(ours[1, 2].numpy(), expected, rtol=1e-13, atol=1e-9)
    for other in (flt._filter_valid_fft(x, window), flt._filter_valid_direct(x, window)):
        torch.testing.assert_close(ours, other, rtol=1e-12, atol=1e-8)


@pytest.mark.parametrize("dim", [-1, -2])
def test_opencv_window_sums_are_exact_like_shifted_adds(dim: int) -> None:
    """Integer products in float32 and float32 means k/7 summed in float64: exact either way."""
    rng = np.random.default_rng(7)
    levels = torch.from_numpy(rng.integers(0, 256, (2, 40, 45))).to(torch.float32)
    products = levels * levels.flip(-1)
    sums = flt.window_sums_valid(products, 7, dim)
    length = products.shape[dim] - 6
    shifted = sum(products.narrow(dim, i, length).to(torch.float64) for i in range(7))
    assert sums.dtype == torch.float32 and torch.equal(sums.to(torch.float64), shifted)
    means = sums / 7  # float32 k/7: multiples of 2^-26
    in_double = flt.window_sums_valid(means, 7, dim, dtype=torch.float64)
    length = means.shape[dim] - 6
    assert torch.equal(in_double, sum(means.narrow(dim, i, length).to(torch.float64) for i in range(7)))
    with pytest.raises(ValueError):
        flt.window_sums_valid(means, 7, 0)


@pytest.mark.parametrize("first_cap", [None, 255.0])  # 255: tang2022's saturating uint8 products
def test_vif_fft_path_for_gpus_equals_the_separable_cpu_path(
    tno07: list[torch.Tensor], first_cap: float | None
) -> None:
    f, a, b = (x[:, 0].to(torch.float64) for x in tno07)
    fft_sums = _vifp_pair_sums_fft(f, a, b, first_cap)
    for fft_sum, direct_sum in zip(fft_sums, _vifp_pair_sums_separable(f, a, b, first_cap)):
        torch.testing.assert_close(fft_sum, direct_sum, rtol=1e-11, atol=0)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4, 1e30])
def test_vif_log_sums_by_chunk_products_equal_log1p_sums_without_overflow(scale: float) -> None:
    x = torch.from_numpy(np.random.default_rng(3).random((2, 2, 37, 41)) * scale)
    got = _sum_log1p(x.clone())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.log1p(x).sum(dim=(-2, -1)), rtol=1e-12, atol=0)


def _write_pairs(folder: Path, shapes: dict[str, tuple[int, int]]) -> Path:
    rng = np.random.default_rng(11)
    for kind in ("ir", "vi", "fused"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name, shape in shapes.items():
            cv2.imwrite(str(folder / kind / f"{name}.png"), rng.integers(0, 256, shape, dtype=np.uint8))
    return folder


def test_parallel_evaluation_equals_serial_in_pair_order(tmp_path: Path) -> None:
    shapes = {"1": (60, 64), "2": (64, 48), "3": (60, 64), "10": (80, 90), "11": (64, 48)}
    root = _write_pairs(tmp_path, shapes)
    pairs = find_pairs(root / "ir", root / "vi")
    everything_but_ms_ssim = [n for n in resolve_metric_names("all") if n != "MS_SSIM"]  # MS-SSIM: ≥ 161 px
    runs = [
        evaluate_pairs(
            pairs,
            {"ours": root / "fused"},
            ["avg"],
            metrics=everything_but_ms_ssim,
            workers=workers,
            thumbnails=True,
        )
        for workers in (1, 2)
    ]
    assert runs[0].images == runs[1].images == ["1", "2", "3", "10", "11"]
    assert runs[0].values == runs[1].values
    assert runs[1].thumbnails.keys() == set(shapes)
    assert torch.get_num_threads() == 1  # the caller's setting (tests run with one thread) is kept


def test_map_in_threads_keeps_order_starts_costly_items_first_and_propagates_errors() -> None:
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        if item == 13:
            raise RuntimeError("unreadable")
        return item * item

    items = [1, 5, 2, 4, 3]
    assert list(map_in_threads(work, items, 2, cost=float)) == [1, 25, 4, 16, 9]
    assert started[:2] == [5, 4]  # the two costliest start first
    with pytest.raises(RuntimeError, match="unreadable"):
        list(map_in_threads(work, [1, 13, 2], 2))


def test_stfuse_evaluate_imports_neither_torchmetrics_nor_lightning(tmp_path: Path) -> None:
    root = _write_pairs(tmp_path, {"a": (50, 52), "b": (50, 52)})
    code = (
        "import sys\n"
        "from stfuse.cli import main\n"
        f"code = main(['evaluate', '--ir', {str(root / 'ir')!r}, '--vi', {str(root / 'vi')!r}, "
        f"'--fused', 'ours={root / 'fused'}', '--baseline', 'avg', '--out', {str(tmp_path / 'out')!r}, "
        f"'--report', {str(tmp_path / 'out' / 'r.html')!r}, '--no-progress'])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torchmetrics', 'lightning', 'pytorch_lightning', 'wandb'})\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"
    summary = json.loads((tmp_path / "out" / "metrics_summary.json").read_text())
    assert list(summary["methods"]) == ["ours", "average"]
