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

from stfuse.docking.detector import CenterNetDetector
from stfuse.docking.labels import (
    MSRS_CLASSES,
    Boxes,
    DockingError,
    LabelError,
    parse_yolo_file,
    read_label_dir,
)
from stfuse.docking.metrics import mean_average_precision
from stfuse.docking.protocol import PRESETS, DockingConfig, run_docking
from stfuse.docking.sources import SourceSpec
from stfuse.docking.split import Split, load_split, make_split
from stfuse.docking.train import TrainSettings, predict, train_detector

__all__ = [
    "MSRS_CLASSES",
    "PRESETS",
    "Boxes",
    "CenterNetDetector",
    "DockingConfig",
    "DockingError",
    "LabelError",
    "SourceSpec",
    "Split",
    "TrainSettings",
    "load_split",
    "make_split",
    "mean_average_precision",
    "parse_yolo_file",
    "predict",
    "read_label_dir",
    "run_docking",
    "train_detector",
]
