"""W&B sweeps that drive the LightningCLI: validate a spec, sample it, build the agent's command, run it.

The specs live in ``experiments/sweeps/``. Each one's ``command`` passes the sampled parameters as
``--config ${args_json_file}`` (a JSON file of dotted keys such as ``model.init_args.lambda_g``), which
keeps types: ``${args}`` would turn None into the string 'None' and a dict into its Python repr.

Commands::

    python -m stfuse.utils.sweeps create experiments/sweeps/ivif_loss_weights.yaml   # make sweep SWEEP=...
    python -m stfuse.utils.sweeps sample experiments/sweeps/guidance_modes.yaml [--run] [-- EXTRA ARGS]
    python -m stfuse sweep run fit --config ...                                        # what the agent runs

``sample`` draws one configuration locally (no W&B server) and prints, or runs, exactly the command an
agent would run, which is how the tests check every spec. ``run`` is the sweep's entry point: it gives
each W&B run its own output folder, so concurrent agents never share (or auto-resume from) one another's
``last.ckpt``, while an agent-restarted run resumes its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
#: Distributions W&B accepts, with the keys each needs.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "categorical": ("values",),
    "int_uniform": ("min", "max"),
    "uniform": ("min", "max"),
    "q_uniform": ("min", "max"),
    "log_uniform": ("min", "max"),
    "log_uniform_values": ("min", "max"),
    "q_log_uniform": ("min", "max"),
    "q_log_uniform_values": ("min", "max"),
    "inv_log_uniform": ("min", "max"),
    "inv_log_uniform_values": ("min", "max"),
    "normal": (),
    "q_normal": (),
    "log_normal": (),
    "q_log_normal": (),
    "beta": (),
    "q_beta": (),
}
#: The agent's command when a spec has none (W&B's default).
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")
#: Where ``run`` puts each sweep run's folder: <root>/<sweep id>/<run id>.
SWEEP_ROOT_ENV = "STFUSE_SWEEP_ROOT"
DEFAULT_SWEEP_ROOT = "outputs/sweeps"


class SweepSpecError(ValueError):
    """A sweep spec that W&B would reject or that cannot drive our CLI."""


# ---- loading and validation ----------------------------------------------------------------------
def load_spec(path: str | Path) -> dict[str, Any]:
    """Read and validate a sweep YAML (see :func:`validate_spec`)."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SweepSpecError(f"sweep spec {path} does not exist") from None
    except yaml.YAMLError as error:
        raise SweepSpecError(f"{path} is not valid YAML (quote macros inside [...] lists): {error}") from None
    if not isinstance(spec, dict):
        raise SweepSpecError(f"{path}: a sweep spec is a mapping, got {type(spec).__name__}")
    validate_spec(spec, source=str(path))
    return spec


def validate_spec(spec: dict[str, Any], source: str = "sweep spec") -> None:
    """Check the parts W&B checks (method, metric, parameters) and that the command passes parameters."""
    method = spec.get("method")
    if method not in METHODS:
        raise SweepSpecError(f"{source}: method must be one of {METHODS}, got {method!r}")
    metric = spec.get("metric")
    if metric is not None:
        if (
            not isinstance(metric, dict)
            or not metric.get("name")
            or metric.get("goal", "minimize") not in GOALS
        ):
            raise SweepSpecError(f"{source}: metric needs a name and a goal in {GOALS}, got {metric!r}")
    elif method == "bayes":
        raise SweepSpecError(f"{source}: bayes search needs a metric to model")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise SweepSpecError(f"{source}: parameters must be a non-empty mapping")
    for name, param in parameters.items():
        _check_param(f"{source}: parameter {name!r}", param, grid=method == "grid")
    command = spec.get("command", DEFAULT_COMMAND)
    if not isinstance(command, list) or not all(isinstance(c, (str, int, float)) for c in command):
        raise SweepSpecError(f"{source}: command must be a list of strings, got {command!r}")
    if not any(str(c).startswith("${args") for c in command):
        raise SweepSpecError(
            f"{source}: the command never passes the sampled parameters (${{args}} or ${{args_json_file}})"
        )
    if "${program}" in command and not spec.get("program"):
        raise SweepSpecError(f"{source}: the command uses ${{program}} but the spec has no program")


