"""A callback for tests/test_resume.py: SIGKILL the training process at a given global step."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SigkillAtStep(pl.Callback):
    """Kill this process, without any cleanup, once ``step`` optimiser steps are done (mid-epoch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
