"""Experiment logging: what an offline W&B run (and the CSV logger) actually holds after a CLI run.

The run is parsed from its own files (the ``.wandb`` record log and ``files/media``), so the tests see
what ``wandb sync`` would upload, not what the code meant to log.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest
import pytorch_lightning as pl
import wandb
import yaml

from data_modules import IVIFDataModule
from stfuse.cli import main as stfuse
from stfuse.stages import IVIFTransferStage
from stfuse.utils import run_reader
from stfuse.utils.logger_callbacks import metric_table
from stfuse.utils.run_reader import (
    find_offline_runs,
    iter_wandb_records,
    last_values,
    read_csv_metrics,
    read_offline_run,
)

REPO = Path(__file__).resolve().parents[1]
TINY_NET = {"preset": "tiny"}
METRICS = ["EN", "SF", "Qabf"]
TEST_PAIRS = 3


def _tiny_ivif_args(root: Path, logger_overlay: str) -> list[str]:
    """An IVIF run from scratch (no source checkpoint needed) on tiny embedded data."""
    i = "--data.init_args.ivif.init_args."
    return [
        "fit",
        "--config", str(REPO / "experiments" / "ivif.yaml"),
        "--config", str(REPO / "experiments" / "ablations" / "no_transfer.yaml"),
        "--config", str(REPO / "experiments" / "trainer" / "cpu.yaml"),
        "--config", str(REPO / "experiments" / "loggers" / logger_overlay),
        "--trainer.default_root_dir", str(root),
        "--trainer.logger.init_args.save_dir", str(root / "logs"),
        "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--model.init_args.source_ckpt", "null", "--model.init_args.net", json.dumps(TINY_NET),
        "--model.init_args.val_metrics", f"[{','.join(METRICS)}]", "--model.init_args.warmup_steps", "1",
        f"{i}crop_size", "32", f"{i}batch_size", "2", f"{i}num_workers", "0", f"{i}default_train_size", "4",
        f"{i}default_image_size", "40", f"{i}val_size", str(TEST_PAIRS),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> tuple[Path, pl.Trainer]:
    root = tmp_path_factory.mktemp("wandb_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        cli = stfuse(
            [
                *_tiny_ivif_args(root, "wandb.yaml"),
                "--trainer.logger.init_args.name",
                "tiny-run",
                "--trainer.logger.init_args.tags",
                "[unit,offline]",
                "--trainer.logger.init_args.project",
                "stfuse-tests",
                "--trainer.logger.init_args.log_model",
                "true",
            ]
        )
        cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        cli.trainer.logger.experiment.finish()
        # finish() returns before the W&B service has written every record; teardown waits for it
        # (and resets the process-wide W&B state for the tests after this one).
        wandb.teardown()
    runs = find_offline_runs(root / "logs")
    assert runs and read_offline_run(runs[0]).finished, "the offline run has no exit record"
    return root, cli.trainer


def test_offline_run_is_named_and_tagged_from_config(offline_run):
    root, _ = offline_run
    runs = find_offline_runs(root / "logs")
    assert len(runs) == 1 and runs[0].name.startswith("offline-run-")
    run = read_offline_run(runs[0])
    assert run.name == "tiny-run"
    assert run.project == "stfuse-tests"
    assert set(run.tags) == {"unit", "offline"}


def test_whole_resolved_cli_config_reaches_wandb(offline_run):
    root, trainer = offline_run
    run = read_offline_run(find_offline_runs(root / "logs")[0])
    config = run.config
    assert config["trainer"]["max_epochs"] == 1
    assert config["trainer"]["default_root_dir"] == str(root)
    assert config["model"]["class_path"] == "stfuse.stages.IVIFTransferStage"
    assert config["model"]["init_args"]["transfer"] is False
    assert config["data"]["init_args"]["ivif"]["init_args"]["crop_size"] == 32
    assert config["seed_everything"] == 0
    assert config["launch"]["world_size"] == 1 and config["launch"]["launcher"] == "local"
    assert "config" not in config, "the list of --config files is not a setting"
    # Lightning's own hyperparameters (the stage's init args) are there too.
    assert config["guidance"] == "none"


def test_loss_terms_and_epoch_metrics_are_logged(offline_run):
    root, _ = offline_run
    run = read_offline_run(find_offline_runs(root / "logs")[0])
    for key in (
        "train/loss",
        "train/loss_int",
        "train/loss_grad",
        "train/loss_ssim",
        "val/loss",
        "test/loss",
    ):
        assert key in run.summary, f"{key} missing; summary has {sorted(run.summary)}"
    for name in METRICS:
        assert f"val/{name}" in run.summary and f"test/{name}" in run.summary
    steps = [step for step, _ in run.series("train/loss")]
    assert steps == sorted(steps) and len(steps) >= 2, "train/loss is logged per step"
    assert len(run.series("val/loss")) == 1, "val/loss is one value per epoch"


def test_validation_grid_is_an_image_in_the_run(offline_run):
    root, _ = offline_run
    run = read_offline_run(find_offline_runs(root / "logs")[0])
    grid = run.summary["val/grid"]
    assert grid["_type"] == "images/separated" and grid["count"] == 1
    images = run.media("images")
    assert [p.name for p in images] and all(p.suffix == ".png" for p in images)
    assert (run.files / grid["filenames"][0]).is_file()
    from PIL import Image

    width, height = Image.open(images[0]).size
    assert width > 3 * height / 4, "IR | VIS | fused rows are wider than tall"


def test_test_metric_table_has_one_row_per_image_and_a_mean(offline_run):
    root, _ = offline_run
    run = read_offline_run(find_offline_runs(root / "logs")[0])
    columns, rows = run.table("test/per_image")
    assert columns == ["image", *METRICS]
    assert len(rows) == TEST_PAIRS + 1 and rows[-1][0] == "mean"
    names = [row[0] for row in rows[:-1]]
    assert len(set(names)) == TEST_PAIRS
    for j, name in enumerate(METRICS, start=1):
        mean = sum(row[j] for row in rows[:-1]) / TEST_PAIRS
        assert rows[-1][j] == pytest.approx(mean)
        assert run.summary[f"test/{name}"] == pytest.approx(mean, rel=1e-6), "table mean = logged test metric"
    with (root / "logs" / "test_per_image.csv").open() as handle:
        assert len(list(csv.reader(handle))) == TEST_PAIRS + 2


def test_checkpoints_are_logged_as_model_artifacts(offline_run):
    root, _ = offline_run
    run = read_offline_run(find_offline_runs(root / "logs")[0])
    assert any(artifact["type"] == "model" for artifact in run.artifacts), run.artifacts


def test_csv_logger_overlay_keeps_the_resolved_config_and_per_image_table(tmp_path):
    cli = stfuse(_tiny_ivif_args(tmp_path, "csv.yaml"))
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    log_dir = Path(cli.trainer.log_dir)
    hparams = yaml.safe_load((log_dir / "hparams.yaml").read_text())
    assert hparams["trainer"]["max_epochs"] == 1 and hparams["model"]["init_args"]["guidance"] == "none"
    series = read_csv_metrics(tmp_path / "logs")
    assert {"train/loss", "val/loss", "test/EN"} <= set(series)
    assert last_values(series)["test/EN"] == pytest.approx(float(cli.trainer.callback_metrics["test/EN"]))
    with (log_dir / "test_per_image.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", *METRICS] and rows[-1][0] == "mean" and len(rows) == TEST_PAIRS + 2


def test_disabled_mode_logs_nothing_to_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    wandb.teardown()  # the W&B singleton read WANDB_MODE when an earlier test started a run
    logger = pl.loggers.WandbLogger(project="stfuse-tests", save_dir=str(tmp_path))
    stage = IVIFTransferStage(
        transfer=False, guidance="none", net=TINY_NET, val_metrics=["EN"], warmup_steps=1
    )
    data = IVIFDataModule(
        crop_size=32, batch_size=2, num_workers=0, default_train_size=2, default_image_size=40, val_size=1
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(stage, datamodule=data)
    assert "val/EN" in trainer.callback_metrics
    assert not find_offline_runs(tmp_path), "disabled mode must not write a run"


# ---- pieces -----------------------------------------------------------------------------------------------
def test_record_reader_handles_blocks_and_rejects_foreign_files(tmp_path, offline_run):
    root, _ = offline_run
    wandb_file = next(find_offline_runs(root / "logs")[0].glob("run-*.wandb"))
    records = list(iter_wandb_records(wandb_file))
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds[0] == "header" and "run" in kinds and "history" in kinds
    truncated = tmp_path / "run-cut.wandb"
    truncated.write_bytes(wandb_file.read_bytes()[: wandb_file.stat().st_size // 2])
    assert 0 < len(list(iter_wandb_records(truncated))) < len(records), "a crashed run's tail is skipped"
    foreign = tmp_path / "run-x.wandb"
    foreign.write_bytes(b"LEVELDB" + struct.pack("<IHB", 0, 0, 0))
    with pytest.raises(ValueError, match="W&B"):
        list(iter_wandb_records(foreign))


def test_metric_table_names_rows_by_index_when_names_do_not_match():
    with pytest.warns(UserWarning, match="naming rows by index"):
        columns, rows = metric_table(["only-one"], {"EN": [1.0, 3.0]})
    assert columns == ["image", "EN"]
    assert rows == [["image_00000", 1.0], ["image_00001", 3.0], ["mean", 2.0]]
    with pytest.raises(ValueError, match="differ in length"):
        metric_table(["a"], {"EN": [1.0], "SF": [1.0, 2.0]})


def test_fetch_wandb_runs_filters_by_tags(monkeypatch):
    seen = {}

    class FakeRun:
        name, id, tags, summary, config = "full_stfuse", "abc", ["ablation"], {"test/EN": 6.1}, {"seed": 0}

    class FakeApi:
        def runs(self, path, filters=None):
            seen.update(path=path, filters=filters)
            return [FakeRun()]

    monkeypatch.setattr(wandb, "Api", FakeApi)
    runs = run_reader.fetch_wandb_runs("me/stfuse", tags=["ablation", "v2"])
    assert seen == {"path": "me/stfuse", "filters": {"$and": [{"tags": "ablation"}, {"tags": "v2"}]}}
    assert runs == [
        {
            "name": "full_stfuse",
            "id": "abc",
            "tags": ["ablation"],
            "summary": {"test/EN": 6.1},
            "config": {"seed": 0},
        }
    ]
