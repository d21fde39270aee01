"""Trainer callbacks for runs started from a shell or a batch job.

* :class:`IntervalCheckpoint` refreshes ``last.ckpt`` every N optimiser steps and/or every M minutes, so a
  run killed before its first epoch ends (a preempted cluster job, a long CPU epoch) still resumes, and
  it makes that mid-epoch resume exact: the resumed epoch continues with the batch after the last one
  trained, not with the epoch's first batch again. At the end of a run it writes the final step, so
  ``last.ckpt`` is the finished model even when ``max_steps`` ends the run inside an epoch.
* :class:`PlainProgress` prints one plain line every N steps, for logs (SLURM output, ``| tee``), where a
  live progress bar is a stream of carriage returns.
* :class:`EpochProgressBar` is Lightning's rich progress bar with a human epoch counter: ``Epoch 1/40``
  rather than ``Epoch 0/39``, and ``Epoch 1`` rather than ``Epoch 0/-2`` for step-bounded runs.

:func:`progress_callback` picks between the last two for the current terminal.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.utilities import rank_zero_info

__all__ = [
    "EpochProgressBar",
    "IntervalCheckpoint",
    "PlainProgress",
    "hide_lightning_tips",
    "progress_callback",
]


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith("💡 Tip")


def hide_lightning_tips() -> None:
    """Drop Lightning's advertising tips (litlogger, litmodels) from its log output; idempotent."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, _NoTips) for f in target.filters):
                target.addFilter(_NoTips())


