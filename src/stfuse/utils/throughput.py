"""Where a training run's wall time goes: data wait, optimisation step, validation, checkpointing.

``ThroughputMonitor`` is a Lightning callback; add it to any run with
``--trainer.callbacks+=stfuse.utils.throughput.ThroughputMonitor --trainer.callbacks.path=times.json``.
benchmarks/train_e2e.py uses it to compare a real ``fit`` against the bare training step.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class ThroughputMonitor(pl.Callback):
    """Accumulate wall time per phase of ``fit`` and write it as JSON when training ends.

    Phases: ``step`` (forward, backward and optimizer update: ``on_train_batch_start`` to
    ``on_train_batch_end``), ``validation`` (every validation loop, sanity check included),
    ``checkpoint`` (every ``trainer.save_checkpoint``), and ``data_wait`` (the rest of the time between
    two batches: fetching the next batch, logging, progress bars). ``setup`` is the time from ``setup`` to
    the first batch (dataset construction, loader start-up). ``warmup_steps`` batches are excluded from
    ``step`` and ``data_wait`` so that one-off costs (allocator, lazy caches) do not count.
    """

    def __init__(self, path: str | None = None, warmup_steps: int = 5) -> None:
        super().__init__()
        self.path = path
        self.warmup_steps = int(warmup_steps)
        self.seconds: dict[str, float] = {
            "setup": 0.0,
            "data_wait": 0.0,
            "step": 0.0,
            "validation": 0.0,
            "checkpoint": 0.0,
        }
        self.steps = 0
        self._setup_start: float | None = None
        self._batch_start: float | None = None
        self._last_end: float | None = None
        self._val_start: float | None = None
        self._gap_excluded = 0.0
        self._fit_start: float | None = None
        self._timed_start: float | None = None
        self._end: float | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._setup_start = time.perf_counter()
        save = trainer.save_checkpoint

        def timed_save(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return save(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds["checkpoint"] += elapsed
                self._gap_excluded += elapsed

        trainer.save_checkpoint = timed_save  # type: ignore[method-assign]

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._fit_start is None:
            self._fit_start = now
            if self._setup_start is not None:
                self.seconds["setup"] = now - self._setup_start
        if self._last_end is not None and self.steps >= self.warmup_steps:
            self.seconds["data_wait"] += max(0.0, now - self._last_end - self._gap_excluded)
        self._gap_excluded = 0.0
        self._batch_start = now

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._batch_start is not None and self.steps >= self.warmup_steps:
            self.seconds["step"] += now - self._batch_start
        self.steps += 1
        if self.steps == self.warmup_steps:
            self._timed_start = now
            self.seconds["validation"] = self.seconds["checkpoint"] = 0.0
        self._last_end = now

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None:
            elapsed = time.perf_counter() - self._val_start
            self.seconds["validation"] += elapsed
            self._gap_excluded += elapsed
            self._val_start = None

    def summary(self) -> dict[str, Any]:
        """Totals in seconds plus per-step figures over the timed (post-warm-up) steps."""
        timed_steps = max(0, self.steps - self.warmup_steps)
        # Up to the end of training: the last validation and checkpoint count too.
        end = self._end or self._last_end or time.perf_counter()
        total = end - self._timed_start if self._timed_start is not None else 0.0
        per_step = (
            {k: v / timed_steps for k, v in self.seconds.items() if k != "setup"} if timed_steps else {}
        )
        return {
            "steps": self.steps,
            "timed_steps": timed_steps,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "timed_wall_s": round(total, 3),
            "s_per_step": {k: round(v, 5) for k, v in per_step.items()},
            "end_to_end_s_per_step": round(total / timed_steps, 5) if timed_steps else None,
        }

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end = time.perf_counter()
        if self.path is None or not trainer.is_global_zero:
            return
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.summary(), indent=2))
        os.replace(tmp, path)
