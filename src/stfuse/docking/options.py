"""The names ``stfuse dock`` offers as choices, importable without torch so that ``stfuse dock --help``
answers at once. :mod:`stfuse.docking.protocol` and :mod:`stfuse.docking.sources` define their registries
with these names and check them at import."""

from __future__ import annotations

__all__ = ["COLOR_MODES", "LABEL_SETS", "PRESET_NAMES"]

#: the keys of :data:`stfuse.docking.protocol.PRESETS`, in order
PRESET_NAMES = ("tiny", "cpu", "full")
#: which label version scores every source
LABEL_SETS = ("fusion", "infrared", "visible")
#: how a source is given to the detector
COLOR_MODES = ("luma", "rgb")
