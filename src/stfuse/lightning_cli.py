"""LightningCLI for the two stages (``stfuse fit|validate|test|predict``).

Subclass mode: each YAML picks the stage with ``model.class_path`` and the data with
``data.class_path``. A rerun of an interrupted ``fit`` resumes from ``last.ckpt`` in the run's
checkpoint folder (or from Lightning's SLURM ``hpc_ckpt_*.ckpt`` when that is newer) unless
``--ckpt_path`` says otherwise (``--auto_resume false`` turns this off).

Run from the shell, bad inputs stop the run before any work with one line naming the key or file and the
fix (:class:`stfuse.errors.UsageError`): a missing, truncated or unsafe checkpoint, a missing data folder, an
unknown network preset, a source checkpoint that does not exist yet. Data-loader workers are capped at the
CPU count, and the progress display suits the output (a bar on a terminal, plain lines in a log).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from stfuse.callbacks import IntervalCheckpoint, hide_lightning_tips, progress_callback
from stfuse.config_checks import check_config_files, check_resume_matches
from stfuse.errors import UsageError, error_chain
from stfuse.runtime import available_cpus
from stfuse.stages import FusionStageBase, IVIFTransferStage, MFIFStage

#: imported here (``stfuse.stages`` imports them lazily) so that subclass mode knows them by their short
#: names (``--model MFIFStage``) and lists them in ``--help``.
STAGE_CLASSES = (MFIFStage, IVIFTransferStage)

#: ``ckpt_path`` values that Lightning resolves itself
_SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")
_PROJECT_MODULES = ("stfuse", "data_modules")


def check_training_checkpoint(
    path: str | os.PathLike[str], what: str, fix: str, resume: bool = False
) -> dict[str, Any]:
    """Load a Lightning checkpoint the safe way (``weights_only=True``) or raise a :class:`UsageError`
    naming ``what`` (the flag or the finder), the file, the problem and ``fix``."""
    from stfuse.models.checkpoint import CheckpointError, safe_torch_load

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{what} '{path}': file not found; {fix}")
    if not path.is_file():
        raise UsageError(f"{what} '{path}': is a folder, not a checkpoint file; {fix}")
    try:
        checkpoint = safe_torch_load(path, "cpu")
    except CheckpointError as error:
        reason = str(error).removeprefix(f"{path}: ").split(". ")[0].rstrip(".")
        raise UsageError(f"{what} '{path}': {reason}; {fix}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(
            f"{what} '{path}': not a Lightning checkpoint (no 'state_dict'; network weights alone go to "
            f"--model.init_args.source_ckpt or stfuse fuse --ckpt); {fix}"
        )
    if resume and "optimizer_states" not in checkpoint:
        raise UsageError(
            f"{what} '{path}': holds weights only (saved with save_weights_only), so training cannot resume "
            f"from it; {fix}"
        )
    return checkpoint


def latest_hpc_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """Lightning's newest SLURM requeue checkpoint (``hpc_ckpt_<n>.ckpt``) in ``folder``, if any."""
    found = []
    for path in Path(folder).glob("hpc_ckpt_*.ckpt"):
        match = re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def _walk(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf and subtree under a parsed config node."""
    items = node.items() if hasattr(node, "items") else []
    for name, value in items:
        dotted = f"{key}.{name}" if key else str(name)
        yield dotted, value
        if hasattr(value, "items"):
            yield from _walk(value, dotted)


def _is_root_key(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return leaf == "root" or leaf == "roots" or leaf.endswith("_root") or leaf.endswith("_roots")


def _raised_in_project(error: BaseException) -> bool:
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in _PROJECT_MODULES


def _constructing_class(error: BaseException) -> type | None:
    """The outermost project class whose ``__init__`` is on the error's stack (what the config built)."""
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        module = str(frame.f_globals.get("__name__", ""))
        if (
            frame.f_code.co_name == "__init__"
            and module.split(".")[0] in _PROJECT_MODULES
            and "self" in frame.f_locals
        ):
            return type(frame.f_locals["self"])
        tb = tb.tb_next
    return None


class STFuseCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--auto_resume",
            type=bool,
            default=True,
            help="resume fit from last.ckpt in the ModelCheckpoint folder (or a newer SLURM hpc_ckpt) when it exists",
        )

    # ---- inputs, checked before any work ---------------------------------------------------------------
    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            self._check_inputs(subcommand, self.config[subcommand])

    def _check_inputs(self, subcommand: str, config: Any) -> None:
        ckpt_path = config.get("ckpt_path")
        if ckpt_path and str(ckpt_path) not in _SPECIAL_CKPT_PATHS:
            checkpoint = check_training_checkpoint(
                ckpt_path,
                "--ckpt_path",
                "pass a checkpoint written by `stfuse fit` (<run>/checkpoints/last.ckpt)",
                resume=subcommand == "fit",
            )
            check_resume_matches(
                checkpoint,
                config,
                ckpt_path,
                "--ckpt_path",
                "start afresh without --ckpt_path",
                fit=subcommand == "fit",
            )
        model_args = config.get("model.init_args") if config.get("model") is not None else None
        net = model_args.get("net") if model_args is not None else None
        if isinstance(net, dict) and "preset" in net:
            from stfuse.models import list_presets

            if net["preset"] not in list_presets():
                raise UsageError(
                    f"model.init_args.net: unknown preset {net['preset']!r}; choose one of {', '.join(list_presets())}"
                )
        data = config.get("data")
        for key, value in _walk(data, "data"):
            if not _is_root_key(key) or not isinstance(value, (str, os.PathLike, list, tuple)):
                continue  # None (the default), or a count such as val_min_per_root
            for folder in [value] if isinstance(value, (str, os.PathLike)) else list(value or []):
                if isinstance(folder, (str, os.PathLike)) and not Path(folder).is_dir():
                    problem = "is not a folder" if Path(folder).exists() else "does not exist"
                    raise UsageError(
                        f"{key}: '{folder}' {problem}; give an existing data folder (make: DATA_ROOT=...), "
                        "or null for the default"
                    )
        cpus = available_cpus()
        for key, value in list(_walk(data, "data")):
            if key.rsplit(".", 1)[-1] == "num_workers" and isinstance(value, int) and value > cpus:
                config[key] = cpus
                rank_zero_info(f"{key}: {value} workers on {cpus} CPUs; using {cpus}")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as error:
            message = self._explain_config_error(error)
            if message is None:
                raise
            raise UsageError(message) from error

    def _explain_config_error(self, error: BaseException) -> str | None:
        """One line for an error that a stage's or data module's constructor raised on its arguments."""
        from stfuse.models.checkpoint import CheckpointError

        cause = next((link for link in reversed(error_chain(error)) if _raised_in_project(link)), None)
        if cause is None or not isinstance(cause, (ValueError, TypeError, OSError)):
            return None
        config = self.config[self.config.subcommand]
        text = "; ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        source = config.get("model.init_args.source_ckpt") if config.get("model") is not None else None
        if isinstance(cause, CheckpointError) and source:
            message = f"model.init_args.source_ckpt: {text}"
            if not Path(source).exists():
                message += (
                    "; train the source stage first (make train-mfif, or stfuse fit --config experiments/mfif.yaml) "
                    "or pass --model.init_args.source_ckpt PATH"
                )
            return message
        cls = _constructing_class(cause)
        for key in ("model", "data"):
            node = config.get(key)
            paths = [(key, node.get("class_path"))] if node is not None else []
            paths += [(k[: -len(".class_path")], v) for k, v in _walk(node, key) if k.endswith(".class_path")]
            for where, class_path in paths:
                if cls is not None and str(class_path).rsplit(".", 1)[-1] == cls.__name__:
                    return f"{where} ({class_path}): {text}"
        return text

    # ---- trainer ------------------------------------------------------------------------------------------
    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        hide_lightning_tips()
        trainer_config = self._get(self.config_init, "trainer", default={}) or {}
        callbacks = trainer_config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        wants_bar = trainer_config.get("enable_progress_bar") is not False and not trainer_config.get(
            "fast_dev_run"
        )
        extra: list[Any] = []
        if wants_bar and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            extra.append(progress_callback())
        if any(isinstance(cb, ModelCheckpoint) and cb.save_last for cb in callbacks) and not any(
            isinstance(cb, IntervalCheckpoint) for cb in callbacks
        ):
            # Its end-of-run save makes last.ckpt the final step when max_steps ends the run mid-epoch.
            extra.append(IntervalCheckpoint(every_n_train_steps=None, every_minutes=None))
        if extra and "callbacks" not in kwargs:
            kwargs["callbacks"] = [*callbacks, *extra]
        try:
            return super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:  # Lightning's type for a bad trainer setting
            message = " ".join(str(error).split())
            accelerator = trainer_config.get("accelerator")
            if accelerator not in (None, "auto", "cpu") and re.search(
                r"gpu|cuda|mps|accelerator|backend", message, re.I
            ):
                message = (
                    f"trainer.accelerator {accelerator!r}: {message} (this machine has none); "
                    "use --trainer.accelerator cpu or auto"
                )
            else:
                message = f"trainer: {message}"
            raise UsageError(message) from error

    def _pin_checkpoint_dirs(self) -> None:
        """Give every ModelCheckpoint without a dirpath ``<default_root_dir>/checkpoints``.

        Lightning's default puts checkpoints under the logger's versioned folder, which changes on
        every run; a fixed folder is what lets a rerun find ``last.ckpt`` and resume.
        """
        root = Path(self.trainer.default_root_dir)
        for callback in self.trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(root / "checkpoints")

    def before_validate(self) -> None:
        self._pin_checkpoint_dirs()

    def before_test(self) -> None:
        self._pin_checkpoint_dirs()

    def before_fit(self) -> None:
        self._pin_checkpoint_dirs()
        config = self.config_init["fit"]
        if config.get("ckpt_path") or not config.get("auto_resume", True):
            return
        candidates = []
        folder = next(
            (
                Path(cb.dirpath)
                for cb in self.trainer.callbacks
                if isinstance(cb, ModelCheckpoint) and cb.dirpath
            ),
            None,
        )
        if folder is not None:
            last = folder / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
            if last.is_file():
                candidates.append(last)
        hpc = latest_hpc_checkpoint(self.trainer.default_root_dir)
        if hpc is not None:
            candidates.append(hpc)  # written by Lightning when SLURM preempts and requeues the job
        if not candidates:
            return
        chosen = max(candidates, key=lambda path: path.stat().st_mtime)
        fix = "delete or move it, or pass --auto_resume false to start afresh"
        checkpoint = check_training_checkpoint(chosen, "auto-resume:", fix, resume=True)
        check_resume_matches(checkpoint, self.config["fit"], chosen, "auto-resume:", fix, fit=True)
        rank_zero_info(f"Resuming from {chosen} (pass --auto_resume false to start afresh)")
        config["ckpt_path"] = str(chosen)


def run_lightning_cli(args: list[str] | None = None) -> STFuseCLI:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    check_config_files(list(sys.argv[1:] if args is None else args))
    return STFuseCLI(
        model_class=FusionStageBase,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
