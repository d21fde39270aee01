"""The ``stfuse`` command.

``fit``/``validate``/``test``/``predict`` go to the LightningCLI (see :mod:`stfuse.lightning_cli`);
the tool commands (``fuse``, ``export``, ``evaluate``, ``dock``, ``demo``) have their own parsers.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

#: sub-command -> "module:function"; each function takes ``argv`` and returns an exit code.
TOOL_COMMANDS: dict[str, str] = {
    "fuse": "stfuse.inference.cli:fuse_main",
    "export": "stfuse.inference.cli:export_main",
    "evaluate": "stfuse.evaluation.cli:main",
    "dock": "stfuse.docking.cli:main",
    "demo": "stfuse.demo:main",
}


def main(args: list[str] | None = None) -> int | None:
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TOOL_COMMANDS:
        module_name, func_name = TOOL_COMMANDS[argv[0]].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        code = func(argv[1:])
        if args is None:
            sys.exit(code or 0)
        return code
    from stfuse.lightning_cli import run_lightning_cli

    # args=None lets LightningCLI read sys.argv itself (and keeps it from warning about both).
    return run_lightning_cli(None if args is None else argv)
