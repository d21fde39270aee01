"""PairedImageFolder: pairing by stem, item format, size policies, extras and every bad-input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_modules.errors import (
    DataFolderNotFoundError,
    DuplicateStemError,
    EmptyFolderError,
    SizeMismatchError,
    UnpairedFilesError,
)
from data_modules.fake_data import write_fake_pairs
from data_modules.io import ImageReadError, rgb_to_y_cbcr, write_image
from data_modules.paired import PairedImageFolder, collate_pairs


def _folders(tmp_path: Path, names: list[str], **kwargs) -> tuple[Path, Path]:
    write_fake_pairs(tmp_path / "ir", tmp_path / "vi", names, **kwargs)
    return tmp_path / "ir", tmp_path / "vi"


def test_pairs_by_stem_across_extensions_and_ignores_other_files(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01", "02"], vi_ext=".jpg")
    (ir_dir / "readme.txt").write_text("not an image")
    (vi_dir / ".DS_Store").write_bytes(b"\x00")
    (vi_dir / "Thumbs.db").write_bytes(b"\x00")
    dataset = PairedImageFolder(ir_dir, vi_dir)
    assert dataset.names == ["01", "02"]
    assert dataset.records[0].vi_path.suffix == ".jpg"


def test_item_format_for_colour_visible(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["a"], size=(20, 28))
    item = PairedImageFolder(ir_dir, vi_dir)[0]
    assert set(item) == {"ir", "vi", "vi_cbcr", "vi_is_color", "name"}
    assert (
        item["ir"].shape == (1, 20, 28)
        and item["vi"].shape == (1, 20, 28)
        and item["vi_cbcr"].shape == (2, 20, 28)
    )
    assert item["vi_is_color"] is True and item["name"] == "a"
    for key in ("ir", "vi", "vi_cbcr"):
        assert item[key].dtype == torch.float32 and 0.0 <= item[key].min() and item[key].max() <= 1.0
    from data_modules.io import read_image

    y, cbcr = rgb_to_y_cbcr(read_image(vi_dir / "a.png"))
    assert torch.allclose(item["vi"], y) and torch.allclose(item["vi_cbcr"], cbcr)
    assert item["vi_cbcr"].std() > 0  # real chroma, not the neutral fill


def test_grey_visible_stored_as_rgb_gets_neutral_chroma(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["a"], vi_color=False, ir_as_rgb=True)
    item = PairedImageFolder(ir_dir, vi_dir)[0]
    assert item["vi_is_color"] is False
    assert torch.all(item["vi_cbcr"] == 0.5)
    assert item["ir"].shape[0] == 1


def test_missing_partners_are_all_listed(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01", "02", "03", "04"])
    for stem in ("02", "04"):
        (vi_dir / f"{stem}.png").unlink()
    write_fake_pairs(tmp_path / "spare", vi_dir, ["77"])  # a visible image with no infrared partner
    with pytest.raises(UnpairedFilesError) as info:
        PairedImageFolder(ir_dir, vi_dir)
    message = str(info.value)
    assert "02, 04" in message and "77" in message
    assert str(ir_dir) in message and str(vi_dir) in message
    assert info.value.unpaired == {str(ir_dir): ["02", "04"], str(vi_dir): ["77"]}


def test_size_mismatch_is_an_error_naming_both_files(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01", "02"], size=(20, 24))
    write_fake_pairs(tmp_path / "other", tmp_path / "big", ["02"], size=(30, 40))
    (vi_dir / "02.png").write_bytes((tmp_path / "big" / "02.png").read_bytes())
    with pytest.raises(SizeMismatchError) as info:
        PairedImageFolder(ir_dir, vi_dir)
    message = str(info.value)
    assert f"{ir_dir / '02.png'}' is 20×24" in message and f"{vi_dir / '02.png'}' is 30×40" in message
    assert "01" not in message.replace(str(tmp_path), "")


def test_size_policies_resize_to_infrared_or_crop_to_common_centre(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01"], size=(20, 24))
    write_image(vi_dir / "01.png", np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1)))
    resized = PairedImageFolder(ir_dir, vi_dir, size_policy="resize")[0]
    assert resized["ir"].shape == resized["vi"].shape == (1, 20, 24)
    cropped = PairedImageFolder(ir_dir, vi_dir, size_policy="center_crop")[0]
    assert cropped["ir"].shape == cropped["vi"].shape == (1, 20, 24)
    # the centre 24 of 40 columns of the ramp: columns 8..31
    assert cropped["vi"][0, 0, 0] == pytest.approx(round(8 / 39 * 255) / 255, abs=1e-6)
    with pytest.raises(ValueError, match="size_policy"):
        PairedImageFolder(ir_dir, vi_dir, size_policy="stretch")


def test_corrupt_file_is_reported_at_construction(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01", "02"])
    (vi_dir / "02.png").write_bytes(b"garbage, not a PNG")
    with pytest.raises(ImageReadError, match=r"vi/02\.png"):
        PairedImageFolder(ir_dir, vi_dir)


def test_truncated_file_is_reported_when_loaded(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01"], size=(40, 40))
    data = (ir_dir / "01.png").read_bytes()
    (ir_dir / "01.png").write_bytes(data[: len(data) // 2])
    dataset = PairedImageFolder(ir_dir, vi_dir, check_sizes=False)
    with pytest.raises(ImageReadError, match=r"ir/01\.png"):
        dataset[0]


def test_empty_folder_and_missing_root_errors_name_the_folder(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(EmptyFolderError, match=f"visible folder '{empty}' contains no images"):
        PairedImageFolder(ir_dir, empty)
    with pytest.raises(
        DataFolderNotFoundError, match=f"infrared folder '{tmp_path / 'nope'}' does not exist"
    ):
        PairedImageFolder(tmp_path / "nope", vi_dir)
    assert issubclass(DataFolderNotFoundError, FileNotFoundError)


def test_two_files_with_one_stem_are_ambiguous(tmp_path: Path) -> None:
    ir_dir, vi_dir = _folders(tmp_path, ["01"])
    (ir_dir / "01.jpg").write_bytes((vi_dir / "01.png").read_bytes())
    with pytest.raises(DuplicateStemError, match=r"'01\.jpg' and '01\.png'"):
        PairedImageFolder(ir_dir, vi_dir)


def test_extra_folders_give_integer_maps_and_missing_ones_are_listed(tmp_path: Path) -> None:
    write_fake_pairs(
        tmp_path / "ir", tmp_path / "vi", ["01", "02"], size=(18, 9), label_dir=tmp_path / "label"
    )
    dataset = PairedImageFolder(tmp_path / "ir", tmp_path / "vi", extra_dirs={"label": tmp_path / "label"})
    item = dataset[1]
    assert item["label"].dtype == torch.int64 and item["label"].shape == (18, 9)
    assert item["label"][:, 0].tolist() == [row % 9 for row in range(18)]
    (tmp_path / "label" / "02.png").unlink()
    with pytest.raises(UnpairedFilesError, match=r"label' lacks \(1\): 02"):
        PairedImageFolder(tmp_path / "ir", tmp_path / "vi", extra_dirs={"label": tmp_path / "label"})


def test_collate_pads_different_sizes_and_records_them(tmp_path: Path) -> None:
    write_fake_pairs(tmp_path / "ir", tmp_path / "vi", ["a"], size=(16, 20))
    write_fake_pairs(tmp_path / "ir", tmp_path / "vi", ["b"], size=(24, 18))
    dataset = PairedImageFolder(tmp_path / "ir", tmp_path / "vi")
    batch = collate_pairs([dataset[0], dataset[1]])
    assert batch["ir"].shape == (2, 1, 24, 20) and batch["vi_cbcr"].shape == (2, 2, 24, 20)
    assert batch["size"].tolist() == [[16, 20], [24, 18]]
    assert batch["name"] == ["a", "b"] and batch["vi_is_color"].tolist() == [True, True]
    assert torch.equal(batch["ir"][0, :, :16, :20], dataset[0]["ir"])
    assert torch.equal(
        batch["ir"][0, :, 16:, :20], dataset[0]["ir"][:, -1:, :].expand(-1, 8, -1)
    )  # edge replicated
    same = collate_pairs([dataset[0], dataset[0]])
    assert same["ir"].shape == (2, 1, 16, 20)
