"""The Python API (``Fuser``), tiled fusion, and ``stfuse fuse`` on folders in the real on-disk layout."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from data_modules.io import read_image, rgb_to_y_cbcr
from stfuse.inference import fuser as fuser_module
from stfuse.inference.cli import fuse_main
from stfuse.inference.compute import configure_cpu_threads, physical_cores
from stfuse.inference.fuser import Fuser, NoDefaultWeightsError
from stfuse.inference.runner import SizeGroupedBatchSampler, collect_pairs
from stfuse.inference.tiling import TileGrid, fuse_tiled, tile_starts
from stfuse.models import STFuseNet
from stfuse.models.checkpoint import CheckpointError, save_network

TINY = {"preset": "tiny", "head_channels": 4}


def tiny_net(seed: int = 0) -> STFuseNet:
    torch.manual_seed(seed)
    return STFuseNet(**TINY).eval()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_network(tiny_net(), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def fuser() -> Fuser:
    return Fuser(tiny_net())


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random scene with edges: float32 H×W in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 8 + 2, width // 8 + 2)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    smooth[height // 3 : height // 2, width // 4 : width // 2] += 0.5
    return np.clip(smooth, 0.0, 1.0)


def colour_scene(height: int, width: int, seed: int = 1) -> np.ndarray:
    return np.stack([scene(height, width, seed + k) for k in range(3)], axis=-1)


# ---------------------------------------------------------------------------------------------- Python API
def test_numpy_uint8_grey_ir_and_colour_vi_give_uint8_colour(fuser: Fuser) -> None:
    ir = (scene(48, 64) * 255).astype(np.uint8)
    vi = (colour_scene(48, 64) * 255).astype(np.uint8)
    fused = fuser.fuse(ir, vi)
    assert fused.shape == (48, 64, 3) and fused.dtype == np.uint8
    grey = fuser.fuse(ir, vi, gray=True)
    assert grey.shape == (48, 64) and grey.dtype == np.uint8


def test_colour_output_keeps_the_visible_chroma_and_the_fused_luminance(fuser: Fuser) -> None:
    ir = torch.from_numpy(scene(40, 56))[None]  # 1×H×W
    vi = torch.from_numpy(colour_scene(40, 56)).permute(2, 0, 1).contiguous()  # 3×H×W
    fused = fuser.fuse(ir, vi)
    assert fused.shape == (3, 40, 56) and fused.dtype == torch.float32
    y_out, cbcr_out = rgb_to_y_cbcr(fused)
    y_vi, cbcr_vi = rgb_to_y_cbcr(vi)
    expected_y = fuser.fuse_luminance(ir[None], y_vi[None])[0]
    # ycbcr→rgb clamps to [0, 1]; away from clipped pixels chroma and luminance are exact.
    inside = ((fused > 0.01) & (fused < 0.99)).all(dim=0)
    assert torch.allclose(cbcr_out[:, inside], cbcr_vi[:, inside], atol=1e-4)
    assert torch.allclose(y_out[:, inside], expected_y[:, inside], atol=1e-4)


def test_grey_visible_stays_grey_and_rgb_stored_grey_ir_equals_grey_ir(fuser: Fuser) -> None:
    ir = (scene(32, 40) * 255).astype(np.uint8)
    vi = (scene(32, 40, seed=5) * 255).astype(np.uint8)
    grey = fuser.fuse(ir, vi)
    assert grey.shape == (32, 40)
    ir_as_rgb = np.repeat(ir[:, :, None], 3, axis=2)
    assert np.abs(fuser.fuse(ir_as_rgb, vi).astype(int) - grey.astype(int)).max() <= 1


def test_pil_16bit_and_batched_tensor_inputs_round_trip_their_kind(fuser: Fuser) -> None:
    ir = Image.fromarray((scene(24, 32) * 255).astype(np.uint8))
    vi = Image.fromarray((colour_scene(24, 32) * 255).astype(np.uint8))
    out = fuser.fuse(ir, vi)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (32, 24)
    assert fuser.fuse(ir, vi, gray=True).mode == "L"

    ir16 = (scene(24, 32) * 65535).astype(np.uint16)
    vi16 = (scene(24, 32, seed=3) * 65535).astype(np.uint16)
    out16 = fuser.fuse(ir16, vi16)
    assert out16.dtype == np.uint16 and out16.shape == (24, 32)
    out8 = fuser.fuse((ir16 // 257).astype(np.uint8), (vi16 // 257).astype(np.uint8))
    assert np.abs(out16.astype(float) / 65535 - out8.astype(float) / 255).max() < 0.02

    batch_ir = torch.rand(3, 1, 20, 28)
    batch_vi = (torch.rand(3, 3, 20, 28) * 255).to(torch.uint8)
    fused = fuser.fuse(batch_ir, batch_vi)
    assert fused.shape == (3, 3, 20, 28) and fused.dtype == torch.uint8
    single = fuser.fuse(batch_ir[1], batch_vi[1])
    assert (fused[1].int() - single.int()).abs().max() <= 1


def test_api_errors_name_the_problem(fuser: Fuser) -> None:
    with pytest.raises(ValueError, match=r"ir and vi differ in size: ir is 20×30, vi is 21×30"):
        fuser.fuse(np.zeros((20, 30), np.uint8), np.zeros((21, 30), np.uint8))
    with pytest.raises(ValueError, match=r"vi: float pixels span \[0, 2\]"):
        fuser.fuse(
            np.zeros((8, 8), np.float32), np.full((8, 8), 2.0, np.float32) * np.eye(8, dtype=np.float32)
        )
    with pytest.raises(TypeError, match="ir: unsupported pixel type int64"):
        fuser.fuse(np.zeros((8, 8), np.int64), np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="expected a numpy array, PIL image or torch tensor"):
        fuser.fuse([[0.0]], np.zeros((8, 8), np.uint8))


def test_empty_images_and_bool_masks_are_refused_with_a_clear_error(fuser: Fuser) -> None:
    grey = np.zeros((8, 8), np.uint8)
    for empty in (np.zeros((0, 0), np.uint8), np.zeros((8, 0), np.uint8), Image.new("L", (0, 0))):
        with pytest.raises(
            ValueError, match=r"ir: empty image \(shape \(\d+, \d+\)\); there are no pixels to fuse"
        ):
            fuser.fuse(empty, empty)
    with pytest.raises(ValueError, match="vi: empty image"):
        fuser.fuse(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 0, 8))
    with pytest.raises(ValueError, match="empty input"):
        fuser.fuse_luminance(torch.zeros(0, 1, 8, 8), torch.zeros(0, 1, 8, 8))
    with pytest.raises(TypeError, match="ir: a bool array is a mask, not an image"):
        fuser.fuse(np.ones((8, 8), bool), grey)
    with pytest.raises(TypeError, match="vi: a bool array is a mask"):
        fuser.fuse(grey, torch.ones(8, 8, dtype=torch.bool))
    assert fuser.fuse(grey, grey).shape == (8, 8)  # the checks refuse nothing valid


def test_tiled_fusion_reports_progress_per_tile(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[int, int]] = []
    a = torch.from_numpy(scene(100, 150))[None, None]
    fuse_tiled(lambda x, y: 0.5 * (x + y), a, a, tile=64, overlap=16, tiles_per_batch=2,
               progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    total = len(TileGrid.build(100, 150, 64, 16))
    assert calls[-1] == (total, total) and [done for done, _ in calls] == sorted({done for done, _ in calls})
    Fuser(tiny_net(), tile=64, tile_overlap=16, progress=True).fuse(scene(100, 150), scene(100, 150))
    err = capsys.readouterr().err
    assert "100×150 in 64-px tiles" in err and f"/{total} " in err  # the tqdm bar over the tiles


def test_from_checkpoint_loads_safely_and_refuses_other_presets(tiny_ckpt: Path) -> None:
    import stfuse

    fuser = stfuse.Fuser.from_checkpoint(tiny_ckpt)
    assert fuser.config["channels"] == 8
    with pytest.raises(CheckpointError, match="channels: checkpoint has 8"):
        Fuser.from_checkpoint(tiny_ckpt, expected_config={"preset": "small"})


def test_missing_default_weights_say_to_pass_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_ckpt: Path
) -> None:
    monkeypatch.setattr(fuser_module, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    with pytest.raises(NoDefaultWeightsError, match="no default weights are packaged.*--ckpt"):
        Fuser.from_checkpoint()
    monkeypatch.setattr(fuser_module, "DEFAULT_WEIGHTS", tiny_ckpt)
    assert Fuser.from_checkpoint().config["channels"] == 8


def test_bf16_autocast_stays_close_to_fp32_and_fp16_needs_a_gpu() -> None:
    ir = torch.from_numpy(scene(48, 64))[None, None]
    vi = torch.from_numpy(scene(48, 64, seed=2))[None, None]
    net = tiny_net()
    fp32 = Fuser(net).fuse_luminance(ir, vi)
    bf16 = Fuser(net, precision="bf16").fuse_luminance(ir, vi)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().max() < 0.03
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        Fuser(net, precision="fp16")


def test_cpu_threads_follow_physical_cores_less_one_per_loader() -> None:
    cores = physical_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    assert configure_cpu_threads(workers=0) == cores == torch.get_num_threads()
    assert configure_cpu_threads(workers=2) == max(1, cores - 1)
    assert configure_cpu_threads(workers=2, threads=3) == 3


# --------------------------------------------------------------------------------------------------- tiling
def test_tiles_cover_the_image_with_the_requested_overlap_and_unit_weights() -> None:
    for length, tile, overlap in ((1000, 256, 32), (257, 256, 16), (100, 256, 32), (999, 300, 100)):
        starts = tile_starts(length, tile, overlap)
        size = min(tile, length)
        assert starts[0] == 0 and starts[-1] + size == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    grid = TileGrid.build(700, 900, 256, 48)
    row_sum, col_sum = grid.normaliser()
    assert torch.allclose(row_sum, torch.ones_like(row_sum)) and torch.allclose(
        col_sum, torch.ones_like(col_sum)
    )


class LocalConv(nn.Module):
    """A purely local network (receptive field 7 px): tiling with a wider overlap must be exact."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(8, 1, 3, padding=1),
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(torch.cat([a, b], dim=1)))


