"""STFuse data layer: image I/O, paired folders, data-set layouts, data modules and embedded default data.

Names are imported lazily, so ``import data_modules`` stays cheap (no albumentations or Lightning until a
data module is used). See docs/data.md for layouts, batch formats and conventions.
"""

from __future__ import annotations

from stfuse.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # io
    "IMAGE_EXTENSIONS": "data_modules.formats",
    "ImageReadError": "data_modules.io",
    "ImageWriteError": "data_modules.io",
    "ProtectedPathError": "data_modules.io",
    "is_image_file": "data_modules.stems",
    "list_images": "data_modules.stems",
    "read_image": "data_modules.io",
    "read_image_array": "data_modules.io",
    "read_image_size": "data_modules.io",
    "read_luma": "data_modules.io",
    "read_raw_array": "data_modules.io",
    "write_image": "data_modules.io",
    "rgb_to_y_cbcr": "data_modules.io",
    "merge_y_cbcr": "data_modules.io",
    "split_visible": "data_modules.io",
    # paired folders and errors
    "PairedImageFolder": "data_modules.paired",
    "collate_pairs": "data_modules.paired",
    "DatasetError": "data_modules.errors",
    "DataFolderNotFoundError": "data_modules.errors",
    "EmptyFolderError": "data_modules.errors",
    "UnpairedFilesError": "data_modules.errors",
    "DuplicateStemError": "data_modules.errors",
    "SizeMismatchError": "data_modules.errors",
    # layouts
    "Layout": "data_modules.layouts",
    "LAYOUT_NAMES": "data_modules.layouts",
    "UnknownLayoutError": "data_modules.layouts",
    "detect_layout": "data_modules.layouts",
    "open_dataset": "data_modules.layouts",
    # augmentation and seeding
    "PairedAugmentation": "data_modules.transforms",
    "WorkerSeeder": "data_modules.transforms",
    # data modules
    "IVIFDataModule": "data_modules.ivif",
    "MFIFDataModule": "data_modules.mfif",
    "MultiFocusSynthesizer": "data_modules.focus",
    "SyntheticMultiFocusDataset": "data_modules.mfif_datasets",
    "MultiFocusPairFolder": "data_modules.mfif_datasets",
    "TransferDataModule": "data_modules.transfer",
    # embedded default data
    "make_ivif_pair": "data_modules.synthetic_scenes",
    "make_ivif_scene": "data_modules.synthetic_scenes",
    "SyntheticIVIFDataset": "data_modules.synthetic_scenes",
    "make_texture_image": "data_modules.synthetic_textures",
    "TextureDataset": "data_modules.synthetic_textures",
    "write_embedded_default": "data_modules.synthetic_scenes",
    # tiny data sets in the real on-disk layouts, for tests
    "write_fake_layout": "data_modules.fake_data",
    "write_fake_multifocus": "data_modules.fake_data",
    "write_fake_natural_images": "data_modules.fake_data",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
