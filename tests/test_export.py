"""``stfuse export``: ONNX graphs with dynamic N×H×W that reproduce the eager network in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stfuse.inference.cli import build_export_parser, export_main
from stfuse.inference.export import ExportError, export_network, load_exported
from stfuse.models import STFuseNet
from stfuse.models.checkpoint import save_network

TINY = {"preset": "tiny", "head_channels": 4}
ODD_SIZES = [(1, 37, 53), (2, 91, 67)]


@pytest.fixture(scope="module")
def tiny_net() -> STFuseNet:
    torch.manual_seed(0)
    return STFuseNet(**TINY).eval()


def _max_difference(net: torch.nn.Module, path: Path, fmt: str) -> float:
    run = load_exported(path, fmt)
    worst = 0.0
    generator = torch.Generator().manual_seed(1)
    for n, height, width in ODD_SIZES + [(1, 48, 64)]:
        ir = torch.rand(n, 1, height, width, generator=generator)
        vi = torch.rand(n, 1, height, width, generator=generator)
        with torch.no_grad():
            expected = net(ir, vi)
        got = run(ir, vi)
        assert got.shape == expected.shape == (n, 1, height, width)
        worst = max(worst, float((got - expected).abs().max()))
    return worst


def test_onnx_export_of_the_base_preset_matches_eager_in_onnxruntime(tmp_path: Path) -> None:
    """The base preset's blocks; the export CLI test below checks the tiny network's graph."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = STFuseNet(preset="base", channels=8, num_blocks=2, heads=2, head_channels=4).eval()
    path = export_network(net, tmp_path / "base.onnx", "onnx", check=False)
    assert _max_difference(net, path, "onnx") <= 1e-4


def test_export_cli_writes_a_verified_graph_and_refuses_bad_input(
    tiny_net: STFuseNet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    ckpt = save_network(tiny_net, tmp_path / "tiny.safetensors")
    out = tmp_path / "graphs" / "tiny.onnx"
    assert export_main(["--ckpt", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["tiny.onnx"]  # no external data
    assert _max_difference(tiny_net, out, "onnx") <= 1e-4
    capsys.readouterr()

    assert export_main(["--ckpt", str(ckpt), "--format", "onnx", "--out", str(ckpt)]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    assert export_main(["--ckpt", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "junk.ckpt: not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert export_main(["--ckpt", str(ckpt), "--out", str(tmp_path / "x.onnx"), "--opset", "17"]) == 2
    assert "opset 17: the torch.export-based exporter writes opset 18 or newer" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_torchscript_is_an_unknown_export_format(
    tiny_net: STFuseNet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = save_network(tiny_net, tmp_path / "tiny.safetensors")
    with pytest.raises(SystemExit) as exited:
        export_main(["--ckpt", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "t.pt")])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(
        "stfuse export: error: argument --format: invalid choice: 'torchscript' (choose from "
    )
    with pytest.raises(ValueError, match="unknown export format 'torchscript'; use one of onnx"):
        export_network(tiny_net, tmp_path / "t.pt", "torchscript")
    assert "torchscript" not in build_export_parser().format_help()
    assert not (tmp_path / "t.pt").exists()


class ExportDivergentNet(torch.nn.Module):
    """Averages in eager but takes the maximum while being exported: a graph that does not reproduce eager."""

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting():
            return torch.maximum(ir, vi)
        return (ir + vi) / 2


def test_an_export_that_does_not_reproduce_eager_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    with pytest.raises(ExportError, match=r"bad\.onnx: exported onnx graph differs from eager"):
        export_network(ExportDivergentNet(), tmp_path / "bad.onnx")
    assert not any(tmp_path.iterdir())  # nothing half-written left behind
