"""``stfuse export``: ONNX and TorchScript graphs with dynamic N×H×W that reproduce the eager network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stfuse.inference.cli import export_main
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


def test_torchscript_export_matches_eager_on_odd_sizes(tiny_net: STFuseNet, tmp_path: Path) -> None:
    path = export_network(tiny_net, tmp_path / "tiny.pt", "torchscript", check=False)
    assert _max_difference(tiny_net, path, "torchscript") <= 1e-4


@pytest.mark.parametrize("preset", ["small", "base"])
def test_onnx_export_matches_eager_in_onnxruntime(preset: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = STFuseNet(
        **(
            TINY
            if preset == "small"
            else {"preset": "base", "channels": 8, "num_blocks": 2, "heads": 2, "head_channels": 4}
        )
    ).eval()
    path = export_network(net, tmp_path / "tiny.onnx", "onnx", check=False)
    assert _max_difference(net, path, "onnx") <= 1e-4


def test_export_cli_writes_a_verified_graph_and_refuses_bad_input(
    tiny_net: STFuseNet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = save_network(tiny_net, tmp_path / "tiny.safetensors")
    out = tmp_path / "graphs" / "tiny.pt"
    assert export_main(["--ckpt", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["tiny.pt"]

    assert export_main(["--ckpt", str(ckpt), "--format", "torchscript", "--out", str(ckpt)]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    assert (
        export_main(
            [
                "--ckpt",
                str(tmp_path / "junk.ckpt"),
                "--out",
                str(tmp_path / "x.pt"),
                "--format",
                "torchscript",
            ]
        )
        == 2
    )
    assert "junk.ckpt: not a readable PyTorch checkpoint" in capsys.readouterr().err


class ShapeBakingNet(torch.nn.Module):
    """Scales by a Python int taken from the width, which the tracer freezes: right in eager, wrong exported."""

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return (ir + vi) / 2 * (int(ir.shape[-1]) % 7) / 7


def test_an_export_that_does_not_reproduce_eager_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"bad\.pt: exported torchscript graph differs from eager"):
        export_network(ShapeBakingNet(), tmp_path / "bad.pt", "torchscript")
    assert not any(tmp_path.iterdir())  # nothing half-written left behind
