"""The two Lightning stages: teacher/student contract, replay, logging and checkpoint safety."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from data_modules import IVIFDataModule, MFIFDataModule, TransferDataModule
from stfuse.losses import GUIDANCE_MODES
from stfuse.models.checkpoint import CheckpointError
from stfuse.stages import IVIFTransferStage, MFIFStage

TINY_NET = {"preset": "tiny"}


def _trainer(root: Path, steps: int = 2, **kwargs) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        log_every_n_steps=1,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def _mfif_data(seed: int = 0) -> MFIFDataModule:
    return MFIFDataModule(
        roots=None, crop_size=32, batch_size=2, num_workers=0, samples_per_epoch=8, val_samples=2, seed=seed
    )


def _ivif_data() -> IVIFDataModule:
    return IVIFDataModule(train_roots=None, crop_size=32, batch_size=2, num_workers=0, seed=0)


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mfif")
    stage = MFIFStage(net=TINY_NET, warmup_steps=1)
    trainer = _trainer(
        root, steps=3, callbacks=[pl.callbacks.ModelCheckpoint(dirpath=root / "ckpt", save_last=True)]
    )
    trainer.fit(stage, datamodule=_mfif_data())
    path = root / "ckpt" / "last.ckpt"
    assert path.is_file()
    return path


def test_mfif_stage_logs_every_loss_term_and_reference_metrics(tmp_path):
    stage = MFIFStage(net=TINY_NET, warmup_steps=1)
    trainer = _trainer(tmp_path, steps=2, val_check_interval=2, check_val_every_n_epoch=None)
    trainer.fit(stage, datamodule=_mfif_data())
    logged = trainer.logged_metrics
    for key in ("train/loss", "train/loss_l1", "val/psnr", "val/ssim", "val/loss"):
        assert key in logged, f"{key} not logged; got {sorted(logged)}"
    assert 0 < float(logged["val/psnr"]) < 100
    grids = list(Path(tmp_path).rglob("val_grid_epoch*.png"))
    assert grids, "no validation image grid was written"


def test_student_equals_teacher_at_step_zero(source_ckpt):
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt))
    ir, vi = torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53)
    stage.eval()
    with torch.no_grad():
        assert torch.equal(stage.net(ir, vi), stage.teacher(ir, vi))
    for (name, p_s), (_, p_t) in zip(stage.net.state_dict().items(), stage.teacher.state_dict().items()):
        assert torch.equal(p_s, p_t), name


def test_student_with_a_detail_residual_starts_as_the_pure_blend_source(source_ckpt):
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), net={"residual": 0.1})
    assert stage.net.residual == 0.1 and stage.teacher.residual == 0.0
    weight = stage.net.state_dict()["decoder.to_image.weight"]
    teacher_weight = stage.teacher.state_dict()["decoder.to_image.weight"]
    assert weight.shape[0] == teacher_weight.shape[0] + 1
    assert torch.equal(weight[:-1], teacher_weight) and not weight[-1].any()
    ir, vi = torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53)
    stage.eval()
    with torch.no_grad():
        assert torch.equal(stage.net(ir, vi), stage.teacher(ir, vi))
    with pytest.raises(ValueError, match="cannot start from the source checkpoint"):
        IVIFTransferStage(source_ckpt=str(source_ckpt), net={"channels": 24})


def test_student_with_independent_detail_weights_starts_as_the_convex_blend_source(source_ckpt):
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), net={"detail": "independent", "residual": 0.1})
    maps = stage.teacher.weight_channels
    assert stage.net.detail_channels == maps - 1 and stage.teacher.detail_channels == 0
    for key in ("decoder.to_image.weight", "decoder.to_image.bias"):
        grown, teacher = stage.net.state_dict()[key], stage.teacher.state_dict()[key]
        assert grown.shape[0] == 2 * maps - 1 + 1
        assert torch.equal(grown[:maps], teacher)
        assert torch.equal(grown[maps : 2 * maps - 1], -teacher[: maps - 1])  # V = 1 − W on each detail level
        assert not grown[-1].any()  # the residual starts at zero
    ir, vi = torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53)
    stage.eval()
    with torch.no_grad():
        assert torch.allclose(stage.net(ir, vi), stage.teacher(ir, vi), atol=1e-5)


def test_teacher_is_frozen_and_unchanged_by_training(source_ckpt, tmp_path):
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), lambda_g=5.0, warmup_steps=1)
    before = {k: v.clone() for k, v in stage.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in stage.net.state_dict().items()}
    trainer = _trainer(tmp_path, steps=3, limit_val_batches=0)
    trainer.fit(stage, datamodule=TransferDataModule(ivif=_ivif_data(), replay=_mfif_data(1)))
    assert not stage.teacher.training, "the teacher must stay in eval mode"
    assert all(not p.requires_grad for p in stage.teacher.parameters())
    for key, value in stage.teacher.state_dict().items():
        assert torch.equal(value, before[key]), f"teacher tensor {key} changed"
    changed = [k for k, v in stage.net.state_dict().items() if not torch.equal(v, student_before[k])]
    assert changed, "the student did not train"
    logged = trainer.logged_metrics
    for key in (
        "train/loss",
        "train/loss_int",
        "train/loss_grad",
        "train/loss_ssim",
        "train/loss_g",
        "train/loss_src",
    ):
        assert key in logged, f"{key} not logged; got {sorted(logged)}"


@pytest.mark.parametrize("replay", [True, False])
def test_transfer_runs_with_and_without_replay(source_ckpt, tmp_path, replay):
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), warmup_steps=1, val_metrics=["EN", "SF", "Qabf"])
    data = TransferDataModule(ivif=_ivif_data(), replay=_mfif_data(1) if replay else None)
    trainer = _trainer(tmp_path, steps=2, val_check_interval=2, check_val_every_n_epoch=None)
    trainer.fit(stage, datamodule=data)
    logged = trainer.logged_metrics
    assert ("train/loss_src" in logged) == replay
    for key in ("val/loss", "val/EN", "val/SF", "val/Qabf"):
        assert key in logged, f"{key} not logged; got {sorted(logged)}"


@pytest.mark.parametrize("mode", [mode for mode in GUIDANCE_MODES if mode != "none"])  # "none" has no L_g
def test_each_guidance_mode_trains(source_ckpt, tmp_path, mode):
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), guidance=mode, warmup_steps=1)
    trainer = _trainer(tmp_path, steps=2, limit_val_batches=0)
    trainer.fit(stage, datamodule=TransferDataModule(ivif=_ivif_data()))
    assert torch.isfinite(trainer.logged_metrics["train/loss_g"])


def test_guidance_on_the_cem_maps_only_trains_and_differs_from_all_maps(source_ckpt, tmp_path):
    values = {}
    for layers in (["cem", "decoder", "head"], ["cem"]):
        torch.manual_seed(0)
        stage = IVIFTransferStage(
            source_ckpt=str(source_ckpt),
            guidance="feature_in",
            guidance_layers=layers,
            warmup_steps=1,
            channels_last=True,
        )
        trainer = _trainer(tmp_path / str(layers), steps=2, limit_val_batches=0)
        trainer.fit(stage, datamodule=TransferDataModule(ivif=_ivif_data()))
        values[str(layers)] = float(trainer.logged_metrics["train/loss_g"])
    assert all(math.isfinite(v) and v > 0 for v in values.values()), values
    # the CEM maps are one of the three guided maps, so their term alone is smaller
    assert values["['cem']"] < values["['cem', 'decoder', 'head']"], values


def test_unknown_guidance_layers_are_refused(source_ckpt):
    with pytest.raises(ValueError, match="guidance layers must be a non-empty subset"):
        IVIFTransferStage(source_ckpt=str(source_ckpt), guidance_layers=["bottleneck"])
    # the encoder group is known: the stage builds, and its L_g reads the pre-CEM maps only
    stage = IVIFTransferStage(
        source_ckpt=str(source_ckpt), guidance="feature_in", guidance_layers=["encoder"]
    )
    assert stage.objective.guidance.layers == ("encoder",)
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), guidance="feature_in", guidance_branch="vi")
    assert stage.objective.guidance.branch == "vi"
    # the recipe's L_g reads no feature maps, so it has no branches
    with pytest.raises(ValueError, match="mode 'output_grad' reads no maps"):
        IVIFTransferStage(source_ckpt=str(source_ckpt), guidance_branch="vi")
    with pytest.raises(ValueError, match="splits the two-branch maps"):
        IVIFTransferStage(source_ckpt=str(source_ckpt), guidance="selection", guidance_branch="vi")
    # the stop at the encoder (the recipe's default) acts where L_g reads the CEM maps, and nowhere else: not on
    # the recipe's output_grad, which reads the fused images
    reads = {
        "recipe": IVIFTransferStage(source_ckpt=str(source_ckpt)),
        "feature_in": IVIFTransferStage(source_ckpt=str(source_ckpt), guidance="feature_in"),
        "relation": IVIFTransferStage(source_ckpt=str(source_ckpt), guidance="relation"),
        "selection": IVIFTransferStage(source_ckpt=str(source_ckpt), guidance="selection"),
        "encoder": IVIFTransferStage(
            source_ckpt=str(source_ckpt), guidance="feature_in", guidance_layers=["encoder"]
        ),
    }
    assert reads["recipe"].hparams.guidance_stop_at_encoder is True
    assert reads["recipe"].hparams.guidance == "output_grad"
    assert {k: stage._guidance_reads_cem() for k, stage in reads.items()} == {
        "recipe": False,
        "feature_in": True,
        "relation": True,
        "selection": False,
        "encoder": False,
    }


def test_separate_encoders_start_from_the_shared_source_encoder(source_ckpt):
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), net={"shared_encoder": False})
    assert stage.net.encoder_a is not stage.net.encoder_b
    for (_, a), (_, b) in zip(
        stage.net.encoder_a.state_dict().items(), stage.net.encoder_b.state_dict().items()
    ):
        assert torch.equal(a, b)


def test_no_transfer_starts_from_scratch_without_a_teacher():
    stage = IVIFTransferStage(transfer=False, guidance="none", net=TINY_NET)
    assert stage.teacher is None
    with pytest.raises(ValueError, match="guidance"):
        IVIFTransferStage(transfer=False, guidance="feature_in", net=TINY_NET)
    with pytest.raises(ValueError, match="source_ckpt"):
        IVIFTransferStage(source_ckpt=None)


def test_corrupt_or_missing_source_checkpoint_is_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.ckpt"):
        IVIFTransferStage(source_ckpt=str(corrupt))
    with pytest.raises((CheckpointError, FileNotFoundError), match="missing.ckpt"):
        IVIFTransferStage(source_ckpt=str(tmp_path / "missing.ckpt"))


def test_a_student_may_take_its_base_level_from_the_rule_and_keeps_every_teacher_weight(source_ckpt):
    for base in ("max", "prior", "salient"):
        stage = IVIFTransferStage(source_ckpt=str(source_ckpt), net={"base": base})
        assert stage.net.config["base"] == base and stage.teacher.config["base"] == "learned"
        teacher = stage.teacher.state_dict()
        assert all(torch.equal(value, teacher[key]) for key, value in stage.net.state_dict().items())


def test_wrong_architecture_source_checkpoint_is_a_clear_error(source_ckpt):
    with pytest.raises(ValueError, match="student network cannot start"):
        IVIFTransferStage(source_ckpt=str(source_ckpt), net={"channels": 16})


def _one_term_step(source_ckpt, size: int, perturb: bool = False, **terms) -> tuple[IVIFTransferStage, float]:
    """A transfer stage whose fusion terms and replay are off except ``terms``, after one training step on
    a seeded 2-pair batch of size×size crops with its gradient taken; returns the stage and the loss.
    ``perturb``: first move the student away from the teacher (a guidance term is then non-zero)."""
    torch.manual_seed(0)
    off = {"lambda_int": 0.0, "lambda_grad": 0.0, "lambda_ssim": 0.0, "lambda_src": 0.0}
    stage = IVIFTransferStage(source_ckpt=str(source_ckpt), **{**off, **terms})
    if perturb:
        with torch.no_grad():
            for p in stage.net.parameters():
                p.add_(0.05 * torch.randn_like(p))
    generator = torch.Generator().manual_seed(1)
    batch = {
        "ir": torch.rand(2, 1, size, size, generator=generator),
        "vi": torch.rand(2, 1, size, size, generator=generator),
    }
    loss = stage.training_step(batch, 0)
    loss.backward()
    return stage, float(loss)


def _gradient_sum(parameters) -> float:
    return sum(float(p.grad.abs().sum()) for p in parameters if p.grad is not None)


@pytest.mark.parametrize("stop", [True, False])
def test_stop_at_encoder_keeps_the_guidance_gradient_out_of_the_encoder(source_ckpt, stop: bool):
    """A training step whose only term is L_g on the CEM maps (feature_in): with the stop (the recipe's
    setting) no gradient reaches the encoder and the CEM still gets one; without it the encoder gets one too.
    The recipe's output_grad L_g reads the fused images, so with the stop its gradient still reaches the
    encoder."""
    stage, loss = _one_term_step(
        source_ckpt, 32, perturb=True, guidance="feature_in", guidance_stop_at_encoder=stop,
        lambda_g_schedule="constant",
    )  # fmt: skip
    assert loss > 0
    encoder = _gradient_sum(stage.net.encoder_parameters())
    assert _gradient_sum(stage.net.cem_parameters()) > 0
    assert (encoder == 0.0) if stop else (encoder > 0.0), encoder
    if stop:
        stage, loss = _one_term_step(source_ckpt, 32, perturb=True, lambda_g_schedule="constant")
        assert stage.hparams.guidance == "output_grad" and stage.hparams.guidance_stop_at_encoder
        assert loss > 0 and _gradient_sum(stage.net.encoder_parameters()) > 0


def test_target_term_is_an_option_of_the_stage_that_trains_the_student(source_ckpt):
    """λ_target reaches the objective; a training step whose only term is L_target (on random pairs, whose
    infrared noise has many pixels above their surroundings) moves the decoder; the default leaves it out."""
    stage, loss = _one_term_step(source_ckpt, 64, guidance="none", lambda_target=1.0)
    assert stage.objective.fusion.lambda_target == 1.0
    assert loss > 0
    assert _gradient_sum(stage.net.decoder.parameters()) > 0
    assert (
        IVIFTransferStage(transfer=False, guidance="none", net=TINY_NET).objective.fusion.lambda_target == 0.0
    )


def test_base_weight_smoothness_trains_the_select_head_and_needs_it(source_ckpt):
    """A training step whose only term is the base-level weight smoothness moves the decoder's head; a
    network without the select head is refused at construction, naming the option."""
    stage, loss = _one_term_step(source_ckpt, 64, guidance="none", lambda_smooth=1.0)
    assert loss > 0
    assert _gradient_sum(stage.net.decoder.parameters()) > 0
    with pytest.raises(ValueError, match="lambda_smooth 1.0 smooths the select head's weight maps.*'paint'"):
        IVIFTransferStage(
            transfer=False, guidance="none", net={**TINY_NET, "head": "paint"}, lambda_smooth=1.0
        )
