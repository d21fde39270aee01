"""Conversions between what users hand the Python API (numpy arrays, PIL images, tensors) and N×C×H×W floats.

The API promises to give back the kind it was given: the same container, dtype, layout (H×W, H×W×C, C×H×W
or N×C×H×W) and device, so ``Fuser.fuse`` drops into existing pipelines without glue code. An
:class:`ImageKind` records that on the way in; :func:`from_batch` honours it on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from data_modules.levels import quantise

__all__ = ["ImageKind", "check_unit_range", "from_batch", "to_batch"]

_PIL_CONVERT_TO_RGB = {"P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"}


@dataclass(frozen=True)
class ImageKind:
    """How an input was given, so that the output can be given back the same way."""

    container: str  # "numpy", "pil" or "tensor"
    layout: str  # "hw", "hwc", "chw" or "nchw"
    dtype: Any  # numpy or torch dtype of the pixels
    channels: int  # 1 or 3 after dropping alpha
    device: torch.device | None = None


def _unit_from_numpy(array: np.ndarray, role: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        _check_unit_range(float(values.min()), float(values.max()), bool(np.isfinite(values).all()), role)
        return values
    raise TypeError(f"{role}: unsupported pixel type {array.dtype}; pass uint8, uint16 or floats in [0, 1]")


def check_unit_range(tensor: torch.Tensor, role: str) -> None:
    """Raise ``ValueError`` naming ``role`` unless every value of a float tensor is finite and in [0, 1]."""
    if tensor.numel():
        values = tensor.detach().float()
        _check_unit_range(float(values.min()), float(values.max()), bool(torch.isfinite(values).all()), role)


def _check_unit_range(low: float, high: float, finite: bool, role: str) -> None:
    if not finite:
        raise ValueError(f"{role}: image contains NaN or infinite values")
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ValueError(f"{role}: float pixels span [{low:g}, {high:g}]; expected values in [0, 1]")


def _pil_to_numpy(image: Any, role: str) -> np.ndarray:
    mode = image.mode
    if mode in _PIL_CONVERT_TO_RGB:
        image = image.convert("RGBA" if "A" in mode or mode == "P" else "RGB")
        mode = image.mode
    if mode == "1":
        image, mode = image.convert("L"), "L"
    if mode == "LA":
        image, mode = image.getchannel("L"), "L"
    array = np.asarray(image)
    if mode.startswith("I;16"):
        return array.astype(np.uint16)
    if mode == "I":  # 32-bit integer container, in practice 16-bit data (PNG 16-bit grey)
        if array.size and (int(array.min()) < 0 or int(array.max()) > 65535):
            raise ValueError(f"{role}: PIL mode 'I' image with values outside 0…65535 is not supported")
        return array.astype(np.uint16)
    return array


def to_batch(image: Any, role: str) -> tuple[torch.Tensor, ImageKind]:
    """``image`` as a float32 N×C×H×W tensor in [0, 1] (C = 1 or 3, alpha dropped) and its :class:`ImageKind`."""
    if isinstance(image, torch.Tensor):
        return _tensor_to_batch(image, role)
    container = "numpy"
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            container = "pil"
            image = _pil_to_numpy(image, role)
    except ImportError:  # pragma: no cover - pillow is a core dependency
        pass
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{role}: expected a numpy array, PIL image or torch tensor, got {type(image).__name__}"
        )
    array = image
    if array.ndim == 2:
        layout, array = "hw", array[:, :, None]
    elif array.ndim == 3 and array.shape[2] in (1, 3, 4):
        layout = "hwc"
    else:
        raise ValueError(
            f"{role}: expected an H×W or H×W×C array with C in (1, 3, 4), got shape {array.shape}"
        )
    dtype = array.dtype
    array = array[:, :, :3] if array.shape[2] == 4 else array
    unit = _unit_from_numpy(np.ascontiguousarray(array), role)
    tensor = torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1)))[None]
    kind = ImageKind(container=container, layout=layout, dtype=dtype, channels=int(tensor.shape[1]))
    return tensor, kind


def _tensor_to_batch(tensor: torch.Tensor, role: str) -> tuple[torch.Tensor, ImageKind]:
    layouts = {2: "hw", 3: "chw", 4: "nchw"}
    if tensor.device.type == "meta":
        raise ValueError(f"{role}: a meta tensor holds no pixels; pass a tensor on the CPU or a GPU")
    if tensor.ndim not in layouts:
        raise ValueError(f"{role}: expected an H×W, C×H×W or N×C×H×W tensor, got shape {tuple(tensor.shape)}")
    layout = layouts[tensor.ndim]
    batch = tensor.detach().reshape(1, 1, *tensor.shape) if layout == "hw" else tensor.detach()
    batch = batch if layout != "chw" else batch[None]
    if batch.shape[1] not in (1, 3, 4):
        raise ValueError(f"{role}: expected 1, 3 or 4 channels on dim -3, got shape {tuple(tensor.shape)}")
    batch = batch[:, :3]
    if tensor.dtype == torch.uint8:
        unit = batch.float() / 255.0
    elif tensor.dtype == torch.uint16:
        unit = batch.to(torch.int32).float() / 65535.0
    elif tensor.dtype == torch.bool:
        unit = batch.float()
    elif tensor.is_floating_point():
        unit = batch.float()
        check_unit_range(unit, role)
    else:
        raise TypeError(
            f"{role}: unsupported tensor dtype {tensor.dtype}; pass uint8, uint16 or floats in [0, 1]"
        )
    kind = ImageKind("tensor", layout, tensor.dtype, int(unit.shape[1]), tensor.device)
    return unit.contiguous(), kind


_NUMPY_BIT_DEPTHS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}
_TORCH_BIT_DEPTHS = {torch.uint8: 8, torch.uint16: 16}


def _as_dtype(unit: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float32 H×W(×C) values in [0, 1] as ``dtype``: integer levels for uint8/uint16, else floats."""
    if dtype in _NUMPY_BIT_DEPTHS:
        return quantise(unit, _NUMPY_BIT_DEPTHS[dtype])
    if np.issubdtype(dtype, np.floating):
        return unit.astype(dtype)
    return unit.astype(np.float32)


