"""The ``stfuse`` command.

``fit``/``validate``/``test``/``predict`` go to the LightningCLI (see :mod:`stfuse.lightning_cli`); the tool
commands (``fuse``, ``evaluate``, ``export``, ``demo``, ``dock``, ``sweep``) have their own parsers. This
module imports nothing heavy: ``stfuse --help`` and ``stfuse --version`` never load torch, and each command
imports only what it runs.

From the shell (the console script, ``python -m stfuse``) the exit status is 0 on success, 2 on a bad input
(a one-line ``stfuse <command>: error: ...`` naming the file or key and the fix) and 1 when some work failed.
Unexpected errors keep their traceback. ``STFUSE_TRACEBACK=1`` shows the traceback of input errors too.
"""

from __future__ import annotations

import os
import sys

# UsageError (stfuse.errors) and available_cpus (stfuse.runtime) stay importable from here.
from stfuse.errors import UsageError, error_chain
from stfuse.runtime import available_cpus

__all__ = [
    "EXIT_INPUT_ERROR",
    "LIGHTNING_COMMANDS",
    "TOOL_COMMANDS",
    "UsageError",
    "available_cpus",
    "console",
    "describe_input_error",
    "main",
]

# Idle OpenMP threads sleep instead of spinning, in every command. Spinning threads fight other processes for
# the cores: on a busy 2-core machine they made `make demo` and `stfuse evaluate` 2-6x slower. OpenMP reads
# this once, when torch loads, so it is set here, before any command imports torch.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

#: exit status of a run that stopped on a bad input (argparse uses 2 for bad arguments too)
EXIT_INPUT_ERROR = 2

#: the training sub-commands, handled by the LightningCLI, with their one-line help
LIGHTNING_COMMANDS: dict[str, str] = {
    "fit": "train a stage from YAML configs (experiments/mfif.yaml, experiments/ivif.yaml); resumes from last.ckpt",
    "validate": "run the validation loop of a stage on a checkpoint (--ckpt_path)",
    "test": "run the test loop of a stage on a checkpoint (--ckpt_path): per-image metric tables",
    "predict": "write fused images of a stage's predict data with a checkpoint (--ckpt_path)",
}

#: sub-command -> "module:function"; each function takes ``argv`` and returns an exit code.
TOOL_COMMANDS: dict[str, str] = {
    "fuse": "stfuse.inference.cli:fuse_main",
    "evaluate": "stfuse.evaluation.cli:main",
    "export": "stfuse.inference.cli:export_main",
    "demo": "stfuse.demo:main",
    "dock": "stfuse.docking.cli:main",
    "sweep": "stfuse.utils.sweeps:main",
}

TOOL_SUMMARIES: dict[str, str] = {
    "fuse": "fuse infrared/visible pairs (folders, files or a data set) with trained weights or a baseline",
    "evaluate": "fusion metrics of fused images against their sources: CSV/Markdown/JSON tables, HTML report",
    "export": "export a trained network to ONNX, checked against the eager network in ONNX Runtime",
    "demo": "train both stages on built-in synthetic data, fuse held-out pairs, compare with baselines",
    "dock": "downstream detection on MSRS: train a detector on IR, VIS and fused images, compare mAP",
    "sweep": "W&B sweeps over the training configs: create, sample, or run one configuration",
}


def version() -> str:
    from stfuse import __version__

    return __version__


def help_text() -> str:
    width = max(len(name) for name in (*LIGHTNING_COMMANDS, *TOOL_COMMANDS)) + 2
    lines = [
        "usage: stfuse <command> [options]      (stfuse <command> --help for a command's options)",
        "",
        "Infrared/visible image fusion by semisupervised transfer from multi-focus fusion.",
        "",
        "training (LightningCLI: YAML configs, --config, dotted --key value overrides):",
        *(f"  {name:<{width}}{summary}" for name, summary in LIGHTNING_COMMANDS.items()),
        "",
        "tools:",
        *(f"  {name:<{width}}{summary}" for name, summary in TOOL_SUMMARIES.items()),
        "",
        "options:",
        f"  {'-h, --help':<{width + 2}}show this message",
        f"  {'--version':<{width + 2}}print the version",
        "",
        "examples:",
        "  stfuse fit --config experiments/mfif.yaml --config experiments/trainer/cpu.yaml",
        "  stfuse fuse --ir data/ir --vi data/vi --out fused/",
        "  stfuse evaluate --dataset tno --root ../shared/data --fused ours=fused/ --baseline avg",
        "",
        "exit status: 0 success, 1 some work failed, 2 bad input (one line naming the file or key and the fix).",
        "STFUSE_TRACEBACK=1 adds the traceback to input errors.",
    ]
    return "\n".join(lines)


_LIGHTNING_USAGE = {
    "fit": "Train a stage. The YAML picks the stage (model.class_path) and the data (data.class_path); a rerun\n"
    "resumes from <default_root_dir>/checkpoints/last.ckpt (written at epoch ends and every few minutes).",
    "validate": "Run a stage's validation loop on a checkpoint (--ckpt_path) and print the metrics.",
    "test": "Run a stage's test loop on a checkpoint (--ckpt_path): per-image metric tables in the log folder.",
    "predict": "Write fused images of the predict data with a checkpoint (--ckpt_path) and a FusedImageWriter callback.",
}


