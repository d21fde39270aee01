"""Image files: reading and writing, luma and the visible image's YCbCr split.

This module is the one place for these rules; evaluation, docking, inference and the stages use it. The
formats and extensions are in :mod:`data_modules.formats`, the quantiser in :mod:`data_modules.levels`,
listing and pairing by stem in :mod:`data_modules.stems`.

Conventions (the contract every other part relies on):

* ``read_image`` returns a float32 tensor C×H×W in [0, 1]; C = 1 for grey, C = 3 for colour.
* Grey stored as three identical channels (TNO, M3FD infrared) is read as grey (C = 1).
* An alpha channel is dropped: fusion data sets never use transparency.
* Integers are scaled by the full range of their storage type: 8-bit by 255, 16-bit by 65535.
  A 12- or 14-bit sensor image stored in 16 bits therefore reads darker than its sensor range; we keep
  the storage range because the true sensor bit depth is not recorded in PNG or TIFF files, and a
  per-image min/max stretch would change the relative brightness of the two modalities.
* Float TIFFs must already hold values in [0, 1].
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import torch

from data_modules.formats import EIGHT_BIT_EXTENSIONS, IMAGE_EXTENSIONS, TIFF_EXTENSIONS
from data_modules.levels import quantise

# OpenCV's worker pool does not survive fork(): a DataLoader worker forked after the parent ran a parallel
# OpenCV call deadlocks on its next OpenCV call. One OpenCV thread per process keeps every fork safe; the
# loaders get their parallelism from worker processes instead.
cv2.setNumThreads(1)

PathLike = str | os.PathLike

#: BT.601 luma weights (R, G, B), identical to ``kornia.color.rgb_to_ycbcr`` and OpenCV's grey conversion.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
_LUMA = np.array(LUMA_WEIGHTS, dtype=np.float32)
#: BT.601 chroma scales, as ``kornia.color.rgb_to_ycbcr``: Cb = (B − Y)·0.564 + ½, Cr = (R − Y)·0.713 + ½.
CHROMA_SCALES: tuple[float, float] = (0.564, 0.713)
#: the chroma of grey (Cb = Cr = ½): merging a fused Y with it gives a grey RGB image
NEUTRAL_CHROMA = 0.5


class ImageReadError(OSError):
    """A file could not be decoded as an image; the message names the file and the reason."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image '{self.path}': {reason}")


class ImageWriteError(OSError):
    """An image could not be written; the message names the file and the reason."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot write image '{self.path}': {reason}")


class ProtectedPathError(ImageWriteError):
    """Writing would overwrite one of the inputs (for example a source image of the fusion)."""


def luma_array(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an H×W×C array (C ≥ 3, RGB order; alpha ignored) as float32 H×W."""
    return (rgb[..., :3] @ _LUMA).astype(np.float32, copy=False)


def _decode_tiff(path: Path) -> np.ndarray:
    """TIFF through tifffile, which handles layouts OpenCV misreads (planar RGB) or refuses (float).

    Returns H×W or H×W×C in RGB(A) order; raises ImageReadError for stacks and odd layouts.
    """
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        axes = series.axes.replace("Q", "")
        array = series.asarray()
    array = array.reshape([n for n, axis in zip(series.shape, series.axes) if axis != "Q"])
    if axes == "YX" or axes == "YXS":
        return array
    if axes == "SYX":
        return np.moveaxis(array, 0, -1)
    raise ImageReadError(
        path, f"unsupported TIFF layout (axes {series.axes}, shape {series.shape}); expected one image"
    )


