"""The fast CPU training pipeline: in-memory pair cache, fixed validation split across seeds, the λ_g
schedule and the throughput monitor of benchmarks/train_e2e.py."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from data_modules import IVIFDataModule
from data_modules.paired import PairedImageFolder
from stfuse.stages.ivif import IVIFTransferStage
from stfuse.utils.throughput import ThroughputMonitor


def _write_pairs(root, count: int = 6, size: int = 40) -> None:
    rng = np.random.default_rng(0)
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(root / "ir" / f"{i:02d}.png")
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            root / "vi" / f"{i:02d}.png"
        )


def test_pair_cache_reads_each_file_once_and_returns_independent_dicts(tmp_path, monkeypatch) -> None:
    _write_pairs(tmp_path)
    folder = PairedImageFolder(tmp_path / "ir", tmp_path / "vi", cache=True)
    reads = []
    original = folder._read_arrays
    monkeypatch.setattr(folder, "_read_arrays", lambda index: reads.append(index) or original(index))
    first = folder.load_arrays(2)
    first["ir"] = None  # a transform replacing an entry must not reach the cache
    second = folder.load_arrays(2)
    assert reads == [2]
    assert second["ir"] is not None and second["ir"].shape == (40, 40, 1)
    np.testing.assert_array_equal(
        folder[2]["ir"].numpy(), PairedImageFolder(tmp_path / "ir", tmp_path / "vi")[2]["ir"].numpy()
    )
    uncached = PairedImageFolder(tmp_path / "ir", tmp_path / "vi")
    uncached.load_arrays(1)
    assert uncached._cache == {}


def test_split_seed_fixes_the_validation_pairs_while_the_seed_changes(tmp_path) -> None:
    _write_pairs(tmp_path, count=12)
    names = []
    for seed in (0, 1, 2):
        module = IVIFDataModule(
            train_roots=[str(tmp_path)], val_size=3, seed=seed, split_seed=7, num_workers=0
        )
        module.setup("fit")
        names.append(sorted(module.val_dataset.names))
    assert names[0] == names[1] == names[2]
    default = IVIFDataModule(train_roots=[str(tmp_path)], val_size=3, seed=7, num_workers=0)
    default.setup("fit")
    assert sorted(default.val_dataset.names) == names[0]  # split_seed defaults to seed


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("constant", [2.0, 2.0, 2.0]), ("linear", [2.0, 1.0, 0.0]), ("cosine", [2.0, 1.0, 0.0])],
)
def test_lambda_g_schedule_decays_over_max_steps(schedule: str, expected: list[float]) -> None:
    tiny = {"preset": "tiny"}
    stage = IVIFTransferStage(
        transfer=False, guidance="none", net=tiny, lambda_g=2.0, lambda_g_schedule=schedule
    )
    stage._trainer = SimpleNamespace(max_steps=100, estimated_stepping_batches=100)
    values = [_lambda_at(stage, step) for step in (0, 50, 100)]
    assert values == pytest.approx(expected, abs=1e-9)


def _lambda_at(stage: IVIFTransferStage, step: int) -> float:
    original = type(stage).global_step
    try:
        type(stage).global_step = property(lambda self: step)  # type: ignore[assignment]
        return stage.current_lambda_g()
    finally:
        type(stage).global_step = original  # type: ignore[assignment]


def test_unknown_lambda_g_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="lambda_g_schedule must be one of"):
        IVIFTransferStage(transfer=False, guidance="none", lambda_g_schedule="exponential")


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_throughput_monitor_accounts_for_the_run(tmp_path) -> None:
    data = torch.utils.data.TensorDataset(torch.randn(64, 4))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    path = tmp_path / "times.json"
    monitor = ThroughputMonitor(str(path), warmup_steps=2)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=5)
    trainer = pl.Trainer(max_steps=12, val_check_interval=6, callbacks=[monitor, checkpoint], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(_Tiny(), loader, loader)
    summary = json.loads(path.read_text())
    assert summary["steps"] == 12 and summary["timed_steps"] == 10
    seconds = summary["seconds"]
    assert seconds["step"] > 0 and seconds["validation"] > 0 and seconds["checkpoint"] > 0
    phases = seconds["step"] + seconds["data_wait"] + seconds["validation"] + seconds["checkpoint"]
    # The phases partition the timed wall time (up to the first timed batch's own start).
    assert phases <= summary["timed_wall_s"] * 1.05 + 0.05
    assert phases >= 0.5 * summary["timed_wall_s"]
    assert math.isclose(
        summary["end_to_end_s_per_step"], summary["timed_wall_s"] / 10, rel_tol=0.02, abs_tol=1e-4
    )
