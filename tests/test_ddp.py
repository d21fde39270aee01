"""DDP on CPU: 2 processes (``ddp_spawn``) train both stages on tiny data.

Checks that gradients are synchronised (equal weights on every rank), that evaluation shards the data
without DistributedSampler's padding (3 validation samples over 2 ranks are seen exactly once, and the
reduced metrics equal a single-process validation of the same weights), and that only rank 0 writes.
State set inside spawned workers does not come back to the parent, so each rank writes its results
to files.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DistributedSampler

from data_modules import IVIFDataModule, MFIFDataModule, TransferDataModule
from data_modules.samplers import UnpaddedDistributedSampler, eval_sampler
from stfuse.stages import IVIFTransferStage, MFIFStage
from stfuse.utils.logger_callbacks import PerImageMetricTable

TINY_NET = {"preset": "tiny"}
VAL_SAMPLES = 3  # odd, so a padded sampler would count one sample twice on 2 ranks
IVIF_METRICS = ["EN", "SF", "Qabf"]


# ---- the sampler on its own ----------------------------------------------------------------------
@pytest.mark.parametrize("length,replicas", [(3, 2), (7, 3), (8, 4), (5, 5)])
def test_unpadded_sampler_covers_every_sample_exactly_once(length, replicas):
    shards = [
        list(UnpaddedDistributedSampler(range(length), num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [
        len(UnpaddedDistributedSampler(range(length), num_replicas=replicas, rank=r)) for r in range(replicas)
    ] == [len(shard) for shard in shards]
    padded = sum(
        len(list(DistributedSampler(range(length), num_replicas=replicas, rank=r))) for r in range(replicas)
    )
    assert padded == math.ceil(length / replicas) * replicas  # what the padding would have added


def test_unpadded_sampler_shuffles_the_same_permutation_on_every_rank():
    shards = []
    for rank in range(2):
        sampler = UnpaddedDistributedSampler(range(9), num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        shards.append(list(sampler))
    assert sorted(shards[0] + shards[1]) == list(range(9))
    assert shards[0] != list(range(0, 9, 2)), "shuffle=True should permute"


def test_eval_sampler_is_sequential_without_a_process_group():
    assert eval_sampler(list(range(5))) is None
    loader = MFIFDataModule(crop_size=32, batch_size=2, num_workers=0, val_samples=3, val_crop_size=32)
    loader.setup("fit")
    assert not isinstance(loader.val_dataloader().sampler, DistributedSampler)


# ---- two processes ------------------------------------------------------------------------------
class RecordPerRank(Callback):
    """Writes, per rank: final weights, the last validation metrics, and which samples it evaluated."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.val_names: list[str] = []
        self.sampler = ""

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.val_names = []
        loaders = trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, list) else loaders
        self.sampler = type(loader.sampler).__name__

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.val_names.extend(str(n) for n in batch["name"])

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        rank = trainer.global_rank
        record = {
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val")},
            "val_names": self.val_names,
            "sampler": self.sampler,
            "world_size": trainer.world_size,
        }
        (self.out_dir / f"rank{rank}.json").write_text(json.dumps(record))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.save(pl_module.net.state_dict(), self.out_dir / f"rank{trainer.global_rank}.pt")


def _ddp_trainer(root: Path, **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=1,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        logger=CSVLogger(str(root), name="logs"),
        log_every_n_steps=1,
        callbacks=[RecordPerRank(root)],
        **kwargs,
    )


