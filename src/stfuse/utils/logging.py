"""Experiment logging: the resolved config and per-image test tables for any logger, and reading runs back.

The callbacks are added by the logger overlays in ``experiments/loggers/`` (``trainer.callbacks+``, which
appends to the stage's own callbacks)::

    stfuse fit --config experiments/ivif.yaml --config experiments/loggers/wandb.yaml

* :class:`LogResolvedConfig` sends the *whole* resolved LightningCLI config (trainer, model, data,
  seed) and the launch layout to every logger. Lightning itself only logs the model's and data
  module's init arguments.
* :class:`PerImageMetricTable` turns the stage's per-image test metrics into a ``wandb.Table`` and a CSV.
* :func:`read_offline_run`, :func:`find_offline_runs` and :func:`read_csv_metrics` read finished runs
  without network (tests, notebooks); :func:`fetch_wandb_runs` asks the W&B server.
"""

from __future__ import annotations

import csv
import json
import math
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
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


# ---- reading runs back ------------------------------------------------------------------------
_BLOCK = 32768
_HEADER = 7  # per record: CRC32C (4), length (2), type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def iter_wandb_records(path: str | Path) -> Iterator[Any]:
    """Yield the protobuf ``Record`` messages of a run's ``.wandb`` file.

    The file is a LevelDB-style log: a 7-byte ``:W&B`` header, then records in 32 KiB blocks, each
    record split into chunks with a 7-byte header. W&B 0.31 no longer ships its Python reader, so this
    is a small reimplementation (checksums are not verified; a truncated tail is ignored, as a crashed
    run leaves one).
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (no ':W&B' header)")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        pos += _HEADER
        if kind == 0 and length == 0:
            break
        chunk = data[pos : pos + length]
        pos += length
        if len(chunk) < length:
            break
        if kind == _FULL:
            payload = chunk
        elif kind == _FIRST:
            pending = chunk
            continue
        elif kind == _MIDDLE:
            pending += chunk
            continue
        elif kind == _LAST:
            payload, pending = pending + chunk, b""
        else:
            raise ValueError(f"{path}: unknown record chunk type {kind} at byte {pos - length - _HEADER}")
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def _assign(target: dict[str, Any], item: Any) -> None:
    path = list(item.nested_key) if item.nested_key else [item.key]
    node = target
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = json.loads(item.value_json)


@dataclass
class OfflineRun:
    """What a W&B run directory holds: config, summary, history rows, artifacts and media files."""

    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    entity: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, str]] = field(default_factory=list)
    #: whether the run's exit record is on disk (False for a crashed run, or one still being written)
    finished: bool = False

    @property
    def files(self) -> Path:
        return self.path / "files"

    def media(self, kind: str = "images") -> list[Path]:
        """Media files of one kind (``images``, ``table``) under ``files/media``."""
        return sorted((self.files / "media" / kind).rglob("*.*"))

    def series(self, key: str) -> list[tuple[int, Any]]:
        """``(trainer/global_step or _step, value)`` for every history row that logged ``key``."""
        return [
            (int(row.get("trainer/global_step", row.get("_step", i))), row[key])
            for i, row in enumerate(self.history)
            if key in row
        ]

    def table(self, key: str) -> tuple[list[str], list[list[Any]]]:
        """Columns and rows of the last ``wandb.Table`` logged under ``key``."""
        entry = self.summary.get(key)
        if not isinstance(entry, dict) or "path" not in entry:
            raise KeyError(f"no table logged under {key!r}; summary keys: {sorted(self.summary)}")
        content = json.loads((self.files / entry["path"]).read_text())
        return content["columns"], content["data"]


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Parse ``run_dir/run-<id>.wandb`` (offline or synced runs alike)."""
    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    run = OfflineRun(path=run_dir)
    for record in iter_wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = record.run
            run.run_id, run.name, run.project, run.entity = (
                info.run_id,
                info.display_name,
                info.project,
                info.entity,
            )
            run.tags = list(info.tags)
            for item in info.config.update:
                _assign(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _assign(run.config, item)
        elif kind == "summary":
            for item in record.summary.update:
                _assign(run.summary, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _assign(row, item)
            run.history.append(row)
        elif kind == "artifact":
            run.artifacts.append({"name": record.artifact.name, "type": record.artifact.type})
        elif kind == "exit":
            run.finished = True
    run.config.pop("_wandb", None)
    return run


def find_offline_runs(root: str | Path) -> list[Path]:
    """Run directories (``offline-run-*`` and ``run-*``) under ``root``, oldest first."""
    root = Path(root)
    runs = {p.parent for p in root.rglob("run-*.wandb")}
    return sorted(runs, key=lambda p: p.name.split("-", 2)[-1])


def read_csv_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{key: [(step, value), ...]}`` from a ``CSVLogger`` ``metrics.csv`` (or the folder holding one).

    CSVLogger writes sparse rows (each row only fills the keys logged at that step); empty cells are
    skipped.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"no metrics.csv under {path}")
        path = found[-1]  # the newest version_N (names sort version_10 before version_2)
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def last_values(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """The last logged value of each key."""
    return {key: points[-1][1] for key, points in series.items() if points}


def fetch_wandb_runs(path: str, tags: list[str] | None = None) -> list[dict[str, Any]]:
    """Summaries and configs of the runs in ``entity/project`` (needs network and a W&B login).

    ``tags`` keeps runs carrying all of them. Each entry: ``{"name", "id", "tags", "summary", "config"}``.
    """
    import wandb

    filters = {"$and": [{"tags": tag} for tag in tags]} if tags else None
    runs = wandb.Api().runs(path, filters=filters)
    return [
        {
            "name": run.name,
            "id": run.id,
            "tags": list(run.tags),
            "summary": dict(run.summary),
            "config": dict(run.config),
        }
        for run in runs
    ]


def __getattr__(name: str) -> Any:
    # The old name: pytest collected it as a test class wherever a test module imported it.
    if name == "TestMetricTable":
        warnings.warn(
            "stfuse.utils.logging.TestMetricTable is renamed PerImageMetricTable",
            DeprecationWarning,
            stacklevel=2,
        )
        return PerImageMetricTable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LogResolvedConfig",
    "OfflineRun",
    "PerImageMetricTable",
    "fetch_wandb_runs",
    "find_offline_runs",
    "iter_wandb_records",
    "last_values",
    "metric_table",
    "read_csv_metrics",
    "read_offline_run",
    "resolved_config",
    "write_csv",
]
