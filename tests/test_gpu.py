"""CUDA against the CPU: the fuser (with tiling and ``torch.compile``), the metric suite, the losses, both
training stages in ``bf16-mixed`` through ``make train-mfif GPUS=1`` / ``make transfer-ivif GPUS=1``, GPU
checkpoints read by a CPU-only process, and a DDP start-up with the NCCL backend on one device.

Every test is marked ``gpu`` and skipped where ``torch.cuda.is_available()`` is false. Run them with
``pytest -m gpu tests/test_gpu.py``; ``make gpu-check`` (experiments/gpu_check.py) runs them first.

Tolerances:

* fp32 comparisons turn TensorFloat-32 off (:func:`strict_fp32`): PyTorch lets cuDNN run fp32 convolutions
  in TF32 by default, which keeps only 10 mantissa bits of each input. With TF32 off, CUDA and CPU agree
  to 1e-4 on the fused image (images in [0, 1]).
* bf16, and fp32 under the default TF32 setting, are held to :data:`LOW_PRECISION_MAX` /
  :data:`LOW_PRECISION_MEAN` against the CPU fp32 result. On the CPU, bf16 autocast moves the packaged model's
  output by at most 0.006 and 0.001 on average on synthetic 240×320 scenes; the bounds are 5× and 4× that.
  TF32 keeps more mantissa bits than bf16 (10 against 7), so it must fit the same bounds.
* metrics are computed in float64 (float32 only where a reference code base does), so CUDA and CPU agree to
  a relative 1e-5.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from data_modules.io import rgb_to_y_cbcr
from data_modules.synthetic_scenes import make_ivif_pair
from stfuse.inference.fuser import Fuser
from stfuse.models import STFuseNet

CUDA = torch.cuda.is_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not CUDA, reason="needs a CUDA device: torch.cuda.is_available() is False"),
]

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
TINY_NET = json.dumps({"preset": "tiny"})
FP32_ATOL = 1e-4
LOW_PRECISION_MAX = 0.03
LOW_PRECISION_MEAN = 4e-3
METRIC_RTOL, METRIC_ATOL = 1e-5, 1e-7


# ---- helpers ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """Turn TF32 off for cuDNN convolutions and cuBLAS matrix products, then restore the settings."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch ≥ 2.9: the per-backend API
        saved = (conv.fp32_precision, matmul.fp32_precision)
        conv.fp32_precision, matmul.fp32_precision = "ieee", "ieee"
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
    else:
        saved_flags = (torch.backends.cudnn.allow_tf32, matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = False, False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved_flags


def scenes(count: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic IR/VIS scenes (the embedded default data): IR N×1×H×W, visible Y N×1×H×W, visible RGB."""
    pairs = [make_ivif_pair(seed, height, width) for seed in range(count)]
    ir = torch.stack([p[0] for p in pairs])
    rgb = torch.stack([p[1] for p in pairs])
    return ir, rgb_to_y_cbcr(rgb)[0], rgb


def packaged(device: str, **kwargs: Any) -> Fuser:
    """A fresh Fuser over the packaged weights (Fuser moves its network in place, so never share one)."""
    return Fuser.from_checkpoint(None, device=device, **kwargs)


def tiny_net(seed: int = 0) -> STFuseNet:
    torch.manual_seed(seed)
    return STFuseNet(preset="tiny").eval()


def difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a.float().cpu() - b.float().cpu()).abs()
    return float(d.max()), float(d.mean())


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child `stfuse`: this checkout first on the path, and tests/ for the callback."""
    path = [str(REPO / "tests"), str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "WANDB_MODE": "disabled",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        **extra,
    }


class RecordRun(pl.Callback):
    """Written into a training subprocess (``--trainer.callbacks+=test_gpu.RecordRun``): what the run
    actually used (strategy, process group, precision, device, the dtype convolutions ran in) and every loss."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.record: dict[str, Any] = {"losses": []}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import torch.distributed as dist

        initialised = dist.is_available() and dist.is_initialized()
        self.record.update(
            strategy=type(trainer.strategy).__name__,
            process_group=initialised,
            backend=str(dist.get_backend()) if initialised else None,
            world_size=trainer.world_size,
            precision=str(trainer.precision),
            device=str(pl_module.device),
        )

        def conv_dtype(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            self.record.setdefault("conv_output_dtype", str(output.dtype))

        # The network's first convolution: what autocast computes in (the output itself may be promoted
        # back to fp32 by an fp32 term, such as the average prior of the tiny preset).
        first_conv = next(m for m in pl_module.net.modules() if isinstance(m, torch.nn.Conv2d))
        self._hook = first_conv.register_forward_hook(conv_dtype)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.record["losses"].append(float(loss))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hook.remove()
        self.record["metrics"] = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.record["global_step"] = trainer.global_step
        if trainer.is_global_zero:
            Path(self.out).write_text(json.dumps(self.record, indent=2))


def _record_args(out: Path) -> list[str]:
    return ["--trainer.callbacks+=test_gpu.RecordRun", f"--trainer.callbacks.out={out}"]


def _assert_bf16_run(record: dict[str, Any], steps: int) -> None:
    assert record["precision"] == "bf16-mixed", record
    assert record["device"].startswith("cuda"), record
    assert record["conv_output_dtype"] == "torch.bfloat16", "bf16-mixed did not run the convolutions in bf16"
    assert len(record["losses"]) == steps and all(math.isfinite(v) for v in record["losses"]), record[
        "losses"
    ]
    logged = {k: v for k, v in record["metrics"].items() if k.startswith(("train/", "val/"))}
    assert logged and all(math.isfinite(v) for v in logged.values()), logged


# ---- the fuser --------------------------------------------------------------------------------------
def test_fuser_on_cuda_equals_the_cpu_in_fp32() -> None:
    ir, y, rgb = scenes(2, 240, 320)
    cpu = packaged("cpu").fuse_luminance(ir, y)
    with strict_fp32():
        gpu_fuser = packaged("cuda")
        on_cpu_inputs = gpu_fuser.fuse_luminance(ir, y)  # CPU tensors in, CPU tensors out
        on_cuda_inputs = gpu_fuser.fuse_luminance(ir.cuda(), y.cuda())
        colour_cpu = packaged("cpu").fuse((ir[0, 0] * 255).round().byte().numpy(), _uint8_hwc(rgb[0]))
        colour_gpu = gpu_fuser.fuse((ir[0, 0] * 255).round().byte().numpy(), _uint8_hwc(rgb[0]))
    assert on_cpu_inputs.device.type == "cpu" and on_cuda_inputs.device.type == "cuda"
    assert on_cpu_inputs.dtype == on_cuda_inputs.dtype == torch.float32
    for got in (on_cpu_inputs, on_cuda_inputs):
        worst, _ = difference(got, cpu)
        assert worst < FP32_ATOL, f"CUDA fp32 differs from the CPU by up to {worst:.2e}"
    # uint8 colour in and out: rounding may move a level where the float result sits on a .5 boundary
    levels = np.abs(colour_gpu.astype(int) - colour_cpu.astype(int))
    assert colour_gpu.shape == colour_cpu.shape and levels.max() <= 1


def _uint8_hwc(rgb: torch.Tensor):
    return (rgb.permute(1, 2, 0) * 255).round().byte().numpy()


@pytest.mark.parametrize(
    "precision,tf32", [("bf16", False), ("fp32", True)], ids=["bf16", "fp32-with-tf32-default"]
)
def test_fuser_in_low_precision_stays_within_the_stated_tolerance(precision: str, tf32: bool) -> None:
    ir, y, _ = scenes(3, 240, 320)
    reference = packaged("cpu").fuse_luminance(ir, y)
    context = contextlib.nullcontext() if tf32 else strict_fp32()
    with context:
        got = packaged("cuda", precision=precision).fuse_luminance(ir.cuda(), y.cuda())
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    worst, mean = difference(got, reference)
    assert worst < LOW_PRECISION_MAX and mean < LOW_PRECISION_MEAN, (
        f"{precision} on CUDA against fp32 on the CPU: max {worst:.4f}, mean {mean:.5f}"
    )


def test_tiled_fusion_on_cuda_equals_the_cpu() -> None:
    """Explicit tiles (several per batch) and automatic tiles above the pixel budget: the same tiles, the
    same blend, on either device (how close tiles come to one pass is tests/test_inference.py's concern)."""
    ir, y, _ = scenes(1, 300, 420)
    explicit = {"tile": 128, "tile_overlap": 32, "tiles_per_batch": 3}
    automatic = {"max_pixels": 200 * 200}
    cpu = {
        name: packaged("cpu", **o).fuse_luminance(ir, y)
        for name, o in (("explicit", explicit), ("automatic", automatic))
    }
    seen: list[tuple[int, int]] = []
    with strict_fp32():
        gpu = {}
        for name, options in (("explicit", explicit), ("automatic", automatic)):
            fuser = packaged("cuda", **options)
            fuser.net.register_forward_pre_hook(lambda m, inputs: seen.append(tuple(inputs[0].shape[-2:])))
            gpu[name] = fuser.fuse_luminance(ir.cuda(), y.cuda())
    assert seen and max(h * w for h, w in seen) <= 200 * 200, "the CUDA fuser ran a full-size pass"
    for name in cpu:
        assert gpu[name].shape == ir.shape and gpu[name].device.type == "cuda"
        worst, _ = difference(gpu[name], cpu[name])
        assert worst < FP32_ATOL, f"{name} tiles: CUDA fp32 differs from the CPU by up to {worst:.2e}"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_fuser_on_cuda_matches_eager(precision: str) -> None:
    eager = Fuser(tiny_net(), device="cuda", precision=precision)
    compiled = Fuser(tiny_net(), device="cuda", precision=precision, compile=True)
    bound = FP32_ATOL if precision == "fp32" else LOW_PRECISION_MAX
    with strict_fp32():
        for height, width in ((96, 128), (75, 100)):  # dynamic shapes; one not a multiple of the downsample
            ir, y, _ = scenes(2, height, width)
            expected = eager.fuse_luminance(ir.cuda(), y.cuda())
            got = compiled.fuse_luminance(ir.cuda(), y.cuda())
            assert got.shape == expected.shape == (2, 1, height, width)
            worst, _ = difference(got, expected)
            assert worst < bound, (
                f"compiled {precision} differs from eager by up to {worst:.2e} at {height}×{width}"
            )


# ---- metrics and losses -----------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["cddfuse", "tang", "vifb"])
def test_metric_suite_on_cuda_equals_the_cpu(preset: str) -> None:
    from stfuse.metrics import FusionMetrics, MetricSuite, resolve_metric_names

    ir, y, rgb = scenes(2, 176, 208)  # MS-SSIM needs at least 161 pixels a side
    fused = (0.6 * torch.maximum(ir, y) + 0.4 * y).clamp(0, 1)
    vi = rgb if preset == "vifb" else y  # vifb scores colour sources its own way
    names = resolve_metric_names("all", preset)
    cpu = MetricSuite(preset, names)(fused, ir, vi)
    gpu_suite = MetricSuite(preset, names)(fused.cuda(), ir.cuda(), vi.cuda())
    collection = FusionMetrics(preset, names).cuda()  # as a stage holds it on its device
    collection.update(fused.cuda(), ir.cuda(), vi.cuda())
    gpu_collection = collection.compute_per_image()
    wrong = []
    for name in names:
        for label, values in (("MetricSuite", gpu_suite[name]), ("FusionMetrics", gpu_collection[name])):
            if not torch.allclose(
                values.cpu(), cpu[name], rtol=METRIC_RTOL, atol=METRIC_ATOL, equal_nan=True
            ):
                wrong.append(f"{label} {name}: CUDA {values.tolist()} vs CPU {cpu[name].tolist()}")
    assert not wrong, f"{preset}: " + "; ".join(wrong)


def test_loss_functions_and_their_gradients_on_cuda_equal_the_cpu() -> None:
    from stfuse.losses import GuidanceLoss, IVIFFusionLoss, MFIFLoss, TransferObjective

    ir, y, _ = scenes(2, 64, 80)
    torch.manual_seed(0)
    fused = (0.5 * (ir + y) + 0.05 * torch.randn_like(ir)).clamp(0, 1)
    target = torch.maximum(ir, y)
    student = [torch.randn(2, 16, 32, 40), torch.randn(2, 8, 32, 40)]
    teacher = [f + 0.3 * torch.randn_like(f) for f in student]
    teacher_fused = (0.5 * (ir + y)).clamp(0, 1)

    def evaluate(device: str) -> dict[str, torch.Tensor]:
        f = fused.to(device).requires_grad_(True)
        a, b, gt, tf = (t.to(device) for t in (ir, y, target, teacher_fused))
        s = [t.to(device).requires_grad_(True) for t in student]
        t_feats = [t.to(device) for t in teacher]
        values: dict[str, torch.Tensor] = {}
        for key, value in MFIFLoss(alpha=1.0, beta=1.0)(f, gt).items():
            values[f"mfif/{key}"] = value
        for key, value in IVIFFusionLoss(lambda_grad=20.0)(f, a, b).items():
            values[f"ivif/{key}"] = value
        values["g/feature_in"] = GuidanceLoss("feature_in")(f, tf, s, t_feats)
        values["g/feature_in_cem"] = GuidanceLoss("feature_in", layers=["cem"])(
            f, tf, s, t_feats, groups=["cem", "decoder"]
        )
        values["g/output_grad"] = GuidanceLoss("output_grad")(f, tf, s, t_feats)
        objective = TransferObjective(lambda_grad=20.0, guidance_layers=["cem"])
        terms = objective(
            f, a, b, features=s, feature_groups=["cem", "decoder"], teacher_fused=tf,
            teacher_features=t_feats, replay_fused=f, replay_target=gt,
        )  # fmt: skip
        for key, value in terms.items():
            values[f"transfer/{key}"] = value
        everything = terms["total"] + values["g/feature_in"] + values["g/output_grad"]
        grads = torch.autograd.grad(everything, [f, *s])
        values.update({f"grad/{i}": g for i, g in enumerate(grads)})
        return {k: v.detach().cpu() for k, v in values.items()}

    cpu = evaluate("cpu")
    with strict_fp32():
        gpu = evaluate("cuda")
    assert cpu.keys() == gpu.keys() and {"transfer/g", "transfer/src"} <= set(cpu)
    for key in cpu:
        rtol, atol = (1e-4, 1e-6) if key.startswith("grad/") else (1e-5, 1e-6)
        torch.testing.assert_close(
            gpu[key], cpu[key], rtol=rtol, atol=atol, msg=lambda m, key=key: f"{key}: {m}"
        )


# ---- training: make train-mfif GPUS=1 / make transfer-ivif GPUS=1, bf16-mixed ------------------------
STEPS = 3
MFIF_ARGS = [
    "--trainer.max_steps", str(STEPS), "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "1",
    "--model.init_args.net", TINY_NET, "--data.init_args.crop_size", "64", "--data.init_args.batch_size", "4",
    "--data.init_args.num_workers", "0", "--data.init_args.samples_per_epoch", str(4 * STEPS),
    "--data.init_args.val_samples", "2", "--data.init_args.val_crop_size", "64",
]  # fmt: skip
IVIF_ARGS = [
    "--trainer.max_steps", str(STEPS), "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "1",
    "--trainer.limit_test_batches", "1", "--model.init_args.val_metrics", '["EN", "SF", "Qabf", "VIF"]',
    "--model.init_args.channels_last", "true",
    "--data.init_args.ivif.init_args.crop_size", "64", "--data.init_args.ivif.init_args.batch_size", "4",
    "--data.init_args.ivif.init_args.num_workers", "0", "--data.init_args.ivif.init_args.val_size", "2",
    "--data.init_args.ivif.init_args.default_train_size", str(4 * STEPS),
    "--data.init_args.ivif.init_args.default_image_size", "80",
    "--data.init_args.replay.init_args.crop_size", "64", "--data.init_args.replay.init_args.batch_size", "2",
    "--data.init_args.replay.init_args.num_workers", "0",
    "--data.init_args.replay.init_args.samples_per_epoch", str(2 * STEPS),
]  # fmt: skip


def _make(target: str, out: Path, args: list[str]) -> subprocess.CompletedProcess:
    """A Makefile target as a user runs it with GPUS=1; the installed venv counts as up to date, and the
    console script is this interpreter's ``-m stfuse`` (where the package is not pip-installed)."""
    command = [
        "make", "-C", str(REPO), "-o", f"{VENV}/.installed", target, f"VENV={VENV}", "GPUS=1",
        f"STFUSE={shlex.quote(sys.executable)} -m stfuse", f"OUT={out}", f"DATA_ROOT={out / 'no_data'}",
        f"ARGS={shlex.join(args)}",
    ]  # fmt: skip
    return subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def make_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("make_gpus1")
    mfif = _make("train-mfif", out, [*MFIF_ARGS, *_record_args(out / "mfif.json")])
    assert mfif.returncode == 0, mfif.stdout[-2000:] + mfif.stderr[-4000:]
    ivif = _make("transfer-ivif", out, [*IVIF_ARGS, *_record_args(out / "ivif.json")])
    assert ivif.returncode == 0, ivif.stdout[-2000:] + ivif.stderr[-4000:]
    return out


def test_make_train_mfif_and_transfer_ivif_with_gpus_1_train_in_bf16(make_runs: Path) -> None:
    for stage in ("mfif", "ivif"):
        record = json.loads((make_runs / f"{stage}.json").read_text())
        assert record["strategy"] == "SingleDeviceStrategy" and record["world_size"] == 1, record
        _assert_bf16_run(record, STEPS)
        assert record["global_step"] == STEPS
        assert (make_runs / stage / "checkpoints" / "last.ckpt").is_file()
    ivif = json.loads((make_runs / "ivif.json").read_text())["metrics"]
    assert {"train/loss_g", "train/loss_src", "val/Qabf", "val/VIF"} <= set(ivif), sorted(ivif)


_LOAD_ON_CPU = """
import sys, torch
assert not torch.cuda.is_available(), "this process must see no GPU"
from stfuse.inference.fuser import Fuser
from stfuse.models.checkpoint import load_network
from stfuse.stages import IVIFTransferStage, MFIFStage
mfif, ivif, inputs, out = sys.argv[1:]
for path in (mfif, ivif):
    net = load_network(path)
    assert all(p.device.type == "cpu" for p in net.parameters())
MFIFStage.load_from_checkpoint(mfif, map_location="cpu")
stage = IVIFTransferStage.load_from_checkpoint(ivif, map_location="cpu")
assert next(stage.net.parameters()).device.type == "cpu"
ir, y = torch.load(inputs, weights_only=True)
torch.save(Fuser.from_checkpoint(ivif).fuse_luminance(ir, y), out)
"""


def test_checkpoints_written_on_the_gpu_load_in_a_cpu_only_process(make_runs: Path, tmp_path: Path) -> None:
    mfif = make_runs / "mfif" / "checkpoints" / "last.ckpt"
    ivif = make_runs / "ivif" / "checkpoints" / "last.ckpt"
    saved = torch.load(ivif, weights_only=True, map_location="cpu")
    assert any(v.is_floating_point() for v in saved["state_dict"].values())
    ir, y, _ = scenes(1, 96, 128)
    torch.save((ir, y), tmp_path / "inputs.pt")
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_ON_CPU, str(mfif), str(ivif), str(tmp_path / "inputs.pt"), str(tmp_path / "cpu.pt")],
        env=subprocess_env(CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    on_cpu = torch.load(tmp_path / "cpu.pt", weights_only=True)
    with strict_fp32():
        on_gpu = Fuser.from_checkpoint(ivif, device="cuda").fuse_luminance(ir, y)
    worst, _ = difference(on_gpu, on_cpu)
    assert worst < FP32_ATOL, f"the GPU checkpoint fuses differently on the CPU: up to {worst:.2e}"


# ---- DDP --------------------------------------------------------------------------------------------
def test_the_ddp_preset_starts_an_nccl_process_group_on_one_gpu(tmp_path: Path) -> None:
    record_path = tmp_path / "ddp.json"
    command = [
        sys.executable, "-m", "stfuse", "fit", "--config", str(REPO / "experiments" / "mfif.yaml"),
        "--config", str(REPO / "experiments" / "trainer" / "ddp.yaml"),
        "--trainer.devices", "1", "--trainer.num_nodes", "1", "--trainer.default_root_dir", str(tmp_path / "run"),
        *MFIF_ARGS, *_record_args(record_path),
    ]  # fmt: skip
    result = subprocess.run(
        command, env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    record = json.loads(record_path.read_text())
    assert record["strategy"] == "DDPStrategy" and record["process_group"], record
    assert record["backend"] == "nccl" and record["world_size"] == 1, record
    _assert_bf16_run(record, STEPS)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