def _distribution(param: dict[str, Any], where: str) -> str:
    """The parameter's distribution, inferred the way W&B infers it when not given."""
    if "distribution" in param:
        return str(param["distribution"])
    if "value" in param:
        return "constant"
    if "values" in param:
        return "categorical"
    if "min" in param and "max" in param:
        lo, hi = param["min"], param["max"]
        if isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool):
            return "int_uniform"
        if isinstance(lo, float) and isinstance(hi, float):
            return "uniform"
        raise SweepSpecError(
            f"{where}: give min and max both as ints (int_uniform) or both as floats (uniform)"
        )
    raise SweepSpecError(f"{where}: needs value, values, min/max, a distribution or nested parameters")


def _check_param(where: str, param: Any, grid: bool) -> None:
    if not isinstance(param, dict):
        raise SweepSpecError(f"{where}: expected a mapping, got {param!r}")
    if "parameters" in param:
        nested = param["parameters"]
        if not isinstance(nested, dict) or not nested:
            raise SweepSpecError(f"{where}: nested parameters must be a non-empty mapping")
        for key, sub in nested.items():
            _check_param(f"{where}.{key}", sub, grid)
        return
    dist = _distribution(param, where)
    if dist not in DISTRIBUTIONS:
        raise SweepSpecError(f"{where}: unknown distribution {dist!r}; W&B knows {sorted(DISTRIBUTIONS)}")
    missing = [key for key in DISTRIBUTIONS[dist] if key not in param]
    if missing:
        raise SweepSpecError(f"{where}: distribution {dist} needs {missing}")
    if dist == "categorical":
        values = param["values"]
        if not isinstance(values, list) or not values:
            raise SweepSpecError(f"{where}: values must be a non-empty list")
        probabilities = param.get("probabilities")
        if probabilities is not None and (
            len(probabilities) != len(values) or not math.isclose(sum(probabilities), 1.0)
        ):
            raise SweepSpecError(f"{where}: probabilities must match values and sum to 1")
    if "min" in param and "max" in param and not param["min"] < param["max"]:
        raise SweepSpecError(f"{where}: min must be below max")
    if grid and dist not in ("constant", "categorical", "int_uniform"):
        raise SweepSpecError(
            f"{where}: grid search needs discrete parameters (value, values or int_uniform), got {dist}"
        )


