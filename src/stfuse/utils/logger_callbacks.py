"""Logging callbacks for any logger: the resolved config, and per-image test metrics as a table and a CSV.

They are added by the logger overlays in ``experiments/loggers/`` (``trainer.callbacks+``, which appends to
the stage's own callbacks)::

    stfuse fit --config experiments/ivif.yaml --config experiments/loggers/wandb.yaml

* :class:`LogResolvedConfig` sends the *whole* resolved LightningCLI config (trainer, model, data,
  seed) and the launch layout to every logger. Lightning itself only logs the model's and data
  module's init arguments.
* :class:`PerImageMetricTable` turns the stage's per-image test metrics into a ``wandb.Table`` and a CSV.

Reading finished runs back is :mod:`stfuse.utils.run_reader`.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.utilities import rank_zero_info

from stfuse.utils.distributed import gather_objects, launch_environment


def _first_of_kind(trainer: pl.Trainer, callback: Callback) -> bool:
    """Whether ``callback`` is the first of its class: stacking two logger overlays appends the
    callbacks twice, and the second copy should stay silent."""
    first = next(cb for cb in trainer.callbacks if type(cb) is type(callback))
    return first is callback


def _log_dir(trainer: pl.Trainer) -> Path:
    """Where files beside the logs go. ``Trainer.log_dir`` broadcasts (a collective), so every rank
    must call this, even though only rank 0 writes."""
    return Path(trainer.log_dir or trainer.default_root_dir)


class LogResolvedConfig(Callback):
    """Log the full resolved CLI config (as the YAML that ``--print_config`` shows) to every logger.

    The config comes from the CLI's ``SaveConfigCallback``, so this does nothing outside the
    LightningCLI (or with ``fast_dev_run``, where the CLI skips that callback). Keys land at the top
    level of the W&B config (``trainer``, ``model``, ``data``, ``seed_everything``, ...) beside
    ``launch`` (launcher, world size, SLURM job id), so a run can be reproduced and traced to its job.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero or not trainer.loggers or not _first_of_kind(trainer, self):
            return
        saver = next((cb for cb in trainer.callbacks if isinstance(cb, SaveConfigCallback)), None)
        if saver is None:
            rank_zero_info(
                "LogResolvedConfig: no SaveConfigCallback (not a CLI run, or fast_dev_run); config not logged"
            )
            return
        params = resolved_config(saver)
        params["launch"] = {
            **launch_environment(),
            "num_nodes": trainer.num_nodes,
            "devices": trainer.num_devices,
        }
        for logger in trainer.loggers:
            logger.log_hyperparams(params)


def resolved_config(saver: SaveConfigCallback) -> dict[str, Any]:
    """The config that ``saver`` writes to ``config.yaml``, as plain Python data."""
    text = saver.parser.dump(saver.config, skip_none=False, skip_check=True)
    config = yaml.safe_load(text) or {}
    config.pop("config", None)  # the list of --config paths, not a setting
    return config


class PerImageMetricTable(Callback):
    """At the end of ``trainer.test``, log one row per test image with every metric, plus a mean row.

    The values come from the stage's metric collection (``metrics_attr``, by default ``test_metrics``)
    through its ``compute_per_image()`` (``stfuse.metrics.FusionMetrics``), which gathers across ranks
    in rank order; the image names are gathered the same way, so rows match under DDP. Callbacks run
    before the module's own ``on_test_epoch_end``, which computes and resets the metrics.

    Output: a ``wandb.Table`` under ``key`` for each ``WandbLogger``, and ``csv_name`` in the log
    directory for every run (rank 0 writes).
    """

    def __init__(
        self,
        key: str = "test/per_image",
        csv_name: str = "test_per_image.csv",
        metrics_attr: str = "test_metrics",
    ) -> None:
        self.key = key
        self.csv_name = csv_name
        self.metrics_attr = metrics_attr
        self._names: list[str] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._names = []

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if dataloader_idx != 0 or not isinstance(batch, dict):
            return
        names = batch.get("name")
        if names is None:
            first = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
            count = int(first.shape[0]) if first is not None else 0
            names = [f"rank{trainer.global_rank}_batch{batch_idx}_{i}" for i in range(count)]
        self._names.extend(str(name) for name in names)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = getattr(pl_module, self.metrics_attr, None)
        if metrics is None or not hasattr(metrics, "compute_per_image") or not _first_of_kind(trainer, self):
            return
        if hasattr(metrics, "has_updates") and not metrics.has_updates():
            return
        computed = metrics.compute_per_image()
        # Columns in the configured metric order (a MetricCollection iterates alphabetically).
        order = [name for name in getattr(metrics, "metric_names", []) if name in computed]
        order += [name for name in computed if name not in order]
        per_image = {name: computed[name].detach().cpu().double().tolist() for name in order}
        names = [name for part in gather_objects(self._names) for name in part]
        root = _log_dir(trainer)
        if not trainer.is_global_zero or not per_image:
            return
        columns, rows = metric_table(names, per_image)
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_table(key=self.key, columns=columns, data=rows)
        write_csv(root / self.csv_name, columns, rows)


def metric_table(names: list[str], per_image: dict[str, list[float]]) -> tuple[list[str], list[list[Any]]]:
    """Rows ``[image, m1, m2, ...]`` and a final ``mean`` row.

    Names that do not line up with the values (a stage that updates its metrics on a subset of the
    batches) are replaced by indices, with a warning, rather than mislabelling rows.
    """
    count = len(next(iter(per_image.values())))
    if any(len(values) != count for values in per_image.values()):
        raise ValueError(
            f"per-image metric lists differ in length: { {k: len(v) for k, v in per_image.items()} }"
        )
    if len(names) != count:
        warnings.warn(
            f"{len(names)} test image names for {count} metric values; naming rows by index", stacklevel=2
        )
        names = [f"image_{i:05d}" for i in range(count)]
    columns = ["image", *per_image]
    rows: list[list[Any]] = [[name, *(per_image[m][i] for m in per_image)] for i, name in enumerate(names)]
    means = [math.fsum(values) / count if count else float("nan") for values in per_image.values()]
    rows.append(["mean", *means])
    return columns, rows


def write_csv(path: Path, columns: list[str], rows: list[list[Any]]) -> Path:
    """Write atomically (temporary file, then rename), so a reader never sees half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    tmp.replace(path)
    return path


__all__ = ["LogResolvedConfig", "PerImageMetricTable", "metric_table", "resolved_config", "write_csv"]
