"""STFuse data layer: image I/O, paired folders, data-set layouts, data modules and embedded default data.

Names are imported lazily, so ``import data_modules`` stays cheap (no albumentations or Lightning until a
data module is used). See docs/data.md for layouts, batch formats and conventions.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # io
    "IMAGE_EXTENSIONS": "io",
    "ImageReadError": "io",
    "ImageWriteError": "io",
    "ProtectedPathError": "io",
    "is_image_file": "io",
    "list_images": "io",
    "read_image": "io",
    "read_image_array": "io",
    "read_image_size": "io",
    "read_luma": "io",
    "read_raw_array": "io",
    "write_image": "io",
    "rgb_to_y_cbcr": "io",
    "merge_y_cbcr": "io",
    "split_visible": "io",
    # paired folders and errors
    "PairedImageFolder": "paired",
    "collate_pairs": "paired",
    "DatasetError": "paired",
    "DataFolderNotFoundError": "paired",
    "EmptyFolderError": "paired",
    "UnpairedFilesError": "paired",
    "DuplicateStemError": "paired",
    "SizeMismatchError": "paired",
    # layouts
    "Layout": "layouts",
    "LAYOUT_NAMES": "layouts",
    "UnknownLayoutError": "layouts",
    "detect_layout": "layouts",
    "open_dataset": "layouts",
    # augmentation and seeding
    "PairedAugmentation": "transforms",
    "WorkerSeeder": "transforms",
    # data modules
    "IVIFDataModule": "ivif",
    "MFIFDataModule": "mfif",
    "MultiFocusSynthesizer": "focus",
    "SyntheticMultiFocusDataset": "mfif_datasets",
    "MultiFocusPairFolder": "mfif_datasets",
    "TransferDataModule": "transfer",
    # embedded default data
    "make_ivif_pair": "synthetic",
    "make_ivif_scene": "synthetic",
    "SyntheticIVIFDataset": "synthetic",
    "make_texture_image": "synthetic",
    "TextureDataset": "synthetic",
    "write_embedded_default": "synthetic",
    # tiny data sets in the real on-disk layouts, for tests
    "write_fake_layout": "fake_data",
    "write_fake_multifocus": "fake_data",
    "write_fake_natural_images": "fake_data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'data_modules' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"data_modules.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