# ---- sampling -----------------------------------------------------------------------------------
def sample_parameters(spec: dict[str, Any], rng: np.random.Generator | int | None = None) -> dict[str, Any]:
    """One configuration drawn from the spec's parameter space, as W&B's random search would draw it.

    Nested ``parameters`` give a dict value (as W&B passes them). Grid and bayes specs are sampled as if
    random: which point a server picks does not matter for checking that a point runs.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return {name: _sample(param, rng, name) for name, param in spec["parameters"].items()}


def _quantize(value: float, q: float) -> float:
    return round(value / q) * q


def _sample(param: dict[str, Any], rng: np.random.Generator, where: str) -> Any:
    if "parameters" in param:
        return {key: _sample(sub, rng, f"{where}.{key}") for key, sub in param["parameters"].items()}
    dist = _distribution(param, where)
    q = float(param.get("q", 1.0))
    lo, hi = param.get("min"), param.get("max")
    if dist == "constant":
        return param["value"]
    if dist == "categorical":
        values = param["values"]
        return values[int(rng.choice(len(values), p=param.get("probabilities")))]
    if dist == "int_uniform":
        return int(rng.integers(int(lo), int(hi) + 1))
    if dist == "uniform":
        return float(rng.uniform(lo, hi))
    if dist == "q_uniform":
        return _quantize(rng.uniform(lo, hi), q)
    if dist in ("log_uniform", "q_log_uniform"):  # min/max are natural-log exponents
        value = math.exp(rng.uniform(lo, hi))
        return _quantize(value, q) if dist.startswith("q_") else value
    if dist in ("log_uniform_values", "q_log_uniform_values"):
        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return _quantize(value, q) if dist.startswith("q_") else value
    if dist == "inv_log_uniform":
        return math.exp(-rng.uniform(lo, hi))
    if dist == "inv_log_uniform_values":
        return 1.0 / math.exp(rng.uniform(math.log(1.0 / hi), math.log(1.0 / lo)))
    mu, sigma = float(param.get("mu", 0.0)), float(param.get("sigma", 1.0))
    if dist in ("normal", "q_normal"):
        value = rng.normal(mu, sigma)
        return _quantize(value, q) if dist == "q_normal" else float(value)
    if dist in ("log_normal", "q_log_normal"):
        value = math.exp(rng.normal(mu, sigma))
        return _quantize(value, q) if dist == "q_log_normal" else value
    if dist in ("beta", "q_beta"):
        value = rng.beta(float(param.get("a", 1.0)), float(param.get("b", 1.0)))
        return _quantize(value, q) if dist == "q_beta" else float(value)
    raise SweepSpecError(f"{where}: cannot sample distribution {dist!r}")


def grid_points(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every configuration of a grid spec, in W&B's order (the last parameter varies fastest)."""
    if spec.get("method") != "grid":
        raise SweepSpecError("grid_points needs method: grid")

    def options(param: dict[str, Any], where: str) -> list[Any]:
        if "parameters" in param:
            keys = list(param["parameters"])
            combos = itertools.product(*(options(param["parameters"][k], f"{where}.{k}") for k in keys))
            return [dict(zip(keys, combo)) for combo in combos]
        dist = _distribution(param, where)
        if dist == "constant":
            return [param["value"]]
        if dist == "categorical":
            return list(param["values"])
        return list(range(int(param["min"]), int(param["max"]) + 1))

    names = list(spec["parameters"])
    for combo in itertools.product(*(options(spec["parameters"][n], n) for n in names)):
        yield dict(zip(names, combo))


# ---- the agent's command -------------------------------------------------------------------------
def command_args(params: dict[str, Any]) -> dict[str, list[str]]:
    """The argument formats W&B's agent fills in, built the way it builds them (values through ``str``)."""
    return {
        "args": [f"--{k}={v}" for k, v in params.items()],
        "args_no_equals": [part for k, v in params.items() for part in (f"--{k}", str(v))],
        "args_no_hyphens": [f"{k}={v}" for k, v in params.items()],
        "args_no_boolean_flags": [
            f"--{k}" if v is True else f"--{k}={v}"
            for k, v in params.items()
            if not (isinstance(v, bool) and not v)
        ],
        "args_json": [json.dumps(params)],
        "args_append_hydra": [f"+{k}={v}" for k, v in params.items()],
        "args_override_hydra": [f"++{k}={v}" for k, v in params.items()],
    }


def agent_command(
    spec: dict[str, Any],
    params: dict[str, Any],
    *,
    run_id: str = "localrun",
    sweep_id: str = "localsweep",
    base_dir: str | Path = ".",
    environ: dict[str, str] | None = None,
) -> list[str]:
    """The command line a ``wandb agent`` would start for ``params``, with its macros expanded.

    Follows wandb 0.31's agent: ``${envvar:NAME}`` from the environment (left as NAME when unset),
    ``${env}`` → ``/usr/bin/env`` (not on Windows), ``${interpreter}`` → ``python`` (whatever PATH finds:
    run agents with the project's venv first on PATH), ``${program}`` → the spec's program, and
    ``${args_json_file}`` → ``<base_dir>/wandb/sweep-<sweep_id>/config-<run_id>.json``, which this writes.
    """
    environ = dict(os.environ if environ is None else environ)
    command = [str(c) for c in spec.get("command", DEFAULT_COMMAND)]
    for i, chunk in enumerate(command):
        for match in reversed(list(_ENVVAR.finditer(chunk))):
            chunk = (
                chunk[: match.start()] + environ.get(match.group(1), match.group(1)) + chunk[match.end() :]
            )
        command[i] = chunk
    variables = command_args(params)
    variables["interpreter"] = ["python"]
    variables["program"] = [str(spec["program"])] if spec.get("program") else []
    if platform.system() != "Windows":
        variables["env"] = ["/usr/bin/env"]
    if "${args_json_file}" in command:
        json_path = Path(base_dir) / "wandb" / f"sweep-{sweep_id}" / f"config-{run_id}.json"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(variables["args_json"][0])
        variables["args_json_file"] = [str(json_path)]
    expanded: list[str] = []
    for chunk in command:
        if chunk.startswith("${") and chunk.endswith("}"):
            expanded += variables.get(chunk[2:-1]) or []
        else:
            expanded.append(chunk)
    return expanded