def _single_validate(stage: pl.LightningModule, data: pl.LightningDataModule, root: Path) -> dict[str, float]:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    results = trainer.validate(stage, datamodule=data, verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def _read_ranks(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, torch.Tensor]]]:
    records = [json.loads((root / f"rank{r}.json").read_text()) for r in range(2)]
    weights = [torch.load(root / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return records, weights


def _assert_ddp_contract(root: Path, reference: dict[str, float]) -> None:
    records, weights = _read_ranks(root)
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), f"weights differ across ranks after DDP training: {key}"
    for record in records:
        assert record["world_size"] == 2
        assert record["sampler"] == "UnpaddedDistributedSampler"
    seen = records[0]["val_names"] + records[1]["val_names"]
    assert len(seen) == VAL_SAMPLES and len(set(seen)) == VAL_SAMPLES, f"each sample once, got {seen}"
    assert [len(r["val_names"]) for r in records] == [2, 1]
    assert reference, "single-process validation logged nothing"
    for record in records:
        for key, expected in reference.items():
            assert key in record["metrics"], f"{key} missing from the DDP metrics {sorted(record['metrics'])}"
            assert record["metrics"][key] == pytest.approx(expected, rel=1e-5, abs=1e-6), key
    grids = sorted(root.rglob("val_grid_epoch*.png"))
    assert len(grids) == 1, f"only rank 0 writes image grids, found {grids}"
    assert len(list(root.rglob("metrics.csv"))) == 1, "only rank 0 writes the CSV log"


def _mfif_data() -> MFIFDataModule:
    return MFIFDataModule(
        crop_size=32,
        batch_size=2,
        num_workers=0,
        samples_per_epoch=8,
        val_samples=VAL_SAMPLES,
        val_crop_size=32,
        seed=0,
    )


def _ivif_data() -> TransferDataModule:
    ivif = IVIFDataModule(
        crop_size=32,
        batch_size=2,
        num_workers=0,
        default_train_size=8,
        default_image_size=40,
        val_size=VAL_SAMPLES,
        seed=0,
    )
    replay = MFIFDataModule(
        crop_size=32, batch_size=2, num_workers=0, samples_per_epoch=8, val_samples=2, seed=1
    )
    return TransferDataModule(ivif=ivif, replay=replay)


@pytest.fixture(scope="module")
def mfif_ddp_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mfif_ddp")
    pl.seed_everything(0)
    stage = MFIFStage(net=TINY_NET, warmup_steps=1, grid_images=2)
    checkpoint = ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, save_top_k=0)
    trainer = _ddp_trainer(root)
    trainer.callbacks.append(checkpoint)
    trainer.fit(stage, datamodule=_mfif_data())
    return root


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_mfif_stage_under_ddp_matches_single_process(mfif_ddp_run, tmp_path):
    _, weights = _read_ranks(mfif_ddp_run)
    stage = MFIFStage(net=TINY_NET, grid_images=0)
    stage.net.load_state_dict(weights[0])
    reference = _single_validate(stage, _mfif_data(), tmp_path)
    assert {"val/loss", "val/psnr", "val/ssim"} <= set(reference)
    _assert_ddp_contract(mfif_ddp_run, reference)
    assert (mfif_ddp_run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ivif_transfer_stage_under_ddp_matches_single_process(mfif_ddp_run, tmp_path):
    source = mfif_ddp_run / "checkpoints" / "last.ckpt"
    root = tmp_path / "ivif"
    root.mkdir()
    pl.seed_everything(0)
    stage = IVIFTransferStage(
        source_ckpt=str(source), warmup_steps=1, val_metrics=IVIF_METRICS, grid_images=2
    )
    trainer = _ddp_trainer(root)
    trainer.callbacks.append(PerImageMetricTable())
    trainer.fit(stage, datamodule=_ivif_data())
    _, weights = _read_ranks(root)
    single = IVIFTransferStage(source_ckpt=str(source), val_metrics=IVIF_METRICS, grid_images=0)
    single.net.load_state_dict(weights[0])
    reference = _single_validate(single, _ivif_data(), tmp_path / "single")
    assert {"val/loss", *(f"val/{m}" for m in IVIF_METRICS)} <= set(reference)
    _assert_ddp_contract(root, reference)

    # The per-image test table: names and values gathered from both ranks line up, rank 0 writes it.
    trainer.test(stage, datamodule=_ivif_data(), verbose=False)
    tables = list(root.rglob("test_per_image.csv"))
    assert len(tables) == 1, tables
    single_root = tmp_path / "single_test"
    pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(single_root),
        callbacks=[PerImageMetricTable()],
    ).test(single, datamodule=_ivif_data(), verbose=False)
    ddp_rows, single_rows = _table(tables[0]), _table(single_root / "test_per_image.csv")
    assert sorted(ddp_rows) == sorted(single_rows) and len(ddp_rows) == VAL_SAMPLES + 1
    for name, values in single_rows.items():
        assert ddp_rows[name] == pytest.approx(values, rel=1e-6), name


def _table(path: Path) -> dict[str, list[float]]:
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", *IVIF_METRICS]
    return {row[0]: [float(v) for v in row[1:]] for row in rows[1:]}
