"""Safe checkpoint saving and loading: every accepted format, and refusals that name the file and the problem."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from stfuse.models import PRESETS, STFuseNet
from stfuse.models import checkpoint_readers as checkpoint_readers_module
from stfuse.models.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    NetworkState,
    checkpoint_readers,
    load_network,
    load_network_with_metadata,
    read_network_state,
    register_checkpoint_reader,
    save_network,
)
from stfuse.stages.checkpoint_format import read_stage_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def small_net() -> STFuseNet:
    torch.manual_seed(0)
    return STFuseNet(preset="small").eval()


def _same_output(a: STFuseNet, b: STFuseNet) -> bool:
    x, y = torch.rand(2, 1, 1, 23, 31).unbind(0)
    with torch.no_grad():
        return torch.equal(a(x, y), b(x, y))


def test_safetensors_round_trip_keeps_weights_config_and_metadata(
    tmp_path: Path, small_net: STFuseNet
) -> None:
    path = save_network(small_net, tmp_path / "net.safetensors", {"stage": "mfif", "epoch": 7, "val": [0.5]})
    net, config, metadata = load_network_with_metadata(path)
    assert config == small_net.config
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["stage"] == "mfif" and metadata["epoch"] == 7 and metadata["val"] == [0.5]
    assert "stfuse_version" in metadata
    assert not net.training
    assert _same_output(net, small_net)
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]  # no temp file left behind


def test_save_refuses_reserved_metadata_and_networks_without_config(
    tmp_path: Path, small_net: STFuseNet
) -> None:
    with pytest.raises(CheckpointError, match="reserved"):
        save_network(small_net, tmp_path / "n.safetensors", {"config": "x"})
    with pytest.raises(CheckpointError, match="no `config`"):
        save_network(torch.nn.Conv2d(1, 1, 3), tmp_path / "n.safetensors")
    with pytest.raises(CheckpointError, match=r"\.safetensors"):
        save_network(small_net, tmp_path / "n.pt")


def test_lightning_checkpoint_loads_net_and_ignores_teacher(tmp_path: Path, small_net: STFuseNet) -> None:
    teacher = STFuseNet(preset="small")
    state = {f"net.{k}": v for k, v in small_net.state_dict().items()}
    state |= {f"teacher.{k}": v for k, v in teacher.state_dict().items()}
    ckpt = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": state,
        "hyper_parameters": {"net": small_net.config, "lr": 1e-3},
        "optimizer_states": [],
    }
    torch.save(ckpt, tmp_path / "stage.ckpt")
    net, config, metadata = load_network_with_metadata(tmp_path / "stage.ckpt")
    assert config == small_net.config
    assert metadata["epoch"] == 3 and metadata["global_step"] == 120
    assert _same_output(net, small_net)


def test_real_lightning_trainer_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    import pytorch_lightning as pl

    class TinyStage(pl.LightningModule):
        def __init__(self, net: dict) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = STFuseNet(**net)

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            return self.net(batch[0], batch[0]).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(2, 1, 16, 16)), batch_size=2)
    stage = TinyStage({"preset": "small", "channels": 8})
    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(stage, data)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    net = load_network(tmp_path / "last.ckpt", expected_config={"preset": "small", "channels": 8})
    assert net.config["channels"] == 8
    assert _same_output(net, stage.net.eval())


def test_plain_state_dict_with_given_or_inferred_config(tmp_path: Path, small_net: STFuseNet) -> None:
    torch.save(small_net.state_dict(), tmp_path / "weights.pth")
    assert _same_output(load_network(tmp_path / "weights.pth"), small_net)  # matched to the small preset
    assert _same_output(load_network(tmp_path / "weights.pth", config=small_net.config), small_net)

    torch.save({"config": small_net.config, "state_dict": small_net.state_dict()}, tmp_path / "bundle.pt")
    assert _same_output(load_network(tmp_path / "bundle.pt"), small_net)

    custom = STFuseNet(preset="small", channels=8)
    torch.save(custom.state_dict(), tmp_path / "custom.pt")
    with pytest.raises(CheckpointError, match=r"custom\.pt: a bare state dict holds no network config"):
        load_network(tmp_path / "custom.pt")
    assert load_network(tmp_path / "custom.pt", config=custom.config).config["channels"] == 8


def test_wrong_preset_names_the_differing_keys(tmp_path: Path, small_net: STFuseNet) -> None:
    path = save_network(small_net, tmp_path / "small.safetensors")
    with pytest.raises(CheckpointError) as info:
        load_network(path, expected_config={"preset": "base"})
    message = str(info.value)
    assert str(path) in message
    assert "preset: checkpoint has 'small', expected 'base'" in message
    small, base = PRESETS["small"]["channels"], PRESETS["base"]["channels"]
    assert f"; channels: checkpoint has {small}, expected {base}" in message
    load_network(path, expected_config={"preset": "small"})  # defaults filled in: equal


def test_weights_that_do_not_fit_the_config_are_summarised(tmp_path: Path, small_net: STFuseNet) -> None:
    torch.save({"config": {"preset": "base"}, "state_dict": small_net.state_dict()}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match=r"mixed\.pt: weights do not fit") as info:
        load_network(tmp_path / "mixed.pt")
    assert "missing keys" in str(info.value) and "shape mismatches" in str(info.value)
    small, base = PRESETS["small"]["channels"], PRESETS["base"]["channels"]
    assert f"({small}, {small}, 3, 3) vs ({base}, {base}, 3, 3)" in str(info.value)


class _WritesMarker:
    """Unpickling this would create a file: the canary for unsafe loading."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