def read_raw_array(path: PathLike) -> np.ndarray:
    """The stored pixel values, in their storage dtype, as H×W or H×W×C with channels in RGB(A) order.

    Used directly for label maps and masks, whose values are ids rather than intensities.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file does not exist")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(path, f"file cannot be opened ({error.strerror or error})") from error
    if data.size == 0:
        raise ImageReadError(path, "file is empty")
    array = None
    if path.suffix.lower() in TIFF_EXTENSIONS:
        try:
            array = _decode_tiff(path)  # already RGB(A)
        except ImageReadError:
            raise
        except Exception:  # e.g. a compression tifffile lacks a codec for: OpenCV may still read it
            array = None
    if array is None:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if array is not None and array.ndim == 3 and array.shape[2] in (3, 4):
            code = cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
            array = cv2.cvtColor(array, code)  # OpenCV decodes to BGR(A)
    if array is None:
        raise ImageReadError(path, "corrupt file or unsupported image format")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageReadError(path, f"unsupported pixel layout with shape {array.shape}")
    return array


def read_luma(path: PathLike) -> np.ndarray:
    """The BT.601 luma (Y) of an image as H×W in its storage dtype (uint8/uint16; float for float TIFFs).

    The fast path for training on natural images: the decoder converts to grey itself (libjpeg skips the
    chroma planes), and callers crop before converting to float. OpenCV's grey conversion uses the same
    weights as ``kornia.color.rgb_to_ycbcr`` (:data:`LUMA_WEIGHTS`), rounded to the storage type.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file does not exist")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(path, "file is empty")
    tiff = path.suffix.lower() in TIFF_EXTENSIONS  # OpenCV misreads some TIFF layouts
    array = None if tiff else cv2.imdecode(data, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if array is None:
        colour = read_image_array(
            path
        )  # formats the grey decoder refuses; raises ImageReadError when corrupt
        return luma_array(colour) if colour.shape[2] == 3 else colour[:, :, 0]
    return array


def to_unit_float(array: np.ndarray, path: PathLike = "<array>") -> np.ndarray:
    """Scale stored pixel values to float32 in [0, 1] (uint8 / 255, uint16 / 65535, floats checked)."""
    return _to_unit_float(array, Path(path))


def _to_unit_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) * np.float32(1.0 / 255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) * np.float32(1.0 / 65535.0)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ImageReadError(path, "float image contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ImageReadError(path, f"float image values span [{low:g}, {high:g}]; expected [0, 1]")
        return array
    raise ImageReadError(path, f"unsupported pixel type {array.dtype} (expected 8- or 16-bit integers)")


def _colour_channels(array: np.ndarray) -> np.ndarray:
    """Drop alpha and collapse identical channels: H×W×1 for grey content, H×W×3 for colour."""
    if array.ndim == 2:
        return array[:, :, None]
    if array.shape[2] == 2:  # grey + alpha
        return array[:, :, :1]
    rgb = array[:, :, :3]
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]):
        return rgb[:, :, :1]
    return rgb


def read_image_array(path: PathLike) -> np.ndarray:
    """An image as float32 H×W×C in [0, 1], C = 1 (grey, including grey stored as RGB) or 3 (RGB)."""
    path = Path(path)
    raw = read_raw_array(path)
    return np.ascontiguousarray(_to_unit_float(_colour_channels(raw), path))


def read_image(path: PathLike) -> torch.Tensor:
    """An image as a float32 tensor C×H×W in [0, 1] (see the module docstring for the conventions)."""
    return array_to_tensor(read_image_array(path))


def read_image_size(path: PathLike) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels where the format allows."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file does not exist")
    try:
        with Image.open(path) as image:
            width, height = image.size
        return int(height), int(width)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        array = read_raw_array(path)  # formats Pillow cannot parse, or a corrupt file (raises)
        return int(array.shape[0]), int(array.shape[1])


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """H×W or H×W×C array to a contiguous float32 C×H×W tensor (no scaling)."""
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


