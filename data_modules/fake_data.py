"""Tiny data sets in the real on-disk layouts, for tests (ours and the other parts').

Content comes from the synthetic scene generator, so images look like IR/VIS pairs; each layout mimics how
its data set stores files, as its entry in :data:`data_modules.layouts.LAYOUTS` describes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_modules.io import luma_array, write_image
from data_modules.layouts import LAYOUT_NAMES, LAYOUTS
from data_modules.synthetic import derive_seed
from data_modules.synthetic_scenes import make_ivif_arrays
from data_modules.synthetic_textures import make_texture_array

PathLike = str | os.PathLike


def write_fake_pairs(
    ir_dir: PathLike,
    vi_dir: PathLike,
    names: Sequence[str],
    size: tuple[int, int] = (24, 32),
    ir_ext: str = ".png",
    vi_ext: str = ".png",
    vi_color: bool = True,
    ir_as_rgb: bool = False,
    seed: int = 0,
    label_dir: PathLike | None = None,
) -> None:
    """Write one synthetic pair per name (and a label map with ids 0–8 when ``label_dir`` is given)."""
    height, width = size
    folders = [Path(ir_dir), Path(vi_dir)] + ([Path(label_dir)] if label_dir is not None else [])
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        ir, vi = make_ivif_arrays(derive_seed(seed, "test", index), max(16, height), max(16, width))
        ir, vi = ir[:height, :width], vi[:height, :width]
        ir_image = np.repeat(ir[:, :, None], 3, axis=2) if ir_as_rgb else ir
        if vi_color:
            vi_image = vi
        else:
            grey = luma_array(vi)
            vi_image = np.repeat(grey[:, :, None], 3, axis=2)  # grey stored as RGB, as TNO does
        write_image(Path(ir_dir) / f"{name}{ir_ext}", ir_image)
        write_image(Path(vi_dir) / f"{name}{vi_ext}", vi_image)
        if label_dir is not None:
            labels = (np.arange(height * width).reshape(height, width) // max(1, width) % 9).astype(np.uint8)
            write_image(Path(label_dir) / f"{name}.png", labels)


def write_fake_layout(
    root: PathLike,
    layout: str,
    n_pairs: int = 3,
    size: tuple[int, int] = (24, 32),
    splits: Sequence[str] = ("train", "test"),
    labels: bool = False,
    seed: int = 0,
) -> Path:
    """Write ``n_pairs`` pairs (per split, where the layout has splits) in the official layout of ``layout``.

    The folders are the layout's own (first) pattern in :data:`~data_modules.layouts.LAYOUTS` and the files
    follow its :class:`~data_modules.layouts.FileStyle` (for example TNO ``IR/``+``VIS/`` with grey stored
    as RGB, LLVIP ``{infrared,visible}/<split>`` as JPEG); ``labels`` adds the label maps of a layout that
    has a label folder (MSRS ``<split>/Segmentation_labels``). Returns ``root``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown fake layout {layout!r}; use one of {LAYOUT_NAMES}")
    root = Path(root)
    pattern, style = LAYOUTS[layout].patterns[0], LAYOUTS[layout].files
    names = [style.stem(index) for index in range(n_pairs)]
    if pattern.kind == "flat":
        folders = [(root / pattern.ir, root / pattern.vi, root)]
    elif pattern.kind == "split_first":
        folders = [(root / split / pattern.ir, root / split / pattern.vi, root / split) for split in splits]
    else:
        folders = [(root / pattern.ir / split, root / pattern.vi / split, None) for split in splits]
    for ir_dir, vi_dir, label_parent in folders:
        label_dir = label_parent / style.labels if labels and style.labels and label_parent else None
        write_fake_pairs(
            ir_dir,
            vi_dir,
            names,
            size,
            style.ir_ext,
            style.vi_ext,
            vi_color=style.vi_color,
            ir_as_rgb=style.ir_as_rgb,
            seed=seed,
            label_dir=label_dir,
        )
    return root


def write_fake_multifocus(
    root: PathLike, style: str = "folders", n_pairs: int = 3, size: tuple[int, int] = (32, 32), seed: int = 0
) -> Path:
    """Real-style multi-focus pairs without ground truth: ``a/``+``b/`` ("folders", as Lytro here) or
    ``<name>-A.jpg``/``<name>-B.jpg`` in one folder ("suffix", as the IFCNN copy of Lytro)."""
    import cv2

    root = Path(root)
    height, width = size
    for index in range(n_pairs):
        image = make_texture_array(derive_seed(seed, "test", index), height, width, channels=3)
        half = np.zeros((height, width, 1), dtype=np.float32)
        half[:, : width // 2] = 1.0
        blurred = cv2.GaussianBlur(image, (0, 0), 2.0)
        near = half * image + (1 - half) * blurred
        far = (1 - half) * image + half * blurred
        name = f"lytro-{index + 1:02d}"
        if style == "folders":
            (root / "a").mkdir(parents=True, exist_ok=True)
            (root / "b").mkdir(parents=True, exist_ok=True)
            write_image(root / "a" / f"{name}.jpg", near)
            write_image(root / "b" / f"{name}.jpg", far)
        elif style == "suffix":
            root.mkdir(parents=True, exist_ok=True)
            write_image(root / f"{name}-A.jpg", near)
            write_image(root / f"{name}-B.jpg", far)
        else:
            raise ValueError(f"style must be 'folders' or 'suffix', got {style!r}")
    return root


def write_fake_natural_images(
    root: PathLike, counts: dict[str, int], size: tuple[int, int] = (48, 64), seed: int = 0
) -> Path:
    """All-in-focus images in subfolders (``counts`` maps subfolder → number), like train/natural/*/."""
    root = Path(root)
    index = 0
    for subfolder, count in counts.items():
        folder = root / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            image = make_texture_array(derive_seed(seed, "test", index), size[0], size[1], channels=3)
            write_image(folder / f"img_{index:03d}.png", image)
            index += 1
    return root
