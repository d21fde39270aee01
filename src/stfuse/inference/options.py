"""Defaults shared by the Fuser, the folder runner and the ``stfuse fuse``/``stfuse export`` parsers.

Plain constants, importable without torch, so that ``stfuse fuse --help`` answers at once.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from data_modules.formats import OUTPUT_EXTENSIONS

#: images above this many pixels are fused in tiles (about 16 MP: a 4608×3456 photo still goes in one pass).
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_TILE = 1024
DEFAULT_TILE_OVERLAP = 64

#: --format value → file extension, from the one table of image formats (data_modules.formats).
OUTPUT_FORMATS: dict[str, str] = OUTPUT_EXTENSIONS

#: what ``stfuse export`` writes (``stfuse.inference.export`` takes it from here).
EXPORT_FORMATS = ("onnx",)
#: the torch.export-based ONNX exporter writes opset 18 or newer (older opsets lack e.g. its Pad).
MIN_ONNX_OPSET = 18


def network_presets() -> tuple[str, ...]:
    """The names in ``stfuse.models.PRESETS``, for ``--preset`` choices and help.

    Read from the loaded module when it is already in, else from ``models/presets.py``'s source with ``ast``
    (importing the registry loads the ``stfuse.models`` package, hence torch, and ``stfuse fuse --help``
    imports none).
    """
    module = sys.modules.get("stfuse.models.presets")
    if module is not None:
        return tuple(module.PRESETS)
    source = Path(__file__).resolve().parents[1] / "models" / "presets.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "PRESETS" and isinstance(node.value, ast.Dict):
            return tuple(key.value for key in node.value.keys if isinstance(key, ast.Constant))
    from stfuse.models import PRESETS  # the source changed shape: ask the registry itself

    return tuple(PRESETS)