class _RunsShell:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_WritesMarker, _RunsShell])
@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_without_running(
    tmp_path: Path, small_net: STFuseNet, payload: type, zip_format: bool
) -> None:
    marker = tmp_path / "pwned"
    evil = {"state_dict": small_net.state_dict(), "hyper_parameters": {"net": payload(str(marker))}}
    path = tmp_path / "evil.ckpt"
    torch.save(evil, path, _use_new_zipfile_serialization=zip_format)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r"evil\.ckpt: refused to load") as info:
        load_network(path)
    assert not marker.exists()
    assert "arbitrary code" in str(info.value)


def test_missing_and_corrupt_files_are_reported(tmp_path: Path, small_net: STFuseNet) -> None:
    with pytest.raises(CheckpointError, match=r"absent\.ckpt: checkpoint file not found"):
        load_network(tmp_path / "absent.ckpt")
    (tmp_path / "text.pt").write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"text\.pt: not a readable PyTorch checkpoint"):
        load_network(tmp_path / "text.pt")

    good = save_network(small_net, tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: not a readable safetensors file"):
        load_network(tmp_path / "cut.safetensors")

    torch.save(small_net.state_dict(), tmp_path / "ok.pt")
    blob = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable PyTorch checkpoint"):
        load_network(tmp_path / "cut.pt")

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: expected a dict of weights"):
        load_network(tmp_path / "list.pt")
    torch.save({"model": small_net.state_dict(), "step": 3}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd\.pt: no state dict found"):
        load_network(tmp_path / "odd.pt")


def test_newer_format_version_is_refused(tmp_path: Path, small_net: STFuseNet) -> None:
    path = save_network(small_net, tmp_path / "n.safetensors")
    blob = path.read_bytes()
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + size])
    header["__metadata__"]["format_version"] = str(FORMAT_VERSION + 1)
    encoded = json.dumps(header).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + blob[8 + size :])
    with pytest.raises(CheckpointError, match="format version 2"):
        load_network(path)


def test_read_network_state_strips_stage_prefix(tmp_path: Path, small_net: STFuseNet) -> None:
    state = {f"net.{k}": v for k, v in small_net.state_dict().items()}
    state |= {"teacher.x": torch.zeros(1)}
    torch.save(state, tmp_path / "stage_state.pt")
    weights, config, _ = read_network_state(tmp_path / "stage_state.pt")
    assert config is None
    assert set(weights) == set(small_net.state_dict())


