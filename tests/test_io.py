"""Image I/O: formats, bit depths, channel layouts, YCbCr, the atomic writer and read errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from data_modules.formats import (
    EIGHT_BIT_EXTENSIONS,
    IMAGE_EXTENSIONS,
    OUTPUT_EXTENSIONS,
    SIXTEEN_BIT_FORMATS,
    SUFFIX_FORMATS,
)
from data_modules.io import (
    ImageReadError,
    ImageWriteError,
    ProtectedPathError,
    merge_y_cbcr,
    read_image,
    read_image_size,
    read_luma,
    rgb_to_y_cbcr,
    split_visible,
    split_visible_array,
    write_image,
)
from data_modules.levels import MAX_LEVELS, quantise
from data_modules.stems import list_images

FORMATS = list(OUTPUT_EXTENSIONS.values())
LOSSLESS = {".png", ".bmp", ".tif"}
SIXTEEN_BIT = {OUTPUT_EXTENSIONS[name] for name in SIXTEEN_BIT_FORMATS}
KINDS = ["grey", "rgb", "rgba", "grey_as_rgb"]


def _pattern(kind: str, bit_depth: int, height: int = 20, width: int = 24) -> np.ndarray:
    """Smooth content (so JPEG keeps it close) covering most of the value range."""
    top = 255 if bit_depth == 8 else 65535
    yy, xx = np.mgrid[0:height, 0:width]
    base = (0.1 + 0.8 * (xx / (width - 1) * 0.6 + yy / (height - 1) * 0.4)) * top
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    grey = np.rint(base).astype(dtype)
    if kind == "grey":
        return grey
    if kind == "grey_as_rgb":
        return np.stack([grey] * 3, axis=2)
    rgb = np.stack(
        [grey, np.rint(base[::-1] * 0.9).astype(dtype), np.rint(top - base * 0.8).astype(dtype)], axis=2
    )
    if kind == "rgb":
        return rgb
    alpha = np.full((height, width, 1), top // 2, dtype=dtype)
    return np.concatenate([rgb, alpha], axis=2)


# JPEG and BMP hold 8 bits only; asking for 16 is refused (test_writer_rejects_bad_requests_with_the_path).
FORMAT_DEPTHS = [(ext, depth) for ext in FORMATS for depth in (8, 16) if depth == 8 or ext in SIXTEEN_BIT]


@pytest.mark.parametrize(("ext", "bit_depth"), FORMAT_DEPTHS)
@pytest.mark.parametrize("kind", KINDS)
def test_write_then_read_round_trips_values(tmp_path: Path, ext: str, bit_depth: int, kind: str) -> None:
    stored = _pattern(kind, bit_depth)
    path = write_image(tmp_path / f"image{ext}", stored, bit_depth=bit_depth)
    image = read_image(path)

    expected_channels = 1 if kind in ("grey", "grey_as_rgb") else 3
    assert image.dtype == torch.float32
    assert tuple(image.shape) == (expected_channels, 20, 24)
    scale = 255.0 if bit_depth == 8 else 65535.0
    colour = (
        stored
        if stored.ndim == 2
        else stored[:, :, :expected_channels]
        if expected_channels == 3
        else stored[:, :, 0]
    )
    expected = torch.from_numpy(np.atleast_3d(colour).astype(np.float64) / scale).permute(2, 0, 1).float()
    error = (image - expected).abs()
    if ext in LOSSLESS:
        assert error.max() < 1e-6
    else:  # JPEG: lossy, with subsampled chroma
        assert error.mean() < 2.0 / 255 and error.max() < 12.0 / 255, (
            float(error.mean()),
            float(error.max()),
        )


def test_sixteen_bit_uses_the_full_storage_range(tmp_path: Path) -> None:
    stored = np.array([[0, 1, 32768, 65535]], dtype=np.uint16)
    image = read_image(write_image(tmp_path / "x.png", stored, bit_depth=16))
    assert image.flatten().tolist() == pytest.approx([0.0, 1 / 65535, 32768 / 65535, 1.0], abs=1e-7)


def test_float_tensor_written_as_sixteen_bit_keeps_precision(tmp_path: Path) -> None:
    tensor = torch.linspace(0, 1, 1000).reshape(1, 10, 100)
    back = read_image(write_image(tmp_path / "x.tif", tensor, bit_depth=16))
    assert (back - tensor).abs().max() < 1.0 / 65535
    back8 = read_image(write_image(tmp_path / "x8.png", tensor))
    assert (back8 - tensor).abs().max() <= 0.5 / 255 + 1e-6
    assert (back8 - tensor).abs().max() > 1.0 / 65535  # 8-bit output really is quantised


def test_files_from_other_writers_are_read_with_their_values(tmp_path: Path) -> None:
    grey16 = (np.arange(12 * 10, dtype=np.uint16) * 500).reshape(12, 10)
    Image.fromarray(grey16).save(tmp_path / "pil16.png")
    rgb16 = np.stack([grey16, grey16[::-1], 65535 - grey16], axis=2)
    tifffile.imwrite(tmp_path / "rgb16.tiff", rgb16, photometric="rgb")
    planar = np.ascontiguousarray(rgb16.transpose(2, 0, 1))
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    grey_alpha = np.stack([grey16.astype(np.uint8), np.full_like(grey16, 200, dtype=np.uint8)], axis=2)
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "la.png")
    palette = Image.fromarray((np.arange(120) % 4).reshape(12, 10).astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    palette.save(tmp_path / "palette.png")

    assert torch.allclose(
        read_image(tmp_path / "pil16.png")[0], torch.from_numpy(grey16 / 65535).float(), atol=1e-7
    )
    rgb = read_image(tmp_path / "rgb16.tiff")
    assert torch.allclose(rgb, torch.from_numpy(rgb16.transpose(2, 0, 1) / 65535).float(), atol=1e-7)
    assert torch.allclose(read_image(tmp_path / "planar.tif"), rgb, atol=1e-7)
    la = read_image(tmp_path / "la.png")
    assert la.shape == (1, 12, 10) and torch.allclose(
        la[0], torch.from_numpy(grey_alpha[:, :, 0] / 255).float()
    )
    indexed = read_image(tmp_path / "palette.png")
    assert indexed.shape == (3, 12, 10)
    assert indexed[:, 0, 1].tolist() == [1.0, 0.0, 0.0]  # palette index 1 is red


def test_float_tiff_in_unit_range_is_read_and_out_of_range_refused(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    tifffile.imwrite(tmp_path / "unit.tif", values)
    assert torch.allclose(read_image(tmp_path / "unit.tif")[0], torch.from_numpy(values))
    tifffile.imwrite(tmp_path / "kelvin.tif", values * 300)
    with pytest.raises(ImageReadError, match=r"kelvin\.tif.*expected \[0, 1\]"):
        read_image(tmp_path / "kelvin.tif")


def test_read_luma_matches_kornia_y_within_rounding(tmp_path: Path) -> None:
    rgb = _pattern("rgb", 8)
    path = write_image(tmp_path / "c.png", rgb)
    y, _ = rgb_to_y_cbcr(read_image(path))
    luma = read_luma(path)
    assert luma.dtype == np.uint8 and luma.shape == (20, 24)
    assert np.abs(luma / 255.0 - y[0].numpy()).max() <= 1.0 / 255 + 1e-6


def test_header_size_matches_decoded_size(tmp_path: Path) -> None:
    path = write_image(tmp_path / "s.jpg", np.zeros((17, 33, 3), dtype=np.uint8))
    assert read_image_size(path) == (17, 33)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "corrupt"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "corrupt"),
    ],
)
def test_unreadable_files_raise_image_read_error_naming_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "broken_17.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert "broken_17.png" in str(info.value) and info.value.path == path
    with pytest.raises(ImageReadError, match="broken_17.png"):
        read_image_size(path)


def test_missing_file_raises_image_read_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"nowhere\.png.*does not exist"):
        read_image(tmp_path / "nowhere.png")


def test_ycbcr_split_and_merge_round_trip_colour() -> None:
    rgb = torch.rand(3, 16, 16) * 0.8 + 0.1
    y, cbcr = rgb_to_y_cbcr(rgb)
    assert y.shape == (1, 16, 16) and cbcr.shape == (2, 16, 16)
    expected_y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    assert torch.allclose(y[0], expected_y, atol=1e-6)
    assert torch.allclose(merge_y_cbcr(y, cbcr), rgb, atol=1e-4)
    batch_y, batch_cbcr = rgb_to_y_cbcr(rgb[None].repeat(2, 1, 1, 1))
    assert batch_y.shape == (2, 1, 16, 16) and batch_cbcr.shape == (2, 2, 16, 16)


def test_numpy_ycbcr_split_agrees_with_kornia() -> None:
    rgb = np.random.default_rng(3).random((16, 20, 3), dtype=np.float32)
    y, cbcr, is_color = split_visible_array(rgb)
    kornia_y, kornia_cbcr = rgb_to_y_cbcr(torch.from_numpy(rgb.transpose(2, 0, 1).copy()))
    assert is_color and y.dtype == cbcr.dtype == np.float32
    assert np.allclose(y[:, :, 0], kornia_y[0].numpy(), atol=1e-6)
    assert np.allclose(cbcr.transpose(2, 0, 1), kornia_cbcr.numpy(), atol=1e-6)
    grey = rgb[:, :, :1]
    y, cbcr, is_color = split_visible_array(grey)
    assert not is_color and y is grey and np.all(cbcr == 0.5)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_quantise_rounds_half_to_even_clips_and_zeroes_nan_for_arrays_and_tensors(bit_depth: int) -> None:
    top = MAX_LEVELS[bit_depth]
    values = np.array([-0.5, 0.0, 0.5 / top, 1.5 / top, 0.25, 1.0, 2.0, np.nan], dtype=np.float32)
    expected = np.array([0, 0, 0, 2, round(0.25 * top), top, top, 0])
    levels = quantise(values, bit_depth)
    assert levels.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    assert levels.tolist() == expected.tolist()
    tensor_levels = quantise(torch.from_numpy(values), bit_depth)
    assert tensor_levels.dtype == (torch.uint8 if bit_depth == 8 else torch.uint16)
    assert tensor_levels.numpy().tolist() == expected.tolist()
    noise = np.random.default_rng(bit_depth).random(4096, dtype=np.float32)
    assert np.array_equal(quantise(noise, bit_depth), quantise(torch.from_numpy(noise), bit_depth).numpy())
    with pytest.raises(ValueError, match="bit depth"):
        quantise(values, 12)


def test_the_format_table_gives_every_extension_list() -> None:
    assert IMAGE_EXTENSIONS == {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    assert SUFFIX_FORMATS[".jpeg"] == "jpg" and SUFFIX_FORMATS[".tiff"] == "tif"
    assert EIGHT_BIT_EXTENSIONS == {".jpg", ".jpeg", ".bmp"}
    assert all(OUTPUT_EXTENSIONS[SUFFIX_FORMATS[ext]] in IMAGE_EXTENSIONS for ext in IMAGE_EXTENSIONS)


def test_grey_visible_gets_neutral_chroma_and_merges_to_grey() -> None:
    grey = torch.rand(1, 8, 8)
    y, cbcr, is_color = split_visible(grey)
    assert not is_color and torch.equal(y, grey)
    assert torch.all(cbcr == 0.5)
    merged = merge_y_cbcr(y, cbcr)
    assert torch.allclose(merged, grey.expand(3, -1, -1), atol=1e-6)
    _, _, colour_flag = split_visible(torch.rand(3, 8, 8))
    assert colour_flag
    with pytest.raises(ValueError, match="1 or 3 channels"):
        split_visible(torch.rand(2, 8, 8))


def test_writer_refuses_protected_paths_including_links(tmp_path: Path) -> None:
    source = write_image(tmp_path / "ir.png", np.full((4, 4), 7, dtype=np.uint8))
    before = source.read_bytes()
    with pytest.raises(ProtectedPathError, match=r"ir\.png"):
        write_image(tmp_path / "ir.png", np.zeros((4, 4), dtype=np.uint8), protected=[source])
    with pytest.raises(ProtectedPathError):
        write_image(
            tmp_path / "sub" / ".." / "ir.png", np.zeros((4, 4), dtype=np.uint8), protected=[str(source)]
        )
    link = tmp_path / "link.png"
    os.symlink(source, link)
    with pytest.raises(ProtectedPathError):
        write_image(link, np.zeros((4, 4), dtype=np.uint8), protected=[source])
    hard = tmp_path / "hard.png"
    os.link(source, hard)
    with pytest.raises(ProtectedPathError):
        write_image(hard, np.zeros((4, 4), dtype=np.uint8), protected=[source])
    assert source.read_bytes() == before


def test_writer_replaces_atomically_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    write_image(target, np.zeros((4, 4), dtype=np.uint8))
    write_image(target, np.full((4, 4), 255, dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert read_image(target).min() == 1.0


def test_writer_rejects_bad_requests_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match=r"x\.jpg.*8 bits only"):
        write_image(tmp_path / "x.jpg", np.zeros((4, 4)), bit_depth=16)
    with pytest.raises(ImageWriteError, match="extension"):
        write_image(tmp_path / "x.gif", np.zeros((4, 4)))
    with pytest.raises(ImageWriteError, match="bit_depth"):
        write_image(tmp_path / "x.png", np.zeros((4, 4)), bit_depth=12)
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_image(tmp_path / "missing" / "x.png", np.zeros((4, 4)))
    with pytest.raises(ImageWriteError, match="C×H×W"):
        write_image(tmp_path / "x.png", torch.zeros(2, 4, 4))


def test_list_images_ignores_other_files(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "notes.txt", ".hidden.png", "Thumbs.db", "c.tiff"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.tiff"]
