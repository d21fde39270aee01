"""Image file formats: their extensions and the bit depths they store.

The one table behind reading (``data_modules.io``), ``stfuse fuse --format`` and a fused file's format
chosen by its name. Standard library only, so that ``--help`` can list the formats without loading torch
or OpenCV.
"""

from __future__ import annotations

#: format name → its file extensions; the first is the one written.
IMAGE_FORMATS: dict[str, tuple[str, ...]] = {
    "png": (".png",),
    "jpg": (".jpg", ".jpeg"),
    "tif": (".tif", ".tiff"),
    "bmp": (".bmp",),
}
#: formats that store 16-bit integers; the others store 8 bits only.
SIXTEEN_BIT_FORMATS: frozenset[str] = frozenset({"png", "tif"})

#: every extension read or written as an image (lower case, with the dot)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(ext for exts in IMAGE_FORMATS.values() for ext in exts)
#: extension → format name (``.jpeg`` → ``jpg``)
SUFFIX_FORMATS: dict[str, str] = {ext: name for name, exts in IMAGE_FORMATS.items() for ext in exts}
#: format name → the extension written for it
OUTPUT_EXTENSIONS: dict[str, str] = {name: exts[0] for name, exts in IMAGE_FORMATS.items()}
EIGHT_BIT_EXTENSIONS: frozenset[str] = frozenset(
    ext for name, exts in IMAGE_FORMATS.items() if name not in SIXTEEN_BIT_FORMATS for ext in exts
)
TIFF_EXTENSIONS: frozenset[str] = frozenset(IMAGE_FORMATS["tif"])


def accepted_extensions_text() -> str:
    """``png, jpg, jpeg, tif, tiff, bmp``: the accepted extensions for messages, in table order."""
    return ", ".join(ext.lstrip(".") for exts in IMAGE_FORMATS.values() for ext in exts)


__all__ = [
    "EIGHT_BIT_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS",
    "OUTPUT_EXTENSIONS",
    "SIXTEEN_BIT_FORMATS",
    "SUFFIX_FORMATS",
    "TIFF_EXTENSIONS",
    "accepted_extensions_text",
]
