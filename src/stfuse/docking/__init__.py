"""Downstream detection protocol ("docking") on MSRS: does fusion help a detector?

Python API::

    from stfuse.docking import DockingConfig, SourceSpec, run_docking

    run_docking(
        [SourceSpec("ir", "dataset"), SourceSpec("vi", "dataset"), SourceSpec("avg", "baseline", "avg")],
        out_dir="outputs/dock",
        config=DockingConfig.preset("cpu"),
    )

The command line is ``stfuse dock`` (:mod:`stfuse.docking.cli`); the protocol is described in
``docs/docking.md``.
"""

from __future__ import annotations

import importlib

# Names load on first use, so that `stfuse dock --help` (which imports stfuse.docking.cli) loads no torch.
_EXPORTS = {
    "CenterNetDetector": "stfuse.docking.detector",
    **dict.fromkeys(
        ("MSRS_CLASSES", "Boxes", "DockingError", "LabelError", "parse_yolo_file", "read_label_dir"),
        "stfuse.docking.labels",
    ),
    "mean_average_precision": "stfuse.docking.metrics",
    **dict.fromkeys(("PRESETS", "DockingConfig", "run_docking"), "stfuse.docking.protocol"),
    "SourceSpec": "stfuse.docking.sources",
    **dict.fromkeys(("Split", "load_split", "make_split"), "stfuse.docking.split"),
    **dict.fromkeys(("TrainSettings", "predict", "train_detector"), "stfuse.docking.train"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stfuse.docking' has no attribute {name!r}")
