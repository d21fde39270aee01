"""Layout detection: every official layout generated on disk and detected; every layout error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_modules.errors import DataFolderNotFoundError, DatasetError
from data_modules.fake_data import write_fake_layout, write_fake_pairs
from data_modules.layouts import (
    LAYOUT_NAMES,
    LAYOUTS,
    UnknownLayoutError,
    accepted_layouts_text,
    detect_layout,
    open_dataset,
)

# (fake layout, split, expected name, infrared folder, visible folder) relative to the root
OFFICIAL = [
    ("tno", None, "tno", "IR", "VIS"),
    ("roadscene", None, "roadscene", "cropinfrared", "crop_LR_visible"),
    ("msrs", "train", "msrs", "train/ir", "train/vi"),
    ("msrs", "test", "msrs", "test/ir", "test/vi"),
    ("m3fd", None, "m3fd", "Ir", "Vis"),
    ("llvip", "train", "llvip", "infrared/train", "visible/train"),
    ("llvip", "test", "llvip", "infrared/test", "visible/test"),
    ("generic", None, "generic", "ir", "vi"),
]


@pytest.mark.parametrize(("fake", "split", "name", "ir", "vi"), OFFICIAL)
def test_official_layouts_are_detected_and_open(
    tmp_path: Path, fake: str, split: str | None, name: str, ir: str, vi: str
) -> None:
    root = write_fake_layout(tmp_path / "data", fake, n_pairs=2, size=(16, 20))
    layout = detect_layout(root, split=split)
    assert (layout.name, layout.ir_dir, layout.vi_dir, layout.split) == (name, root / ir, root / vi, split)
    explicit = detect_layout(root, split=split, name=name)
    assert explicit.ir_dir == layout.ir_dir
    dataset = open_dataset(root, split=split)
    assert len(dataset) == 2
    item = dataset[0]
    assert item["ir"].shape == (1, 16, 20) and item["vi"].shape == (1, 16, 20)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_every_registered_layout_is_written_detected_and_listed_in_the_help(
    tmp_path: Path, name: str
) -> None:
    from stfuse.inference.cli import build_fuse_parser

    spec = LAYOUTS[name]
    splits = [None] if spec.patterns[0].kind == "flat" else ["train", "test"]
    root = write_fake_layout(tmp_path / "data", name, n_pairs=2, size=(16, 20), labels=True)
    for split in splits:
        layout = detect_layout(root, split=split)
        assert (layout.name, layout.split) == (name, split)
        assert [p.stem for p in sorted(layout.ir_dir.iterdir())] == [spec.files.stem(i) for i in range(2)]
        assert ("label" in layout.extra_dirs) == (spec.files.labels is not None)
        assert len(open_dataset(root, name=name, split=split)) == 2
    assert f"  {name:<10} " in accepted_layouts_text()
    assert name in " ".join(build_fuse_parser().format_help().split())


@pytest.mark.parametrize("name", ["tno", "roadscene", "msrs", "m3fd"])
def test_plain_ir_vi_takes_its_name_from_the_root_folder(tmp_path: Path, name: str) -> None:
    root = tmp_path / {"tno": "TNO", "roadscene": "RoadScene", "msrs": "MSRS", "m3fd": "M3FD_Fusion"}[name]
    write_fake_pairs(root / "ir", root / "vi", ["1"], size=(8, 8))
    assert detect_layout(root).name == name
    assert detect_layout(root, name=name).ir_dir == root / "ir"


def test_tno_grey_stored_as_rgb_loads_as_grey(tmp_path: Path) -> None:
    root = write_fake_layout(tmp_path / "tno", "tno", n_pairs=1)
    item = open_dataset(root)[0]
    assert item["ir"].shape[0] == 1 and item["vi_is_color"] is False and torch.all(item["vi_cbcr"] == 0.5)


def test_msrs_label_folders_load_as_extras(tmp_path: Path) -> None:
    root = write_fake_layout(tmp_path / "MSRS", "msrs", n_pairs=2, size=(18, 12), labels=True)
    layout = detect_layout(root, split="train")
    assert layout.extra_dirs == {"label": root / "train" / "Segmentation_labels"}
    item = open_dataset(root, split="train", extras=True)[0]
    assert item["label"].shape == (18, 12) and int(item["label"].max()) == 8
    assert "label" not in open_dataset(root, split="train")[0]
    with pytest.raises(DatasetError, match="has no mask folder"):
        open_dataset(root, split="train", extras=["mask"])


def test_flat_layouts_ignore_the_split_argument(tmp_path: Path) -> None:
    root = write_fake_layout(tmp_path / "x", "generic", n_pairs=1)
    assert detect_layout(root, split="train").split is None


def test_split_layout_needs_an_existing_split(tmp_path: Path) -> None:
    root = write_fake_layout(tmp_path / "llvip", "llvip", n_pairs=1)
    with pytest.raises(DatasetError, match="has the splits test, train; choose one"):
        detect_layout(root)
    with pytest.raises(DatasetError, match="no split 'val'; available: test, train"):
        detect_layout(root, split="val")
    single = write_fake_layout(tmp_path / "msrs_only_test", "msrs", n_pairs=1, splits=("test",))
    assert detect_layout(single).split == "test"


def test_unknown_layout_lists_what_was_found_and_what_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "mystery"
    write_fake_pairs(root / "thermal", root / "rgb", ["1"], size=(8, 8))
    (root / "readme.md").write_text("?")
    with pytest.raises(UnknownLayoutError) as info:
        detect_layout(root)
    message = str(info.value)
    assert "found subfolders [rgb, thermal] and 1 file(s)" in message
    for accepted in (
        "IR/ + VIS/",
        "cropinfrared/ + crop_LR_visible/",
        "{train,test}/ir/",
        "Ir/ + Vis/",
        "infrared/{train,test}/",
    ):
        assert accepted in message


def test_named_layout_that_does_not_match_says_what_it_expected(tmp_path: Path) -> None:
    root = write_fake_layout(tmp_path / "data", "generic", n_pairs=1)
    with pytest.raises(
        UnknownLayoutError, match=r"does not have the LLVIP layout \(expected infrared/\{train,test\}/"
    ):
        detect_layout(root, name="llvip")
    with pytest.raises(ValueError, match="unknown layout name 'kaist'"):
        detect_layout(root, name="kaist")


def test_missing_root_and_file_root_are_reported(tmp_path: Path) -> None:
    with pytest.raises(DataFolderNotFoundError, match="'.*absent' does not exist"):
        detect_layout(tmp_path / "absent")
    file_root = tmp_path / "file.txt"
    file_root.write_text("x")
    with pytest.raises(DataFolderNotFoundError, match="is not a folder"):
        open_dataset(file_root)