def rgb_to_y_cbcr(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (…)×3×H×W RGB into Y (…)×1×H×W and CbCr (…)×2×H×W with kornia's BT.601 coefficients."""
    from kornia.color import rgb_to_ycbcr

    ycbcr = rgb_to_ycbcr(rgb)
    return ycbcr[..., :1, :, :], ycbcr[..., 1:, :, :]


def merge_y_cbcr(y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_y_cbcr`: recombine a (fused) Y with the visible image's CbCr into RGB.

    kornia clamps the result to [0, 1].
    """
    from kornia.color import ycbcr_to_rgb

    if y.shape[-3] != 1 or cbcr.shape[-3] != 2:
        raise ValueError(
            f"expected Y with 1 channel and CbCr with 2, got {tuple(y.shape)} and {tuple(cbcr.shape)}"
        )
    if y.shape[-2:] != cbcr.shape[-2:]:
        raise ValueError(f"Y is {tuple(y.shape[-2:])} but CbCr is {tuple(cbcr.shape[-2:])}")
    return ycbcr_to_rgb(torch.cat([y, cbcr.to(y.dtype)], dim=-3))


def split_visible(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Y, CbCr and whether the image is colour, for a C×H×W visible image with C = 1 or 3.

    A grey image gets the neutral chroma 0.5, so merging a fused Y with it gives a grey RGB image.
    """
    channels = image.shape[-3]
    if channels == 3:
        y, cbcr = rgb_to_y_cbcr(image)
        return y, cbcr, True
    if channels == 1:
        cbcr = torch.full((*image.shape[:-3], 2, *image.shape[-2:]), NEUTRAL_CHROMA, dtype=image.dtype)
        return image, cbcr, False
    raise ValueError(f"a visible image needs 1 or 3 channels, got shape {tuple(image.shape)}")


def split_visible_array(vi: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`split_visible` in NumPy: Y H×W×1, CbCr H×W×2 and the colour flag of an H×W×C array (C = 1, 3).

    The formulas of ``kornia.color.rgb_to_ycbcr`` (:data:`LUMA_WEIGHTS`, :data:`CHROMA_SCALES`; tests check
    they agree). Per-sample work in DataLoader workers then stays off torch's intra-op thread pool, whose
    threads contend badly with the workers on small machines.
    """
    if vi.shape[2] == 1:
        return vi, np.full((*vi.shape[:2], 2), NEUTRAL_CHROMA, dtype=np.float32), False
    r, g, b = vi[:, :, 0], vi[:, :, 1], vi[:, :, 2]
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    cb_scale, cr_scale = CHROMA_SCALES
    cbcr = np.stack([(b - y) * cb_scale + NEUTRAL_CHROMA, (r - y) * cr_scale + NEUTRAL_CHROMA], axis=2)
    return y[:, :, None].astype(np.float32, copy=False), cbcr.astype(np.float32, copy=False), True


def _as_hwc_array(image: torch.Tensor | np.ndarray, path: Path) -> np.ndarray:
    """Tensors are C×H×W (or H×W); arrays are H×W×C (or H×W). Returns H×W×C."""
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim == 2:
            tensor = tensor[None]
        if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
            raise ImageWriteError(
                path, f"expected a C×H×W tensor with C in (1, 3, 4), got {tuple(image.shape)}"
            )
        if tensor.dtype == torch.bfloat16 or tensor.dtype == torch.float16:
            tensor = tensor.float()
        return tensor.permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageWriteError(path, f"expected an H×W×C array with C in (1, 3, 4), got {array.shape}")
    return array


def _storage_array(array: np.ndarray, bit_depth: int, path: Path) -> np.ndarray:
    """The integers ``write_image`` stores: floats quantised in float64, uint8 ↔ uint16 rescaled."""
    target = np.uint8 if bit_depth == 8 else np.uint16
    if array.dtype == target:
        return array
    if np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_:
        return quantise(array.astype(np.float64), bit_depth)
    if array.dtype == np.uint16 and bit_depth == 8:
        return (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if array.dtype == np.uint8 and bit_depth == 16:
        return array.astype(np.uint16) * 257
    raise ImageWriteError(
        path, f"cannot store pixel type {array.dtype}; pass floats in [0, 1], uint8 or uint16"
    )


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_image(
    path: PathLike,
    image: torch.Tensor | np.ndarray,
    bit_depth: int = 8,
    protected: Iterable[PathLike] = (),
) -> Path:
    """Write an image atomically and return its path.

    ``image`` is a C×H×W tensor or an H×W×C array (C = 1, 3 or 4, RGB order); floats are taken to be in
    [0, 1] and are clipped, uint8/uint16 are stored as they are. The data go to a temporary file in the
    target folder, which then replaces the target with ``os.replace``, so a reader never sees half a file
    and an interrupted run leaves no truncated output. Writing over any path in ``protected`` (resolved,
    symlinks and hard links included) raises :class:`ProtectedPathError`: fusion outputs must never
    replace their inputs.
    """
    path = Path(path)
    if bit_depth not in (8, 16):
        raise ImageWriteError(path, f"bit_depth must be 8 or 16, got {bit_depth!r}")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ImageWriteError(
            path, f"unsupported extension '{path.suffix}'; use one of {sorted(IMAGE_EXTENSIONS)}"
        )
    if bit_depth == 16 and suffix in EIGHT_BIT_EXTENSIONS:
        raise ImageWriteError(path, f"{suffix} stores 8 bits only; use .png or .tif for 16-bit output")
    for protected_path in protected:
        if _same_file(path, Path(protected_path)):
            raise ProtectedPathError(path, f"refusing to overwrite the protected input '{protected_path}'")

    array = _storage_array(_as_hwc_array(image, path), bit_depth, path)
    if array.shape[2] == 4 and suffix in {".jpg", ".jpeg"}:
        array = array[:, :, :3]
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in {".jpg", ".jpeg"} else []
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(array), params)
    if not ok:
        raise ImageWriteError(path, "the encoder rejected the image")

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ImageWriteError(path, f"folder '{folder}' does not exist")
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(encoded.tobytes())
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    return path