class IntervalCheckpoint(Callback):
    """Write ``last.ckpt`` every ``every_n_train_steps`` optimiser steps and/or every ``every_minutes``.

    The file is the run's ``ModelCheckpoint`` ``last.ckpt`` (the first one with ``save_last``), so the epoch-end
    checkpoints, ``best-*.ckpt`` and auto-resume work as before; without such a callback it is
    ``<default_root_dir>/checkpoints/last.ckpt``. Lightning writes checkpoints atomically, so a kill during a
    save leaves the previous ``last.ckpt``.

    On a resume from a mid-epoch checkpoint, the batches of that epoch already trained are drawn from the
    loader and dropped before training goes on, so the run sees exactly the batches an uninterrupted run
    would (this needs training data that depends only on the seed, the epoch and the sample index, as the
    project's data modules do; the skipped batches are loaded, not trained on).
    """

    def __init__(self, every_n_train_steps: int | None = None, every_minutes: float | None = 10.0) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be ≥ 1 or null, got {every_n_train_steps}")
        if every_minutes is not None and not every_minutes > 0:
            raise ValueError(f"every_minutes must be > 0 or null, got {every_minutes}")
        self.every_n_train_steps = every_n_train_steps
        self.every_minutes = every_minutes
        self._last_save_time = time.monotonic()
        self._last_saved_step = -1

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            every_n_train_steps=self.every_n_train_steps, every_minutes=self.every_minutes
        )

    # ---- saving ---------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_save_time = time.monotonic()
        self._last_saved_step = trainer.global_step
        self._skip_trained_batches(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == self._last_saved_step or trainer.sanity_checking or trainer.fast_dev_run:
            return
        due = bool(self.every_n_train_steps) and step % self.every_n_train_steps == 0
        if self.every_minutes is not None:
            elapsed = time.monotonic() - self._last_save_time >= 60.0 * self.every_minutes
            # Ranks must agree: saving is a collective. Rank 0's clock decides.
            due = due or bool(trainer.strategy.broadcast(elapsed, src=0))
        if due:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A finished run's ``last.ckpt`` holds its final step, also when ``max_steps`` stops it mid-epoch
        (the epoch-end checkpoint would otherwise be the last one written, missing the final steps)."""
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.global_step == self._last_saved_step:
            return
        target = _last_checkpoint_callback(trainer)
        if target is not None and getattr(target, "_last_global_step_saved", None) == trainer.global_step:
            return  # ModelCheckpoint wrote last.ckpt at this very step (an epoch end)
        self.save(trainer)

    def save(self, trainer: pl.Trainer) -> Path:
        """Write ``last.ckpt`` now (on every rank: saving is a collective under DDP)."""
        target = _last_checkpoint_callback(trainer)
        if target is not None:
            path = Path(target.dirpath) / f"{target.CHECKPOINT_NAME_LAST}{target.FILE_EXTENSION}"
            # ModelCheckpoint versions a last.ckpt it did not write itself (last-v1.ckpt); claiming the path
            # keeps one last.ckpt. Its own step bookkeeping is left alone, so it still saves at epoch end.
            target.last_model_path = str(path)
            weights_only = target.save_weights_only
        else:
            path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            weights_only = False
        trainer.save_checkpoint(path, weights_only=weights_only)
        self._last_save_time = time.monotonic()
        self._last_saved_step = trainer.global_step
        return path

    # ---- exact mid-epoch resume --------------------------------------------------------------------
    def _skip_trained_batches(self, trainer: pl.Trainer) -> None:
        loop = trainer.fit_loop
        if not getattr(loop, "restarted_mid_epoch", False):
            return
        if next(cb for cb in trainer.callbacks if isinstance(cb, IntervalCheckpoint)) is not self:
            return  # several of these callbacks (overlays) skip once
        done = int(loop.epoch_loop.batch_progress.current.processed)
        fetcher = getattr(loop, "_data_fetcher", None)
        iterator = getattr(fetcher, "iterator", None)
        if done <= 0 or iterator is None:
            return
        # Lightning restarts the epoch's loader from its first batch; these were trained before the interruption.
        for _ in range(done):
            try:
                next(iterator)
            except StopIteration:
                break
        warnings.filterwarnings(
            "ignore", message="You're resuming from a checkpoint that ended before the epoch ended"
        )
        rank_zero_info(
            f"Resumed mid-epoch: skipped the {done} batches of epoch {trainer.current_epoch + 1} already trained"
        )


def _last_checkpoint_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The run's ModelCheckpoint that writes ``last.ckpt`` (``save_last`` and a folder), if any."""
    return next(
        (
            cb
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath
        ),
        None,
    )


# ---- progress ---------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _number(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if value != value:  # NaN
        return "nan"
    return f"{value:.4g}"


def epoch_text(trainer: pl.Trainer, epoch: int | None = None) -> str:
    """``epoch 3/40``, or ``epoch 3`` when the run is bounded by steps only (max_epochs -1 or None)."""
    epoch = trainer.current_epoch if epoch is None else epoch
    max_epochs = trainer.max_epochs
    return (
        f"epoch {epoch + 1}/{max_epochs}"
        if max_epochs is not None and max_epochs > 0
        else f"epoch {epoch + 1}"
    )


class PlainProgress(ProgressBar):
    """One line every ``every_n_steps`` training steps (default: the trainer's ``log_every_n_steps``), a line
    per validation with its metrics, and one at the end, each flushed at once::

        [train] epoch 1/40 · batch 40/250 · step 40/10000 · loss 0.08731 · 1.93 it/s · epoch ETA 1m49s

    Only rank 0 prints.
    """

    def __init__(self, every_n_steps: int | None = None, stream: Any = None) -> None:
        super().__init__()
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be ≥ 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._stream = stream
        self._enabled = True
        self._epoch_start = time.monotonic()
        self._window: tuple[float, int] = (time.monotonic(), 0)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _print(self, text: str) -> None:
        if self._enabled:
            stream = self._stream or sys.stdout
            print(text, file=stream, flush=True)

    def _interval(self, trainer: pl.Trainer) -> int:
        return self.every_n_steps or max(1, int(getattr(trainer, "log_every_n_steps", 50) or 50))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        limits = []
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            limits.append(f"{trainer.max_epochs} epochs of {trainer.num_training_batches} batches")
        if trainer.max_steps and trainer.max_steps > 0:
            limits.append(f"{trainer.max_steps} steps")
        self._print(
            f"[train] {' or '.join(limits) or 'no limit'}; a line every {self._interval(trainer)} steps"
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.monotonic()
        self._window = (self._epoch_start, 0)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        total = trainer.num_training_batches  # batches in a full epoch (inf for an unsized loader)
        steps_left = trainer.max_steps - step if trainer.max_steps and trainer.max_steps > 0 else math.inf
        epoch_left = total - (batch_idx + 1)
        finishing = min(epoch_left, steps_left) <= 0
        if step % self._interval(trainer) != 0 and not finishing:
            return
        now = time.monotonic()
        start, start_batch = self._window
        rate = (batch_idx + 1 - start_batch) / (now - start) if now > start else float("nan")
        self._window = (now, batch_idx + 1)
        shown_total = total if math.isfinite(total) else "?"
        parts = [f"[train] {epoch_text(trainer)}", f"batch {batch_idx + 1}/{shown_total}"]
        parts.append(f"step {step}/{trainer.max_steps}" if math.isfinite(steps_left) else f"step {step}")
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        parts += [f"{key} {_number(value)}" for key, value in list(metrics.items())[:4]]
        if rate == rate:
            parts.append(f"{rate:.2f} it/s")
            if not finishing and rate > 0 and math.isfinite(min(epoch_left, steps_left)):
                label = "ETA" if steps_left <= epoch_left else "epoch ETA"
                parts.append(f"{label} {_duration(min(epoch_left, steps_left) / rate)}")
        self._print(" · ".join(parts))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        shown = " · ".join(f"{key} {_number(value)}" for key, value in list(metrics.items())[:8])
        where = (
            f"{epoch_text(trainer)} · step {trainer.global_step}"
            if trainer.training or trainer.state.fn == "fit"
            else ""
        )
        self._print("[val] " + " · ".join(part for part in (where, shown) if part))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print(f"[train] done at step {trainer.global_step}")

    def _eval_line(self, stage: str, batch_idx: int, total: Any) -> None:
        done = batch_idx + 1
        if (
            isinstance(total, (int, float))
            and math.isfinite(total)
            and total > 0
            and (done == total or done % max(1, math.ceil(total / 10)) == 0)
        ):
            self._print(f"[{stage}] batch {done}/{total}")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._eval_line("test", batch_idx, _batches(trainer.num_test_batches, dataloader_idx))

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._eval_line("predict", batch_idx, _batches(trainer.num_predict_batches, dataloader_idx))


def _batches(counts: Any, dataloader_idx: int) -> Any:
    """The batch count of one evaluation loader (Lightning keeps a list, one entry per loader)."""
    if isinstance(counts, (list, tuple)):
        return counts[dataloader_idx] if dataloader_idx < len(counts) else None
    return counts


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counting epochs from 1 and without a negative total."""

    def _get_train_description(self, current_epoch: int) -> str:
        text = epoch_text(self.trainer, current_epoch).capitalize()
        if len(self.validation_description) > len(text):
            text = f"{text:{len(self.validation_description)}}"
        return text


def progress_callback(every_n_steps: int | None = None, stream: Any = None) -> ProgressBar:
    """:class:`EpochProgressBar` on a terminal, :class:`PlainProgress` when output goes to a file or pipe."""
    stream = stream or sys.stdout
    interactive = hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"
    return EpochProgressBar() if interactive else PlainProgress(every_n_steps, stream=stream)