def lightning_help(command: str) -> str:
    """A short help for the training commands that needs no Lightning import; ``--help-all`` gives every option."""
    lines = [
        f"usage: stfuse {command} --config CONFIG.yaml [--config OVERLAY.yaml ...] [--KEY VALUE ...]",
        "",
        _LIGHTNING_USAGE[command],
        "",
        "configs (in experiments/):",
        "  mfif.yaml                source stage: supervised multi-focus fusion on synthesized pairs",
        "  ivif.yaml                target stage: transfer to infrared/visible fusion from a source checkpoint",
        "  trainer/<preset>.yaml    cpu, gpu, ddp, ddp_sim, multinode;  ablations/<name>.yaml: ablation overlays",
        "",
        "common options:",
        "  --config PATH                       a YAML config; repeat to overlay",
        "  --trainer.max_steps N               also --trainer.max_epochs N, --trainer.accelerator, --trainer.devices",
        "  --trainer.default_root_dir DIR      checkpoints (DIR/checkpoints/last.ckpt) and logs",
        "  --data.init_args.roots '[DIR]'      training images (mfif.yaml); null: the built-in synthetic data",
        "  --model.init_args.source_ckpt PATH  the source-stage checkpoint (ivif.yaml)",
        "  --ckpt_path PATH                    resume from (fit) or evaluate (validate/test/predict) this checkpoint",
    ]
    if command == "fit":
        lines.append("  --auto_resume false                 start afresh even when last.ckpt exists")
    lines += [
        "  --print_config                      print the resolved config and exit",
        "  --help-all                          every option of the trainer, the stage and the data (loads Lightning)",
        "",
        "Inputs are checked first: a bad one stops the run with one line naming the key or file (exit status 2).",
    ]
    return "\n".join(lines)


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, [*LIGHTNING_COMMANDS, *TOOL_COMMANDS], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def main(args: list[str] | None = None) -> object:
    """Run one ``stfuse`` command.

    From the command line (``args=None``) this exits the process with the command's status. Called from
    Python with ``args``, it returns what the command returns (the LightningCLI object for the training
    commands, an exit code for the tools) and lets exceptions propagate.
    """
    if args is None:
        sys.exit(console(sys.argv[1:]))
    return _dispatch(list(args), from_shell=False)


def console(argv: list[str]) -> int:
    """The shell entry point: an exit status, with bad inputs reported as one line (see the module doc)."""
    argv = list(argv)
    command = argv[0] if argv else ""
    try:
        result = _dispatch(argv, from_shell=True)
    except KeyboardInterrupt:
        print(f"stfuse {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # input errors become one line; anything else keeps its traceback
        message = describe_input_error(error)
        if message is None:
            raise
        if os.environ.get("STFUSE_TRACEBACK"):
            import traceback

            traceback.print_exception(error)
        print(f"stfuse {command}: error: {message}".rstrip(), file=sys.stderr)
        return EXIT_INPUT_ERROR
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _dispatch(argv: list[str], from_shell: bool) -> object:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(help_text(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_INPUT_ERROR
    if argv[0] in ("-V", "--version"):
        print(f"stfuse {version()}")
        return 0
    command = argv[0]
    if command == "sweep" and argv[1:2] == ["run"]:  # what a sweep agent runs: fit/... in a per-run folder
        from stfuse.utils.sweeps import sweep_run_args

        return _dispatch(sweep_run_args(argv[2:]), from_shell)
    if command in TOOL_COMMANDS:
        import importlib

        module_name, func_name = TOOL_COMMANDS[command].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return func(argv[1:])
    if command in LIGHTNING_COMMANDS and argv[1:] in (["-h"], ["--help"]):
        print(lightning_help(command))
        return 0
    if command in LIGHTNING_COMMANDS and "--help-all" in argv:
        argv = [arg if arg != "--help-all" else "--help" for arg in argv]
        if from_shell:
            sys.argv[1:] = argv  # LightningCLI reads sys.argv itself from the shell
    if command in LIGHTNING_COMMANDS or command.startswith("-"):
        from stfuse.config_checks import check_config_files

        check_config_files(argv)  # before Lightning loads: a bad --config costs no start-up
        from stfuse.lightning_cli import run_lightning_cli

        # From the shell LightningCLI reads sys.argv itself (given both, it warns).
        return run_lightning_cli(None if from_shell and argv == sys.argv[1:] else argv)
    print(
        f"stfuse: error: unknown command '{command}'{_suggest(command)} (stfuse --help lists them)",
        file=sys.stderr,
    )
    return EXIT_INPUT_ERROR


# ---- input errors -------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe_input_error(error: BaseException) -> str | None:
    """One line for an error that a user's input caused (a missing or unsafe file, an unknown name, an
    unwritable output), or None for anything else, which is then shown with its traceback.

    The types are the project's own input errors, raised with messages that name the file or key, plus
    operating-system errors on a named file.
    """
    for link in error_chain(error):
        if isinstance(link, UsageError):
            return _one_line(str(link))
    input_types = _input_error_types()
    for link in error_chain(error):
        if input_types and isinstance(link, input_types):
            return _one_line(str(link))
    for link in error_chain(error):
        if isinstance(link, OSError) and getattr(link, "filename", None) and link.strerror:
            return f"'{link.filename}': {link.strerror}"
    return None


def _input_error_types() -> tuple[type[BaseException], ...]:
    """The project's input-error classes among the modules already imported (importing one to check an
    error would be pointless: an error of a class never imported cannot have been raised)."""
    names = [
        ("stfuse.models.checkpoint_readers", "CheckpointError"),
        ("stfuse.inference.fuser", "NoDefaultWeightsError"),
        ("stfuse.evaluation.io", "EvaluationInputError"),
        ("data_modules.paired", "DatasetError"),
        ("data_modules.io", "ImageReadError"),
        ("data_modules.io", "ImageWriteError"),
        ("stfuse.docking.errors", "DockingError"),
        ("stfuse.utils.sweeps", "SweepSpecError"),
    ]
    found = []
    for module_name, class_name in names:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)
