"""Target stage: infrared/visible fusion by semisupervised transfer from the source (MFIF) model.

The frozen source network is the teacher; the student starts from its weights and trains on
unlabeled IR/VIS pairs with unsupervised fusion losses, the guidance loss L_g against the teacher,
and (optionally) replayed labeled MFIF batches.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from data_modules.io import merge_y_cbcr
from stfuse.losses import GUIDANCE_MODES, GuidanceMode, TransferObjective, match_moments
from stfuse.models import DEFAULT_PRESET, build_network
from stfuse.models.checkpoint import load_network
from stfuse.stages.base import FusionStageBase

#: how λ_g changes over the run (see ``IVIFTransferStage``).
LAMBDA_G_SCHEDULES = ("constant", "linear", "cosine")
#: what the frozen teacher sees for L_g: the raw pair, or the pair with equal global moments (match_moments)
GUIDANCE_INPUTS = ("raw", "matched")


#: the select head's output conv: a student that adds the detail residual (``net: {residual: r}``) or independent
#: detail weights (``net: {detail: independent}``) to a pure convex-blend source has more output channels here
#: than the teacher
_HEAD_OUTPUT = ("decoder.to_image.weight", "decoder.to_image.bias")


def _grown_head(student: nn.Module, teacher: nn.Module, value: torch.Tensor) -> torch.Tensor | None:
    """The student's select-head output conv (weight or bias) built from the teacher's ``value``, when the
    student only adds channels the teacher lacks; None when the two heads do not relate that way.

    Channel layout: [weights of A | detail weights of B (``independent``) | residual]. The weights of A are
    copied; the detail weights of B start as the negated logits of A's on the same level, so that
    V = σ(b·tanh(−z/b)) = 1 − W, the teacher's convex blend; the residual is copied or starts at zero.
    """
    if getattr(student, "head", None) != "select" or getattr(teacher, "head", None) != "select":
        return None
    maps = student.weight_channels
    if teacher.weight_channels != maps:
        return None
    s_detail, t_detail = student.detail_channels, teacher.detail_channels
    s_res, t_res = int(student.residual > 0), int(teacher.residual > 0)
    if value.shape[0] != maps + t_detail + t_res or (t_detail and t_detail != s_detail) or t_res > s_res:
        return None
    if (s_detail, s_res) == (t_detail, t_res):
        return None
    grown = value.new_zeros((maps + s_detail + s_res, *value.shape[1:]))
    grown[:maps] = value[:maps]
    if s_detail:
        grown[maps : maps + s_detail] = value[maps : maps + t_detail] if t_detail else -value[:s_detail]
    if t_res:
        grown[-1] = value[-1]
    return grown


def _init_student_from(student: nn.Module, teacher: nn.Module) -> None:
    """Copy the teacher's weights into the student.

    A shared-encoder network lists its encoder under both ``encoder_a.`` and ``encoder_b.``, so a
    separate-encoder student (the ``separate_encoders`` ablation) starts both branches from the
    shared source encoder through a plain key match. A select-head student with a detail residual or
    independent detail weights that the teacher lacks grows the output conv (:func:`_grown_head`), so at
    step 0 it renders exactly the teacher's blend.
    """
    teacher_state = teacher.state_dict()
    student_state = student.state_dict()
    grown: dict[str, torch.Tensor] = {}
    for key in _HEAD_OUTPUT:
        if key in teacher_state and key in student_state:
            value = _grown_head(student, teacher, teacher_state[key])
            if value is not None and value.shape == student_state[key].shape:
                grown[key] = value
    mismatched = [
        key
        for key, value in student_state.items()
        if key not in grown and (key not in teacher_state or teacher_state[key].shape != value.shape)
    ]
    if mismatched:
        raise ValueError(
            "the student network cannot start from the source checkpoint: no matching weights for "
            f"{len(mismatched)} tensors (first: {mismatched[:5]}). Use the same preset/channels as the source stage."
        )
    state = {key: teacher_state[key] for key in student_state if key not in grown}
    state.update(grown)
    student.load_state_dict(state)


class IVIFTransferStage(FusionStageBase):
    """Semisupervised transfer to IVIF.

    Args:
        source_ckpt: the trained source-stage network (Lightning ``.ckpt``, ``.pt`` or ``.safetensors``),
            loaded safely with ``weights_only=True``. Required unless ``transfer`` is False.
        transfer: start the student from the source weights. False trains IVIF from scratch
            (the ``no_transfer`` ablation; it then needs ``guidance="none"`` and no replay).
        net: architecture overrides for the student (e.g. ``{"shared_encoder": false}``); by default
            the student copies the teacher's architecture.
        guidance: L_g mode, one of ``stfuse.losses.GUIDANCE_MODES`` (``output_grad`` by default, the recipe:
            the fused images' locally contrast-normalised gradients, student against teacher, which sees what the
            select head's detail residual adds and leaves the balance between the sources to the IVIF loss;
            ``feature_in``: the teacher's instance-normalised CEM maps, with the gradient stopped at the encoder
            (``guidance_stop_at_encoder``); ``relation``: their channel correlations; ``selection``: its
            confident weight maps; ``none`` is plain fine-tuning).
        lambda_*: loss weights of L = λ_int·L_int + λ_grad·L_grad + λ_ssim·L_ssim + λ_g·L_g + λ_s·L_src
            (:class:`stfuse.losses.TransferObjective` holds them all).
        lambda_g_schedule: ``cosine`` (default, the recipe) and ``linear`` decay λ_g to 0 over the run's
            optimizer steps, so the student holds the teacher's structure early and follows the IVIF objective
            alone by the end; ``constant`` keeps λ_g (probe ``lg_constant``: it pins the teacher's IR-heavy
            balance and loses 8 of 8 on the domain-balanced validation split).
        guidance_layers: the feature groups a feature mode matches (``cem``, ``decoder``, ``head``, ``select``,
            ``encoder``: the shared encoder's maps before the CEM);
            None (default) takes the mode's own (stfuse.losses.guidance.DEFAULT_LAYERS). ``[cem]`` guides only
            the cross-feature maps.
        guidance_levels: the pyramid levels of the weight maps that ``selection`` matches (0 = finest); None
            (default) matches every level. ``[0, 1, 2]`` leaves the base level to the IVIF objective.
        guidance_centering: ``selection`` matches each map minus its spatial mean, the pattern of the
            teacher's decision and not its overall IR/VIS balance: ``weights`` or ``logits`` (the log-odds);
            ``none`` (default) the maps as they are (stfuse.losses.GuidanceLoss).
        guidance_inputs: what the teacher sees. ``raw`` (default): the IR/VIS pair as the student does.
            ``matched``: the pair with its two global means and standard deviations made equal
            (stfuse.losses.match_moments), as in every multi-focus pair, so the teacher judges which source
            carries the structure and not which is brighter or more contrasted. On training pairs the raw
            teacher gives IR a mean weight of 0.88 (MSRS) and 0.72 (RoadScene); on matched pairs 0.59 and 0.58,
            still confident (|2W − 1| ≥ ½) on 84–88 % of the pixels. The student always sees the raw pair.
        guidance_detail_tau: ``selection`` weights each pyramid level's comparison by the detail either source
            carries there (min(1, blurred |Laplacian level| / tau); 0 on the base level), so the teacher's
            unsupervised choices in flat regions and of the base intensity are left to the IVIF objective;
            None (default): not weighted (stfuse.losses.GuidanceLoss).
        guidance_branch: ``vi`` or ``ir`` matches only that branch's half of the ``cem`` or ``encoder`` maps
            (``feature_in`` and ``relation``): ``vi`` keeps the teacher's reading of the visible image, a
            natural image like its training data, and leaves the infrared branch free; ``both`` (default): the
            whole maps.
        guidance_stop_at_encoder: True (default, the recipe): L_g on the ``cem`` maps trains the CEMs only, its
            gradient stops at the encoder maps that feed them (the value is unchanged; the stage recomputes the
            CEMs on the detached encoder maps, STFuseNet.cem_maps_on). The encoder, where the fusion loss does
            almost all its work (experiments/gradient_norms.py), adapts to the infrared modality freely; with
            the gradient let through, every L_g held the student at the teacher's balance between the sources
            (probe ``lg_relation_through``). It acts on the ``cem`` maps only: maps of other groups a mode
            reads (``decoder``, ``head``, ``select``, ``encoder``, the fused image) keep their whole gradient.

        lambda_smooth: weight of the edge-aware smoothness of the select head's base-level weight map
            (stfuse.losses.fusion.SelectionSmoothness): each flip of the base weight between the sources costs
            exp(−edge / ``smooth_edge_scale``) at the base level's scale, so flat regions (a sky, a road) take
            one source's brightness instead of blotches of both. 0 (default): off. It needs the select head.
        smooth_edge_scale: the source edge strength (max Sobel magnitude at the base level's scale) at which
            a flip costs 1/e of its price in a flat region.
        lambda_target: weight of the intensity term on the infrared targets (stfuse.losses.fusion.IVIFFusionLoss,
            L_target): |F − max(IR, VIS)| averaged over the pixels where the infrared image is brighter than its
            surroundings, the warm persons and vehicles that L_int, averaged over every pixel, leaves grey.
            0 (default): off.

    The defaults are the reference recipe (experiments/ivif.yaml repeats them for the reader;
    docs/results.md, "what moved the metrics", says why each is there).
        alpha, beta: weights inside the replayed supervised MFIF loss L_src.
        val_metrics: fusion metrics logged on validation/test pairs; None: the default table of
            ``metric_preset`` (stfuse.metrics registry), which also picks the conventions.
    """

    monitor = "val/loss"
    mode = "min"

    def __init__(
        self,
        source_ckpt: str | None = None,
        transfer: bool = True,
        net: dict[str, Any] | None = None,
        guidance: GuidanceMode = "output_grad",
        lambda_int: float = 1.0,
        lambda_grad: float = 80.0,
        lambda_ssim: float = 1.0,
        lambda_g: float = 1.0,
        lambda_src: float = 0.5,
        lambda_g_schedule: str = "cosine",
        guidance_layers: list[str] | None = None,
        guidance_levels: list[int] | None = None,
        guidance_centering: str = "none",
        guidance_inputs: str = "raw",
        guidance_detail_tau: float | None = None,
        guidance_branch: str = "both",
        guidance_stop_at_encoder: bool = True,
        lambda_smooth: float = 0.0,
        smooth_edge_scale: float = 0.05,
        lambda_target: float = 0.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        val_metrics: list[str] | None = None,
        metric_preset: str = "cddfuse",
        lr: float = 5e-4,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.05,
        channels_last: bool = False,
        grid_images: int = 4,
    ) -> None:
        if guidance not in GUIDANCE_MODES:
            raise ValueError(f"guidance must be one of {GUIDANCE_MODES}, got {guidance!r}")
        if lambda_g_schedule not in LAMBDA_G_SCHEDULES:
            raise ValueError(
                f"lambda_g_schedule must be one of {LAMBDA_G_SCHEDULES}, got {lambda_g_schedule!r}"
            )
        if guidance_inputs not in GUIDANCE_INPUTS:
            raise ValueError(f"guidance_inputs must be one of {GUIDANCE_INPUTS}, got {guidance_inputs!r}")
        if not transfer and guidance != "none":
            raise ValueError(
                "guidance needs the source teacher, but transfer=False trains from scratch; "
                "set guidance: none for the no_transfer ablation"
            )
        if transfer and not source_ckpt:
            raise ValueError(
                "IVIFTransferStage needs source_ckpt (the trained MFIF checkpoint) when transfer=True; "
                "run `make train-mfif` first or pass --model.init_args.source_ckpt PATH"
            )
        self._source_ckpt = source_ckpt
        self._net_overrides = dict(net or {})
        if val_metrics is None:
            from stfuse.metrics.registry import default_metric_names

            val_metrics = default_metric_names(metric_preset)
        self._val_metric_names = list(val_metrics)
        super().__init__(lr, weight_decay, warmup_steps, min_lr_ratio, channels_last, grid_images)

    # ---- hooks -----------------------------------------------------------------------------
    def configure_models(self) -> None:
        self.teacher: nn.Module | None = None
        teacher = None
        if self._source_ckpt and (self.hparams.transfer or self.hparams.guidance != "none"):
            teacher = load_network(Path(self._source_ckpt))
        if teacher is not None and (self.hparams.transfer or self.hparams.guidance != "none"):
            config = {**teacher.config, **self._net_overrides}
        else:
            config = dict(self._net_overrides or {"preset": DEFAULT_PRESET})
        self.net = build_network(config)
        if self.hparams.transfer:
            _init_student_from(self.net, teacher)
        if teacher is not None and self.hparams.guidance != "none":
            self.teacher = teacher
            self.teacher.requires_grad_(False)
            self.teacher.eval()
        self.hparams["net"] = self.net.config

    def configure_losses(self) -> None:
        hp = self.hparams
        if hp.lambda_smooth > 0 and self.net.head != "select":
            raise ValueError(
                f"lambda_smooth {hp.lambda_smooth} smooths the select head's weight maps, but this network's head "
                f"is {self.net.head!r}; set lambda_smooth: 0 or use the select head"
            )
        self.objective = TransferObjective(
            lambda_int=hp.lambda_int,
            lambda_grad=hp.lambda_grad,
            lambda_ssim=hp.lambda_ssim,
            lambda_g=hp.lambda_g,
            lambda_src=hp.lambda_src,
            guidance=hp.guidance,
            alpha=hp.alpha,
            beta=hp.beta,
            guidance_layers=hp.guidance_layers,
            guidance_levels=hp.guidance_levels,
            guidance_centering=hp.guidance_centering,
            guidance_detail_tau=hp.guidance_detail_tau,
            guidance_branch=hp.guidance_branch,
            lambda_smooth=hp.lambda_smooth,
            smooth_edge_scale=hp.smooth_edge_scale,
            select_levels=self.net.levels if self.net.head == "select" else None,
            lambda_target=hp.lambda_target,
        )

    def configure_metrics(self) -> None:
        from stfuse.metrics import FusionMetrics

        self.val_metrics = FusionMetrics(preset=self.hparams.metric_preset, metrics=self._val_metric_names)
        self.test_metrics = FusionMetrics(preset=self.hparams.metric_preset, metrics=self._val_metric_names)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.hparams.channels_last and self.teacher is not None:
            self.teacher.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> IVIFTransferStage:
        """Keep the teacher in eval mode whatever Lightning does to the student."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    # ---- steps -----------------------------------------------------------------------------
    def current_lambda_g(self) -> float:
        """λ_g at the current optimizer step under ``lambda_g_schedule``."""
        base = float(self.hparams.lambda_g)
        schedule = self.hparams.lambda_g_schedule
        if schedule == "constant" or self._trainer is None:
            return base
        total = (
            self.trainer.max_steps if self.trainer.max_steps > 0 else self.trainer.estimated_stepping_batches
        )
        if not math.isfinite(total) or total <= 0:
            return base
        progress = min(1.0, self.global_step / float(total))
        if schedule == "linear":
            return base * (1.0 - progress)
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _guidance_reads_cem(self) -> bool:
        """Whether L_g reads the ``cem`` maps (what ``guidance_stop_at_encoder`` acts on)."""
        return "cem" in self.objective.guidance.read_layers

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        ivif = batch["ivif"] if "ivif" in batch else batch
        ir, vi = ivif["ir"], ivif["vi"]  # N×1×H×W each
        n = ir.shape[0]
        fused, features = self.net(ir, vi, return_features=True)
        lambda_g = self.current_lambda_g()
        teacher: dict[str, Any] = {}
        if self.teacher is not None and lambda_g > 0:
            with torch.no_grad():
                t_ir, t_vi = match_moments(ir, vi) if self.hparams.guidance_inputs == "matched" else (ir, vi)
                teacher["teacher_fused"], teacher["teacher_features"] = self.teacher(
                    t_ir, t_vi, return_features=True
                )
        replay: dict[str, Any] = {}
        mfif = batch.get("mfif") if "ivif" in batch else None
        if mfif is not None and self.objective.lambda_src > 0:
            replay = {"replay_fused": self.net(mfif["a"], mfif["b"]), "replay_target": mfif["gt"]}
        if teacher and self.hparams.guidance_stop_at_encoder and self._guidance_reads_cem():
            groups = self.net.feature_groups()
            local = iter(
                self.net.cem_maps_on([f.detach() for f, g in zip(features, groups) if g == "encoder"])
            )
            features = [next(local) if g == "cem" else f for f, g in zip(features, groups)]
        terms = self.objective(
            fused,
            ir,
            vi,
            features=features,
            feature_groups=self.net.feature_groups(),
            lambda_g=lambda_g,
            **teacher,
            **replay,
        )
        total = terms["total"]
        if "g" in terms and self.hparams.lambda_g_schedule != "constant":
            self.log("train/lambda_g", lambda_g, batch_size=n)
        self._log_terms("train", {k: v for k, v in terms.items() if k != "total"}, batch_size=n)
        self.log("train/loss", total.detach(), batch_size=n, prog_bar=True)
        return total

    def _evaluate(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        ir, vi = batch["ir"], batch["vi"]
        fused = self.net(ir, vi).clamp(0, 1)
        terms = self.objective.fusion(fused, ir, vi)
        n = ir.shape[0]
        self.log_eval_loss(split, terms["total"], n)
        metrics = self.val_metrics if split == "val" else self.test_metrics
        metrics.update(fused, ir, vi)
        return fused

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        fused = self._evaluate(batch, "val")
        cbcr = batch.get("vi_cbcr")  # N×2×H×W, or None for grey pairs
        for i in range(fused.shape[0]):
            vi, out = batch["vi"][i], fused[i]
            if cbcr is not None:
                vi, out = merge_y_cbcr(vi, cbcr[i]), merge_y_cbcr(out, cbcr[i])
            self.collect_grid_row([batch["ir"][i], vi, out])

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log_dict({f"val/{k}": v for k, v in values.items()}, sync_dist=False)
        self.val_metrics.reset()
        super().on_validation_epoch_end()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        values = self.test_metrics.compute()
        self.log_dict({f"test/{k}": v for k, v in values.items()}, sync_dist=False)
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        fused = self.net(batch["ir"], batch["vi"]).clamp(0, 1)
        return {"fused": fused, "vi_cbcr": batch.get("vi_cbcr"), "name": batch.get("name")}


__all__ = ["IVIFTransferStage"]
