"""Export a fusion network to ONNX or TorchScript with dynamic batch, height and width.

Both formats are produced by tracing. The network pads internally to its stride, so the trace must go
through the padding branch: the example input has a height and width that are *not* multiples of the
stride, which makes the pad amounts traced shape arithmetic rather than constants. Every export is then
checked against the eager network on several sizes (odd and stride-aligned) and refused if they differ.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

__all__ = ["EXPORT_FORMATS", "ExportError", "check_export", "export_network", "load_exported", "run_exported"]

EXPORT_FORMATS = ("onnx", "torchscript")
#: sizes the exported graph is compared on: odd (padding) and stride-aligned (no padding) shapes.
CHECK_SIZES: tuple[tuple[int, int, int], ...] = ((1, 37, 53), (2, 91, 67), (1, 64, 48))
_TRACE_SIZE = (1, 1, 61, 75)  # odd sides: 61 % 4 and 75 % 4 ≠ 0, and neither is a multiple of 2


class ExportError(RuntimeError):
    """Export failed, or the exported graph does not reproduce the eager network."""


class _FusionGraph(nn.Module):
    """Positional (ir, vi) → fused, without the ``return_features`` option, for a clean exported signature."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self.net(ir, vi)


def _temporary_beside(out: Path) -> Path:
    """A temporary file in ``out``'s folder, renamed over ``out`` once the export is verified."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    return Path(temp_name)


def export_network(
    net: nn.Module,
    out: str | os.PathLike[str],
    fmt: str = "onnx",
    opset: int = 17,
    check: bool = True,
    atol: float = 1e-4,
) -> Path:
    """Export ``net`` to ``out`` (written atomically) and, with ``check``, verify it against eager.

    The graph takes ``ir`` and ``vi`` N×1×H×W float32 in [0, 1] and returns ``fused`` N×1×H×W; N, H and W
    are dynamic.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    graph = _FusionGraph(net).to("cpu").float().eval()
    example = (torch.rand(*_TRACE_SIZE), torch.rand(*_TRACE_SIZE))
    temp = _temporary_beside(out)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the shape checks, which are expected
            if fmt == "onnx":
                dynamic = {0: "batch", 2: "height", 3: "width"}
                torch.onnx.export(
                    graph,
                    example,
                    str(temp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=["ir", "vi"],
                    output_names=["fused"],
                    dynamic_axes={"ir": dynamic, "vi": dynamic, "fused": dynamic},
                )
            else:
                traced = torch.jit.trace(graph, example, check_trace=False)
                torch.jit.save(traced, str(temp))
        if check:
            check_export(graph, temp, fmt, atol=atol, name=out)
        os.chmod(temp, 0o644)  # mkstemp creates 0600
        os.replace(temp, out)
    except ExportError:
        temp.unlink(missing_ok=True)
        raise
    except Exception as error:
        temp.unlink(missing_ok=True)
        raise ExportError(f"{out}: {fmt} export failed: {error}") from error
    return out


def load_exported(
    path: str | os.PathLike[str], fmt: str
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A callable running an exported graph on CPU tensors: onnxruntime for ONNX, TorchScript otherwise."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run_onnx(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(["fused"], {"ir": ir.numpy(), "vi": vi.numpy()})[0])

        return run_onnx
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run_torchscript(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(ir, vi)

    return run_torchscript


def run_exported(path: str | os.PathLike[str], fmt: str, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Run an exported graph once (see :func:`load_exported` to run it many times)."""
    return load_exported(path, fmt)(ir, vi)


def check_export(
    net: nn.Module,
    path: str | os.PathLike[str],
    fmt: str,
    atol: float = 1e-4,
    name: str | os.PathLike[str] | None = None,
) -> dict[tuple[int, int, int], float]:
    """Max abs difference between eager and exported outputs on :data:`CHECK_SIZES`; raises above ``atol``.

    An ONNX file is checked with onnxruntime when it is installed, otherwise only its graph is validated.
    ``name`` is the file named in errors (the final path while ``path`` is still a temporary file).
    """
    name = name if name is not None else path
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            try:
                import onnx

                onnx.checker.check_model(str(path))
            except ImportError:
                pass
            return {}
    run = load_exported(path, fmt)
    generator = torch.Generator().manual_seed(0)
    differences: dict[tuple[int, int, int], float] = {}
    for n, height, width in CHECK_SIZES:
        ir = torch.rand(n, 1, height, width, generator=generator)
        vi = torch.rand(n, 1, height, width, generator=generator)
        with torch.no_grad():
            expected = net(ir, vi)
        got = run(ir, vi)
        if got.shape != expected.shape:
            raise ExportError(
                f"{name}: exported {fmt} graph returns shape {tuple(got.shape)} for a {n}×1×{height}×{width} input, "
                f"eager returns {tuple(expected.shape)}"
            )
        differences[(n, height, width)] = float((got - expected).abs().max())
    worst = max(differences.values())
    if worst > atol:
        raise ExportError(
            f"{name}: exported {fmt} graph differs from eager by {worst:.3g} (> {atol:g}): {differences}"
        )
    return differences