# ---- the sweep's entry point -----------------------------------------------------------------------
def sweep_run_args(argv: Sequence[str], environ: dict[str, str] | None = None) -> list[str]:
    """``argv`` for the LightningCLI, with a per-run output folder when launched by a W&B agent.

    The agent sets ``WANDB_SWEEP_ID`` and ``WANDB_RUN_ID``; the folder is
    ``$STFUSE_SWEEP_ROOT/<sweep>/<run>`` (default ``outputs/sweeps``). Outside an agent ``argv`` is
    returned unchanged.
    """
    environ = dict(os.environ if environ is None else environ)
    sweep_id, run_id = environ.get("WANDB_SWEEP_ID"), environ.get("WANDB_RUN_ID")
    args = list(argv)
    if not sweep_id or not run_id:
        return args
    root = Path(environ.get(SWEEP_ROOT_ENV, DEFAULT_SWEEP_ROOT)) / sweep_id / run_id
    return [*args, "--trainer.default_root_dir", str(root)]


# ---- command line ---------------------------------------------------------------------------------
def _cmd_create(spec_path: str, project: str | None, entity: str | None) -> int:
    import wandb

    spec = load_spec(spec_path)
    project = project or os.environ.get("WANDB_PROJECT") or spec.get("project") or "stfuse"
    entity = entity or os.environ.get("WANDB_ENTITY") or spec.get("entity")
    sweep_id = wandb.sweep(sweep=spec, project=project, entity=entity)
    path = "/".join(part for part in (entity, project, sweep_id) if part)
    print(f"Created sweep {sweep_id} from {spec_path}.")
    print(f"Start an agent (one per GPU, e.g. CUDA_VISIBLE_DEVICES=0):\n  make agent SWEEP_ID={path}")
    return 0


def _cmd_sample(spec_path: str, seed: int | None, run: bool, extra: list[str]) -> int:
    import subprocess
    import tempfile

    spec = load_spec(spec_path)
    params = sample_parameters(spec, seed)
    # The agent writes its JSON under ./wandb; a local draw keeps the checkout clean.
    command = agent_command(spec, params, base_dir=tempfile.mkdtemp(prefix="stfuse-sweep-")) + list(extra)
    print(json.dumps(params, indent=2))
    print(" ".join(command))
    if not run:
        return 0
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.call(command, env=env)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        # `stfuse sweep run` (the CLI) runs the command; specs created before it was a sub-command still
        # start this module, which hands over to it without importing the CLI here.
        os.execv(sys.executable, [sys.executable, "-m", "stfuse", "sweep", *argv])
    parser = argparse.ArgumentParser(
        prog="python -m stfuse.utils.sweeps", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="validate a spec and create the sweep on the W&B server")
    create.add_argument("spec")
    create.add_argument("--project", default=None)
    create.add_argument("--entity", default=None)
    sample = sub.add_parser(
        "sample",
        help="draw one configuration and print (or --run) the agent's command; arguments after -- are appended",
    )
    sample.add_argument("spec")
    sample.add_argument("--seed", type=int, default=None)
    sample.add_argument("--run", action="store_true", help="run it (WANDB_MODE defaults to offline)")
    sub.add_parser(
        "run",
        help="the sweep's entry point (stfuse sweep run): ARGS through the LightningCLI in a per-run folder",
    )
    # Everything after "--" is appended to the sampled command verbatim (argparse would parse it).
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    try:
        if args.command == "create":
            return _cmd_create(args.spec, args.project, args.entity)
        return _cmd_sample(args.spec, args.seed, args.run, extra)
    except SweepSpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
