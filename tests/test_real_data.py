"""Every real image under the data root loads, with the expected counts, shapes, channels and ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_modules.io import read_luma
from data_modules.layouts import detect_layout, open_dataset
from data_modules.mfif import MultiFocusPairFolder, find_natural_images

pytestmark = pytest.mark.data


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Per-sample work is tiny; on a loaded 2-core machine torch's thread pool only adds contention
    (as in DataLoader workers, which WorkerSeeder also sets to one thread)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# root (relative to the data root), expected layout name, pairs, whether every visible image is colour
IVIF_SETS = [
    ("ivif/tno", "tno", 25, False),
    ("ivif/roadscene", "roadscene", 50, True),
    ("ivif/msrs", "msrs", 20, True),
    ("ivif/m3fd", "m3fd", 1, True),
    ("train/ivif/roadscene", "roadscene", 171, True),
    ("train/ivif/msrs", "msrs", 12, True),
]


def _check_unit_range(tensor: torch.Tensor) -> None:
    assert tensor.dtype == torch.float32
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0


@pytest.mark.parametrize(("relative", "name", "count", "colour"), IVIF_SETS)
def test_every_ivif_pair_loads(data_root: Path, relative: str, name: str, count: int, colour: bool) -> None:
    root = data_root / relative
    assert detect_layout(root).name == name
    dataset = open_dataset(root)
    assert len(dataset) == count
    for index in range(len(dataset)):
        item = dataset[index]
        height, width = item["ir"].shape[-2:]
        assert item["ir"].shape == (1, height, width) and item["vi"].shape == (1, height, width)
        assert item["vi_cbcr"].shape == (2, height, width) and min(height, width) >= 128
        for key in ("ir", "vi", "vi_cbcr"):
            _check_unit_range(item[key])
        assert item["vi_is_color"] is colour, item["name"]
        assert float(item["ir"].std()) > 0.01 and float(item["vi"].std()) > 0.01  # real content, not blank


def test_tno_and_m3fd_infrared_stored_as_rgb_is_read_as_grey(data_root: Path) -> None:
    tno = open_dataset(data_root / "ivif/tno")
    assert tno[0]["ir"].shape == (1, 576, 768) and torch.all(tno[0]["vi_cbcr"] == 0.5)
    m3fd = open_dataset(data_root / "ivif/m3fd")[0]
    assert m3fd["ir"].shape == (1, 768, 1024) and m3fd["name"] == "M3FD_00471"


def test_msrs_training_masks_cover_eight_of_twelve_pairs(data_root: Path) -> None:
    layout = detect_layout(data_root / "train/ivif/msrs")
    assert set(layout.extra_dirs) == {"mask"}
    masks = sorted(p.stem for p in layout.extra_dirs["mask"].iterdir())
    assert len(masks) == 8
    from data_modules.paired import PairedImageFolder

    subset = PairedImageFolder(layout.ir_dir, layout.vi_dir, extra_dirs=layout.extra_dirs, names=masks)
    mask = subset[0]["mask"]
    assert mask.shape == (480, 640) and set(torch.unique(mask).tolist()) <= {0, 255}


def test_every_lytro_pair_loads(data_root: Path) -> None:
    dataset = MultiFocusPairFolder(data_root / "mfif/lytro")
    assert len(dataset) == 20
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["a"].shape == item["b"].shape == (1, 520, 520)
        _check_unit_range(item["a"])
        _check_unit_range(item["b"])
        assert not torch.equal(item["a"], item["b"])


def test_every_natural_image_loads(data_root: Path) -> None:
    paths = find_natural_images([data_root / "train/natural"])
    assert len(paths) == 420
    counts = {
        folder: sum(1 for p in paths if p.parent.name == folder)
        for folder in ("bsd100", "bsd200", "kodak", "set14", "set5", "sun_hays80")
    }
    assert counts == {"bsd100": 100, "bsd200": 200, "kodak": 24, "set14": 13, "set5": 3, "sun_hays80": 80}
    for path in paths:
        luma = read_luma(path)
        assert luma.dtype == np.uint8 and luma.ndim == 2 and min(luma.shape) >= 250, path
        assert luma.std() > 5, path
