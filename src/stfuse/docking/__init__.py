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

from stfuse.utils.lazy import lazy_exports

# Names load on first use, so that `stfuse dock --help` (which imports stfuse.docking.cli) loads no torch.
_EXPORTS = {
    "CenterNetDetector": "stfuse.docking.detector",
    "DockingError": "stfuse.docking.errors",
    "MSRS_CLASSES": "stfuse.docking.labels",
    "Boxes": "stfuse.docking.labels",
    "LabelError": "stfuse.docking.labels",
    "parse_yolo_file": "stfuse.docking.labels",
    "read_label_dir": "stfuse.docking.labels",
    "mean_average_precision": "stfuse.docking.metrics",
    "run_docking": "stfuse.docking.protocol",
    "DOCKING_PRESETS": "stfuse.docking.settings",
    "DockingConfig": "stfuse.docking.settings",
    "TrainSettings": "stfuse.docking.settings",
    "SourceSpec": "stfuse.docking.sources",
    "Split": "stfuse.docking.split",
    "load_split": "stfuse.docking.split",
    "make_split": "stfuse.docking.split",
    "predict": "stfuse.docking.train",
    "train_detector": "stfuse.docking.train",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