def test_tiled_local_network_equals_the_single_pass() -> None:
    net = LocalConv().eval()
    a = torch.from_numpy(scene(150, 210))[None, None]
    b = torch.from_numpy(scene(150, 210, seed=4))[None, None]
    with torch.no_grad():
        whole = net(a, b)
        tiled = fuse_tiled(net, a, b, tile=64, overlap=24, tiles_per_batch=3)
    assert (tiled - whole).abs().max() < 1e-5


def test_tiled_stfuse_matches_untiled_without_seams_and_bounded_inputs() -> None:
    net = tiny_net(seed=3)
    seen: list[tuple[int, int]] = []
    net.register_forward_pre_hook(lambda module, inputs: seen.append(tuple(inputs[0].shape[-2:])))
    height, width, tile, overlap = 200, 264, 96, 32
    ir = torch.from_numpy(scene(height, width))[None, None]
    vi = torch.from_numpy(scene(height, width, seed=9))[None, None]
    whole = Fuser(net, tile=0).fuse_luminance(ir, vi)
    seen.clear()
    tiled = Fuser(net, tile=tile, tile_overlap=overlap).fuse_luminance(ir, vi)

    assert seen and max(h * w for h, w in seen) <= tile * tile  # never a full-size activation
    difference = (tiled - whole).abs()
    assert difference.max() < 0.02 and difference.mean() < 2e-3

    # Seams would show as extra gradient across tile borders; compare with the single pass there.
    grid = TileGrid.build(height, width, tile, overlap)
    borders = sorted({c for c in grid.cols[1:]} | {c + grid.tile_w - 1 for c in grid.cols[:-1]})
    grad_tiled = (tiled[..., 1:] - tiled[..., :-1]).abs()[0, 0]
    grad_whole = (whole[..., 1:] - whole[..., :-1]).abs()[0, 0]
    for column in borders:
        assert (grad_tiled[:, column - 1] - grad_whole[:, column - 1]).abs().mean() < 2e-3