# ---- checkpoint readers: models/ knows no stage -------------------------------------------------------
@pytest.fixture()
def readers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh reader registry (the entry points are loaded again into it), undone after the test."""
    monkeypatch.setattr(checkpoint_readers_module, "_readers", {})
    monkeypatch.setattr(checkpoint_readers_module, "_entry_points_loaded", False)


def _stage_checkpoint(path: Path, net: STFuseNet) -> Path:
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": state, "hyper_parameters": {"net": net.config}}, path)
    return path


def test_a_registered_reader_reads_its_own_layout(
    readers: None, tmp_path: Path, small_net: STFuseNet
) -> None:
    def read_zoo_layout(path: Path, checkpoint: Mapping[str, Any]) -> NetworkState | None:
        if checkpoint.get("format") != "zoo":
            return None
        return dict(checkpoint["weights"]), dict(checkpoint["arch"]), {"source": "zoo"}

    torch.save(
        {"format": "zoo", "weights": small_net.state_dict(), "arch": small_net.config}, tmp_path / "z.pt"
    )
    with pytest.raises(CheckpointError, match=r"z\.pt: no state dict found"):
        load_network(tmp_path / "z.pt")
    register_checkpoint_reader("zoo", read_zoo_layout)
    net, config, metadata = load_network_with_metadata(tmp_path / "z.pt")
    assert config == small_net.config and metadata == {"source": "zoo"}
    assert _same_output(net, small_net)
    # the other readers still run on the dicts this one declines
    assert _same_output(load_network(_stage_checkpoint(tmp_path / "stage.ckpt", small_net)), small_net)


def test_a_plain_bundle_with_bookkeeping_keys_still_loads(tmp_path: Path, small_net: STFuseNet) -> None:
    path = tmp_path / "bundle.pt"
    torch.save({"state_dict": small_net.state_dict(), "config": small_net.config, "epoch": 4}, path)
    assert _same_output(load_network(path), small_net)


def test_the_stage_reader_comes_from_the_entry_point_group(readers: None) -> None:
    assert checkpoint_readers()["stage"] is read_stage_checkpoint


def test_a_stage_checkpoint_without_its_reader_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small_net: STFuseNet
) -> None:
    monkeypatch.setattr(checkpoint_readers_module, "_readers", {})
    monkeypatch.setattr(
        checkpoint_readers_module, "_entry_points_loaded", True
    )  # as if setup.cfg's group were absent
    path = _stage_checkpoint(tmp_path / "stage.ckpt", small_net)
    with pytest.raises(CheckpointError) as info:
        load_network(path)
    assert str(info.value).startswith(
        f"{path}: no checkpoint reader recognised this file; is stfuse installed (pip install -e .)?"
    )


def test_models_know_no_stage_checkpoint_layout() -> None:
    for source in (REPO / "src" / "stfuse" / "models").glob("*.py"):
        text = source.read_text()
        for word in (
            "hyper_parameters",
            "teacher.",
            "from stfuse.stages",
            "import stfuse.stages",
            "lightning",
        ):
            assert word not in text, (
                f"{source.name} mentions {word!r}: stage checkpoints belong to stfuse.stages"
            )


def test_loading_a_stage_checkpoint_imports_no_lightning(tmp_path: Path, small_net: STFuseNet) -> None:
    path = _stage_checkpoint(tmp_path / "stage.ckpt", small_net)
    script = (
        "import json, sys\n"
        "import stfuse.stages.checkpoint_format\n"
        "from stfuse.models.checkpoint import load_network\n"
        f"load_network({str(path)!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}
    assert not loaded & {"pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "wandb"}
    assert "stfuse.stages.checkpoint_format" in json.loads(result.stdout.splitlines()[-1])
