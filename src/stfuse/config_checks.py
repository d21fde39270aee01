"""Checks of a training run's inputs that need no Lightning: the ``--config`` files, and whether a checkpoint
to resume from belongs to the configured stage and network. :mod:`stfuse.lightning_cli` runs them before any
work; each failure is a :class:`~stfuse.errors.UsageError` naming the file or key."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stfuse.errors import UsageError

__all__ = ["check_config_files", "check_resume_matches"]


def check_config_files(argv: list[str]) -> None:
    """Each ``--config``/``-c`` file exists and is a YAML mapping, or a :class:`UsageError` names it (the
    parser would print its whole usage and a YAML error that names no file)."""
    import yaml

    paths = []
    for index, arg in enumerate(argv):
        if arg in ("--config", "-c") and index + 1 < len(argv):
            paths.append(argv[index + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    for text in paths:
        path = Path(text)
        if not path.exists():
            if any(mark in text for mark in ":{\n"):
                continue  # an inline YAML string, which jsonargparse also accepts
            raise UsageError(f"--config '{text}': file not found")
        if path.is_dir():
            raise UsageError(f"--config '{text}': is a folder, not a YAML file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise UsageError(f"--config '{text}': not valid YAML: {problem}{where}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"--config '{text}': cannot be read: {error}") from None
        if not isinstance(loaded, dict):
            found = "nothing" if loaded is None else f"a {type(loaded).__name__}"
            raise UsageError(
                f"--config '{text}': holds {found}, not a mapping of settings (trainer:, model:, data:)"
            )


def _short(class_path: Any) -> str:
    return str(class_path).rsplit(".", 1)[-1]


def _as_json(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    except (TypeError, ValueError):
        return value


def check_resume_matches(
    checkpoint: dict[str, Any], config: Any, path: str | os.PathLike[str], what: str, fix: str, fit: bool
) -> None:
    """Refuse a checkpoint of another stage than the config's ``model.class_path`` (any subcommand), and for
    ``fit`` one whose network differs from the config's explicit ``model.init_args.net`` keys: Lightning
    would otherwise replace the config's model by the checkpoint's without a word, or fail deep in a step."""
    hparams = checkpoint.get("hyper_parameters") or {}
    model = config.get("model") if config is not None else None
    if not isinstance(hparams, dict) or model is None:
        return
    class_path, stored_class = model.get("class_path"), hparams.get("_class_path")
    if class_path and stored_class and _short(class_path) != _short(stored_class):
        hint = ""
        if _short(stored_class) == "MFIFStage" and _short(class_path) == "IVIFTransferStage":
            hint = "; a source-stage checkpoint to transfer from goes to --model.init_args.source_ckpt"
        raise UsageError(
            f"{what} '{path}': a checkpoint of {_short(stored_class)} ({stored_class}), but the config trains "
            f"{_short(class_path)} ({class_path}){hint}; {fix}"
        )
    init_args = model.get("init_args")
    net = init_args.get("net") if init_args is not None else None
    stored_net = hparams.get("net")
    if not fit or not isinstance(net, dict) or not isinstance(stored_net, dict):
        return
    from stfuse.models import build_network

    wanted = dict(net)
    try:
        full = dict(build_network(wanted).config)
    except (TypeError, ValueError):  # the stage's constructor names a bad network config itself
        return
    keys = list(full) if "preset" in wanted else [key for key in wanted if key in full]
    differences = [
        f"{key}: checkpoint {stored_net.get(key)!r}, config {full[key]!r}"
        for key in sorted(keys, key=lambda k: (k != "preset", k))
        if key in stored_net and _as_json(stored_net[key]) != _as_json(full[key])
    ]
    if differences:
        raise UsageError(
            f"{what} '{path}': its network differs from the config's model.init_args.net "
            f"({'; '.join(differences)}); resume with the network it was trained with, or {fix}"
        )