def test_large_images_are_tiled_automatically_above_the_pixel_budget() -> None:
    net = tiny_net()
    seen: list[int] = []
    net.register_forward_pre_hook(
        lambda module, inputs: seen.append(inputs[0].shape[-2] * inputs[0].shape[-1])
    )
    fuser = Fuser(net, max_pixels=200 * 200)
    ir = torch.rand(1, 1, 300, 260)
    out = fuser.fuse_luminance(ir, ir)
    assert out.shape == ir.shape
    assert max(seen) <= 200 * 200 and len(seen) > 1


class OutOfMemoryAbove(nn.Module):
    """Stands in for a GPU network: fails like CUDA does when the input is larger than ``limit`` pixels."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[-2] * a.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return (0.5 * (a + b) * self.scale).clamp(0, 1)


def test_out_of_memory_falls_back_to_tiles() -> None:
    fuser = Fuser(OutOfMemoryAbove(limit=300 * 300), tile=0, tile_overlap=16)
    a, b = torch.rand(1, 1, 700, 500), torch.rand(1, 1, 700, 500)
    with pytest.warns(RuntimeWarning, match="out of memory"):
        out = fuser.fuse_luminance(a, b)
    assert torch.allclose(out, 0.5 * (a + b), atol=1e-5)


# ---------------------------------------------------------------------------------------------- stfuse fuse
def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = array[:, :, ::-1]
    assert cv2.imwrite(str(path), np.ascontiguousarray(array))


@pytest.fixture()
def pair_folders(tmp_path: Path) -> Path:
    """ir/ + vi/ with colour, grey and 16-bit pairs, one corrupt file, one size mismatch, one unpaired file."""
    root = tmp_path / "data"
    _write(root / "ir" / "a_colour.png", (scene(48, 64) * 255).astype(np.uint8))
    _write(root / "vi" / "a_colour.jpg", (colour_scene(48, 64) * 255).astype(np.uint8))
    _write(root / "ir" / "b_grey.png", (scene(48, 64, 2) * 255).astype(np.uint8))
    _write(root / "vi" / "b_grey.png", (scene(48, 64, 3) * 255).astype(np.uint8))
    _write(root / "ir" / "c_sixteen.png", (scene(40, 50, 4) * 65535).astype(np.uint16))
    _write(root / "vi" / "c_sixteen.tif", (scene(40, 50, 5) * 65535).astype(np.uint16))
    _write(root / "ir" / "d_corrupt.png", (scene(48, 64, 6) * 255).astype(np.uint8))
    (root / "vi" / "d_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    _write(root / "ir" / "e_mismatch.png", (scene(48, 64, 7) * 255).astype(np.uint8))
    _write(root / "vi" / "e_mismatch.png", (scene(50, 64, 8) * 255).astype(np.uint8))
    _write(root / "ir" / "f_lonely.png", (scene(48, 64, 9) * 255).astype(np.uint8))
    (root / "vi" / "notes.txt").write_text("not an image")
    return root


def test_fuse_cli_fuses_good_pairs_reports_bad_ones_and_exits_nonzero(
    pair_folders: Path, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fused"
    code = fuse_main(
        [
            "--ckpt",
            str(tiny_ckpt),
            "--ir",
            str(pair_folders / "ir"),
            "--vi",
            str(pair_folders / "vi"),
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--workers",
            "0",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_colour.png", "b_grey.png", "c_sixteen.png"]
    assert "3 fused, 0 skipped, 3 failed" in err
    assert (
        "d_corrupt:" in err
        and "e_mismatch: size mismatch" in err
        and "f_lonely:" in err
        and "no visible partner" in err
    )

    colour = cv2.imread(str(out / "a_colour.png"), cv2.IMREAD_UNCHANGED)
    assert colour.shape == (48, 64, 3) and colour.dtype == np.uint8
    assert not np.array_equal(colour[:, :, 0], colour[:, :, 1])
    assert cv2.imread(str(out / "b_grey.png"), cv2.IMREAD_UNCHANGED).shape == (48, 64)
    sixteen = cv2.imread(str(out / "c_sixteen.png"), cv2.IMREAD_UNCHANGED)
    assert sixteen.dtype == np.uint16 and sixteen.shape == (40, 50)

    # The CLI and the API agree on the colour pair.
    api = Fuser.from_checkpoint(tiny_ckpt).fuse(
        read_image(pair_folders / "ir" / "a_colour.png"), read_image(pair_folders / "vi" / "a_colour.jpg")
    )
    written = read_image(out / "a_colour.png")
    assert (api - written).abs().max() <= 1.5 / 255


def test_fuse_cli_resumes_with_skip_existing_and_honours_format_and_gray(
    pair_folders: Path, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ir, vi = pair_folders / "ir", pair_folders / "vi"
    for name in ("d_corrupt", "e_mismatch", "f_lonely"):
        (ir / f"{name}.png").unlink()
    (vi / "d_corrupt.png").unlink()
    (vi / "e_mismatch.png").unlink()
    out = tmp_path / "fused"
    args = [
        "--ckpt",
        str(tiny_ckpt),
        "--ir",
        str(ir),
        "--vi",
        str(vi),
        "--out",
        str(out),
        "--quiet",
        "--format",
        "tif",
        "--gray",
        "--workers",
        "1",
    ]
    assert fuse_main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_colour.tif", "b_grey.tif", "c_sixteen.tif"]
    assert cv2.imread(str(out / "a_colour.tif"), cv2.IMREAD_UNCHANGED).ndim == 2  # --gray
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "b_grey.tif").unlink()
    capsys.readouterr()
    assert fuse_main(args + ["--skip-existing"]) == 0
    assert "1 fused, 2 skipped, 0 failed" in capsys.readouterr().err
    assert (out / "a_colour.tif").stat().st_mtime_ns == first["a_colour.tif"]
    assert (out / "b_grey.tif").exists()


def test_fuse_cli_refuses_to_write_into_an_input_folder(
    pair_folders: Path, tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in (pair_folders / "vi").iterdir())
    for out in (pair_folders / "vi", pair_folders / "ir" / ".." / "vi"):
        code = fuse_main(
            [
                "--ckpt",
                str(tiny_ckpt),
                "--ir",
                str(pair_folders / "ir"),
                "--vi",
                str(pair_folders / "vi"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        assert code == 2
        assert "is the input folder" in capsys.readouterr().err
    assert sorted(p.name for p in (pair_folders / "vi").iterdir()) == before


def test_fuse_cli_without_ckpt_and_without_packaged_weights_explains(
    pair_folders: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fuser_module, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    code = fuse_main(
        [
            "--ir",
            str(pair_folders / "ir"),
            "--vi",
            str(pair_folders / "vi"),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "no default weights are packaged" in capsys.readouterr().err


def test_fuse_cli_single_pair_to_a_file_name(pair_folders: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "one" / "fused.jpg"  # 16-bit inputs, an 8-bit format named by the file: 8-bit output
    code = fuse_main(
        [
            "--ckpt",
            str(tiny_ckpt),
            "--ir",
            str(pair_folders / "ir" / "c_sixteen.png"),
            "--vi",
            str(pair_folders / "vi" / "c_sixteen.tif"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    assert [p.name for p in out.parent.iterdir()] == ["fused.jpg"]  # atomic write leaves no temp file


def test_pairs_are_matched_by_stem_and_batches_group_sizes(pair_folders: Path) -> None:
    pairs, problems = collect_pairs(pair_folders / "ir", pair_folders / "vi")
    assert [name for name, _, _ in pairs] == ["a_colour", "b_grey", "c_sixteen", "d_corrupt", "e_mismatch"]
    assert [name for name, _ in problems] == ["f_lonely"]
    sampler = SizeGroupedBatchSampler([(48, 64), (40, 50), (48, 64), (48, 64), (40, 50)], batch_size=2)
    batches = list(sampler)
    assert sorted(sorted(b) for b in batches) == [[0, 2], [1, 4], [3]]


@pytest.mark.data
def test_fuse_root_is_the_data_root_as_in_evaluate_and_a_data_set_folder_still_works(
    data_root: Path, tmp_path: Path
) -> None:
    for root in (data_root, data_root / "ivif" / "tno"):
        out = tmp_path / root.name
        assert fuse_main(["--baseline", "average", "--dataset", "tno", "--root", str(root), "--out", str(out),
                          "--quiet", "--workers", "0"]) == 0  # fmt: skip
        assert len(list(out.glob("*.png"))) == 25


@pytest.mark.data
def test_fuse_cli_on_real_m3fd_and_tno_pairs(data_root: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "m3fd"
    assert (
        fuse_main(
            [
                "--ckpt",
                str(tiny_ckpt),
                "--dataset",
                "m3fd",
                "--root",
                str(data_root / "ivif" / "m3fd"),
                "--out",
                str(out),
                "--quiet",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    fused = read_image(out / "M3FD_00471.png")
    assert fused.shape == (3, 768, 1024)  # colour visible → colour output
    tno_vi = data_root / "ivif" / "tno" / "vi" / "01.png"
    tno_ir = data_root / "ivif" / "tno" / "ir" / "01.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grey = Fuser.from_checkpoint(tiny_ckpt).fuse(
            np.asarray(Image.open(tno_ir)), np.asarray(Image.open(tno_vi))
        )
    assert grey.shape == (576, 768, 3)  # stored as RGB: given back as RGB, with identical channels
    assert np.abs(grey[:, :, 0].astype(int) - grey[:, :, 2].astype(int)).max() <= 1


def test_baseline_option_uses_stfuse_baselines_when_available(
    pair_folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baselines = pytest.importorskip("stfuse.baselines")
    if not hasattr(baselines, "fuse_baseline"):
        pytest.skip("stfuse.baselines.fuse_baseline is not available yet")
    out = tmp_path / "baseline"
    code = fuse_main(
        [
            "--baseline",
            "average",
            "--ir",
            str(pair_folders / "ir" / "b_grey.png"),
            "--vi",
            str(pair_folders / "vi" / "b_grey.png"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    fused = read_image(out / "b_grey.png")
    ir, vi = read_image(pair_folders / "ir" / "b_grey.png"), read_image(pair_folders / "vi" / "b_grey.png")
    assert (fused - 0.5 * (ir + vi)).abs().max() < 2 / 255
    assert (
        fuse_main(
            [
                "--baseline",
                "no-such-rule",
                "--ir",
                str(pair_folders / "ir"),
                "--vi",
                str(pair_folders / "vi"),
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "no-such-rule" in capsys.readouterr().err
