"""Reading finished runs back without Lightning: W&B run files (offline or synced), CSVLogger tables, and
the W&B server.

:func:`read_offline_run`, :func:`find_offline_runs` and :func:`read_csv_metrics` need no network (tests,
notebooks); :func:`fetch_wandb_runs` asks the W&B server.
"""

from __future__ import annotations

import csv
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


__all__ = [
    "OfflineRun",
    "fetch_wandb_runs",
    "find_offline_runs",
    "iter_wandb_records",
    "last_values",
    "read_csv_metrics",
    "read_offline_run",
]
