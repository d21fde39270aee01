"""The docking protocol's input error, torch-free (the settings raise it, and so do the labels, the split
and the sources)."""

from __future__ import annotations

__all__ = ["DockingError"]


class DockingError(ValueError):
    """Bad input to the docking protocol (labels, split, sources, settings); the message names the file."""