def from_batch(batch: torch.Tensor, kind: ImageKind) -> Any:
    """Give an N×C×H×W float result in [0, 1] back as ``kind`` (its channel count taken from ``batch``)."""
    batch = batch.detach().float().clamp(0.0, 1.0)
    channels = int(batch.shape[1])
    if kind.container == "tensor":
        return _batch_to_tensor(batch, kind)
    unit = batch[0].permute(1, 2, 0).cpu().numpy()  # H×W×C
    if kind.layout == "hw" or (channels == 1 and kind.channels == 3):
        unit = unit[:, :, 0]  # a colour input asked for grey output comes back 2-D, like any grey image
    array = _as_dtype(unit, np.dtype(kind.dtype))
    if kind.container == "pil":
        from PIL import Image

        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.dtype == np.uint16 and array.ndim == 3:
            array = (array // 257).astype(np.uint8)  # PIL has no 16-bit RGB mode
        elif np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
            if array.ndim == 3:
                array = _as_dtype(array, np.dtype(np.uint8))
        return Image.fromarray(np.ascontiguousarray(array))
    return array


def _batch_to_tensor(batch: torch.Tensor, kind: ImageKind) -> torch.Tensor:
    if kind.dtype in _TORCH_BIT_DEPTHS:
        out = quantise(batch, _TORCH_BIT_DEPTHS[kind.dtype])
    elif kind.dtype == torch.bool or not kind.dtype.is_floating_point:
        out = batch
    else:
        out = batch.to(kind.dtype)
    if kind.layout == "hw":
        out = out[0, 0]
    elif kind.layout == "chw":
        out = out[0]
    return out.to(kind.device) if kind.device is not None else out
