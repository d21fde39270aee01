"""The packaged reference weights load safely, carry their training record, and fuse real pairs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from data_modules.io import read_image, split_visible
from stfuse.baselines import fuse_baseline
from stfuse.inference import Fuser
from stfuse.inference.fuser import DEFAULT_WEIGHTS
from stfuse.metrics import FusionMetrics
from stfuse.models import STFuseNet


def test_default_weights_are_small_and_documented():
    assert DEFAULT_WEIGHTS.is_file(), "src/stfuse/weights/stfuse_default.safetensors is missing"
    assert DEFAULT_WEIGHTS.stat().st_size < 10 * 2**20
    record = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    for key in ("config", "seed", "command", "schedule", "data", "train_seconds", "device"):
        assert key in record, key
    fuser = Fuser.from_checkpoint()  # no path: the packaged weights
    # the record's architecture as this version resolves it: options added since take their defaults
    assert fuser.config == STFuseNet(**STFuseNet.saved_config(record["config"])).config


def test_default_weights_fuse_tno_pairs_better_than_the_average_rule_on_qabf(data_root: Path):
    fuser = Fuser.from_checkpoint()
    ours, average = FusionMetrics(metrics=["Qabf", "SF"]), FusionMetrics(metrics=["Qabf", "SF"])
    for stem in ("01", "05", "10", "15"):
        ir = read_image(data_root / "ivif" / "tno" / "ir" / f"{stem}.png")[None]
        vi, _, _ = split_visible(read_image(data_root / "ivif" / "tno" / "vi" / f"{stem}.png")[None])
        fused = fuser.fuse(ir, vi)
        assert fused.shape == ir.shape and torch.isfinite(fused).all()
        assert 0 <= float(fused.min()) and float(fused.max()) <= 1
        ours.update(fused, ir, vi)
        average.update(fuse_baseline("average", ir, vi), ir, vi)
    ours_values, average_values = ours.compute(), average.compute()
    assert ours_values["Qabf"] > average_values["Qabf"] + 0.03
    assert ours_values["SF"] > average_values["SF"]
