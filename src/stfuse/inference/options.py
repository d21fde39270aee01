"""Defaults shared by the Fuser, the folder runner and the ``stfuse fuse``/``stfuse export`` parsers.

Plain constants, importable without torch, so that ``stfuse fuse --help`` answers at once.
"""

from __future__ import annotations

from data_modules.formats import OUTPUT_EXTENSIONS

#: images above this many pixels are fused in tiles (about 16 MP: a 4608×3456 photo still goes in one pass).
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_TILE = 1024
DEFAULT_TILE_OVERLAP = 64

#: --format value → file extension, from the one table of image formats (data_modules.formats).
OUTPUT_FORMATS: dict[str, str] = OUTPUT_EXTENSIONS

#: what ``stfuse export`` writes (``stfuse.inference.export`` takes it from here).
EXPORT_FORMATS = ("onnx",)
#: formats ``stfuse export`` wrote once → the one-line reason and what to use instead.
REMOVED_EXPORT_FORMATS: dict[str, str] = {
    "torchscript": "TorchScript export was removed because torch deprecated torch.jit; use --format onnx "
    "(ONNX runs in onnxruntime) or the safetensors weights",
}
#: the torch.export-based ONNX exporter writes opset 18 or newer (older opsets lack e.g. its Pad).
MIN_ONNX_OPSET = 18
