"""Export a fusion network to ONNX with dynamic batch, height and width.

The graph is captured by ``torch.export`` (``torch.onnx.export(..., dynamo=True)``, which needs
``onnxscript``) with batch, height and width as symbolic sizes: the network's internal padding to its
downsample factor becomes shape arithmetic in the graph (a ``Pad`` whose amounts are computed from the
input's size), so one graph serves every size. The example input is 2×1×61×75: ``torch.export`` specialises
sizes 0 and 1, and odd sides make the trace go through the padding. Every export is then checked against the
eager network on several sizes (odd and stride-aligned) in ONNX Runtime and refused if they differ.

TorchScript export was removed: torch deprecates ``torch.jit.trace``/``save``/``load``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from stfuse.inference.options import EXPORT_FORMATS, MIN_ONNX_OPSET

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "check_export",
    "check_opset",
    "export_network",
    "load_exported",
    "run_exported",
]

#: sizes the exported graph is compared on: odd (padding) and stride-aligned (no padding) shapes.
CHECK_SIZES: tuple[tuple[int, int, int], ...] = ((1, 37, 53), (2, 91, 67), (1, 64, 48))
_EXAMPLE_SIZE = (2, 1, 61, 75)  # N = 2: torch.export specialises 0 and 1; 61 and 75 are odd (padding)


class ExportError(RuntimeError):
    """Export failed, or the exported graph does not reproduce the eager network."""


class _FusionGraph(nn.Module):
    """Positional (ir, vi) → fused, without the ``return_features`` option, for a clean exported signature."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self.net(ir, vi)


def _check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")


def check_opset(opset: int) -> None:
    """Refuse an opset this exporter cannot write: below :data:`MIN_ONNX_OPSET`, or newer than the installed
    ``onnx`` knows (the exporter would otherwise fall back to another opset and say so only in a log)."""
    if not isinstance(opset, int) or isinstance(opset, bool):
        raise ValueError(f"ONNX opset must be an integer, got {opset!r}")
    if opset < MIN_ONNX_OPSET:
        raise ValueError(
            f"ONNX opset {opset}: the torch.export-based exporter writes opset {MIN_ONNX_OPSET} or newer"
        )
    try:
        import onnx
    except ImportError:
        return  # _export_onnx names the missing extra
    newest = int(onnx.defs.onnx_opset_version())
    if opset > newest:
        raise ValueError(
            f"ONNX opset {opset}: the installed onnx {onnx.__version__} knows opsets up to {newest}; "
            f"use {MIN_ONNX_OPSET} to {newest}"
        )


def _written_opset(path: Path) -> int | None:
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    return next((int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def _temporary_beside(out: Path) -> Path:
    """A temporary file in ``out``'s folder, renamed over ``out`` once the export is verified."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    return Path(temp_name)


@contextlib.contextmanager
def _quiet_torch_onnx() -> Iterator[None]:
    """The exporter logs warnings that say nothing about this graph (e.g. that torchvision's ops are skipped)
    and torch's own deprecations from inside ``torch.export``; the eager comparison is the check that counts."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_onnx(graph: nn.Module, path: Path, opset: int) -> None:
    try:
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "ONNX export needs onnx and onnxscript (and onnxruntime for the check): pip install -e '.[onnx]'"
        ) from error
    example = (torch.rand(*_EXAMPLE_SIZE), torch.rand(*_EXAMPLE_SIZE))
    dims = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    with torch.no_grad(), _quiet_torch_onnx():
        torch.onnx.export(
            graph,
            example,
            str(path),
            dynamo=True,
            dynamic_shapes=(dims, dims),
            opset_version=opset,
            input_names=["ir", "vi"],
            output_names=["fused"],
            external_data=False,  # one self-contained file (external data would name the temporary file)
            verbose=False,
        )


def export_network(
    net: nn.Module,
    out: str | os.PathLike[str],
    fmt: str = "onnx",
    opset: int = MIN_ONNX_OPSET,
    check: bool = True,
    atol: float = 1e-4,
) -> Path:
    """Export ``net`` to ``out`` (written atomically) and, with ``check``, verify it against eager.

    The graph takes ``ir`` and ``vi`` N×1×H×W float32 in [0, 1] and returns ``fused`` N×1×H×W; N, H and W
    are dynamic (H and W at least the network's downsample factor, which reflect padding needs).
    """
    _check_format(fmt)
    check_opset(opset)
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number ≥ 0, got {atol!r}")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give the file to write, e.g. {out / 'stfuse.onnx'}")
    graph = _FusionGraph(net).to("cpu").float().eval()
    temp = _temporary_beside(out)
    try:
        _export_onnx(graph, temp, opset)
        written = _written_opset(temp)
        if written is not None and written != opset:
            raise ExportError(f"{out}: asked for ONNX opset {opset}, the exporter wrote opset {written}")
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
    path: str | os.PathLike[str], fmt: str = "onnx"
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A callable running an exported graph on CPU tensors in ONNX Runtime."""
    _check_format(fmt)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run_onnx(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["fused"], {"ir": ir.numpy(), "vi": vi.numpy()})[0])

    return run_onnx


def run_exported(path: str | os.PathLike[str], fmt: str, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Run an exported graph once (see :func:`load_exported` to run it many times)."""
    return load_exported(path, fmt)(ir, vi)


def check_export(
    net: nn.Module,
    path: str | os.PathLike[str],
    fmt: str = "onnx",
    atol: float = 1e-4,
    name: str | os.PathLike[str] | None = None,
) -> dict[tuple[int, int, int], float]:
    """Max abs difference between eager and exported outputs on :data:`CHECK_SIZES`; raises above ``atol``.

    The graph is checked with onnxruntime when it is installed, otherwise only validated by ``onnx``.
    ``name`` is the file named in errors (the final path while ``path`` is still a temporary file).
    """
    name = name if name is not None else path
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
    if not worst <= atol:  # NaN (non-finite outputs) fails too
        raise ExportError(
            f"{name}: exported {fmt} graph differs from eager by {worst:.3g} (> {atol:g}): {differences}"
        )
    return differences
