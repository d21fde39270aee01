"""Lazy exports (PEP 562): a package names its public objects without importing the modules that define them.

A package's ``__init__`` lists each public name with its defining module once (``"module:attribute"``
when the attribute has another name)::

    _EXPORTS = {"Fuser": "stfuse.inference.fuser", "fuse_tiled": "stfuse.inference.tiling"}
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

The first access imports the defining module and stores the object in the package's globals, so later
accesses are plain attribute lookups. Importing the package therefore stays cheap (no torch, Lightning or
torchmetrics until a name that needs them is used), which keeps ``stfuse <command> --help`` instant.

This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    module_name: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module ``module_name`` that load ``exports`` on first use.

    ``exports`` maps each public name to its defining module, ``"package.module"`` (the attribute of the same
    name) or ``"package.module:attribute"``.
    """
    targets: dict[str, tuple[str, str]] = {}
    for name, target in exports.items():
        module, _, attribute = target.partition(":")
        if not module:
            raise ValueError(f"lazy export {name!r} of {module_name}: no module in {target!r}")
        targets[name] = (module, attribute or name)

    def __getattr__(name: str) -> Any:
        target = targets.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        module, attribute = target
        value = getattr(importlib.import_module(module), attribute)
        vars(sys.modules[module_name])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[module_name]), *targets})

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
