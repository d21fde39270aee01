"""W&B sweep specs: each parses, samples, expands to the agent's exact command, and that command runs.

The command is built the way wandb 0.31's agent builds it (``${env}``, ``${interpreter}``,
``${args_json_file}``, ...) and executed offline with ``--trainer.fast_dev_run 1`` on tiny embedded
data. The runs go through the command's own entry point (``python -m stfuse sweep run``), called
in-process to spare the interpreter start-up; one spec is also run as a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import yaml

from data_modules import MFIFDataModule
from stfuse.cli import main as stfuse_main
from stfuse.stages import MFIFStage
from stfuse.utils import sweeps
from stfuse.utils.sweeps import (
    SweepSpecError,
    agent_command,
    command_args,
    grid_points,
    load_spec,
    sample_parameters,
    sweep_run_args,
    validate_spec,
)

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))
TINY_NET = {"preset": "tiny"}


def test_every_expected_sweep_exists():
    assert {p.stem for p in SPECS} >= {"ivif_loss_weights", "guidance_modes", "cem_variants"}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_is_valid_and_passes_typed_arguments(path):
    spec = load_spec(path)
    assert "${args_json_file}" in spec["command"], "sweeps pass parameters as JSON so types survive"
    params = sample_parameters(spec, 0)
    assert set(params) == set(spec["parameters"])
    assert spec["metric"]["name"].startswith("val/")


# ---- the sampler follows each distribution -------------------------------------------------------------
def _one(param: dict[str, Any], seed: int = 0, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = {"parameters": {"x": param}}
    return np.array([sample_parameters(spec, rng)["x"] for _ in range(n)])


def test_sampler_respects_bounds_and_scales():
    log_values = _one({"distribution": "log_uniform_values", "min": 0.01, "max": 100.0})
    assert log_values.min() >= 0.01 and log_values.max() <= 100.0
    assert 0.2 < np.mean(log_values < 1.0) < 0.8, "log-uniform puts half the mass below the geometric mean"
    exponents = _one({"distribution": "log_uniform", "min": 0.0, "max": 1.0})
    assert exponents.min() >= 1.0 and exponents.max() <= np.e
    ints = _one({"min": 2, "max": 4})
    assert set(ints.tolist()) == {2, 3, 4}
    floats = _one({"min": 0.5, "max": 0.75})
    assert floats.dtype.kind == "f" and floats.min() >= 0.5 and floats.max() <= 0.75
    quantised = _one({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25})
    assert set(np.round(quantised, 6).tolist()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    normal = _one({"distribution": "normal", "mu": 3.0, "sigma": 0.1})
    assert abs(normal.mean() - 3.0) < 0.05
    weighted = _one({"values": ["a", "b"], "probabilities": [0.9, 0.1]})
    assert 0.8 < np.mean(weighted == "a") < 0.97
    assert set(_one({"value": 7}).tolist()) == {7}


def test_nested_parameters_give_a_dict_and_grids_enumerate_them():
    spec = load_spec(REPO / "experiments" / "sweeps" / "cem_variants.yaml")
    drawn = sample_parameters(spec, 1)["model.init_args.net"]
    assert isinstance(drawn, dict) and drawn["cem"] in {"full", "self", "mutual", "off"}
    points = list(grid_points(spec))
    assert len(points) == 8
    assert {p["model.init_args.net"]["cem"] for p in points} == {"full", "self", "mutual", "off"}


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"method": "sideways", "parameters": {"a": {"value": 1}}}, "method"),
        (
            {"method": "bayes", "parameters": {"a": {"min": 0.0, "max": 1.0}}, "command": ["${args}"]},
            "metric",
        ),
        (
            {"method": "grid", "parameters": {"a": {"min": 0.0, "max": 1.0}}, "command": ["${args}"]},
            "discrete",
        ),
        (
            {"method": "random", "parameters": {"a": {"min": 0, "max": 1.0}}, "command": ["${args}"]},
            "both as ints",
        ),
        (
            {"method": "random", "parameters": {"a": {"values": [1]}}, "command": ["python", "x.py"]},
            "never passes",
        ),
        (
            {"method": "random", "parameters": {"a": {"distribution": "zipf"}}, "command": ["${args}"]},
            "unknown",
        ),
    ],
)
def test_invalid_specs_are_rejected_with_a_reason(spec, message):
    with pytest.raises(SweepSpecError, match=message):
        validate_spec(spec)


# ---- the agent's command ----------------------------------------------------------------------------------
def test_command_expansion_matches_wandb_agent(tmp_path):
    spec = {
        "method": "random",
        "program": "train.py",
        "parameters": {"lr": {"value": 0.1}},
        "command": [
            "${env}",
            "${interpreter}",
            "${program}",
            "--tag=${envvar:STFUSE_TAG}",
            "${args}",
            "--config",
            "${args_json_file}",
        ],
    }
    params = {"lr": 0.1, "flag": False, "empty": None, "net": {"cem": "off"}}
    command = agent_command(
        spec, params, run_id="r1", sweep_id="s1", base_dir=tmp_path, environ={"STFUSE_TAG": "x"}
    )
    json_file = tmp_path / "wandb" / "sweep-s1" / "config-r1.json"
    assert command == [
        "/usr/bin/env", "python", "train.py", "--tag=x",
        "--lr=0.1", "--flag=False", "--empty=None", "--net={'cem': 'off'}",
        "--config", str(json_file),
    ]  # fmt: skip
    assert json.loads(json_file.read_text()) == params, "the JSON file keeps None, booleans and dicts"
    assert command_args({"flag": False, "on": True})["args_no_boolean_flags"] == ["--on"]


def test_sweep_runs_get_their_own_folder():
    argv = ["fit", "--config", "x.yaml"]
    assert sweep_run_args(argv, environ={}) == argv
    isolated = sweep_run_args(
        argv, environ={"WANDB_SWEEP_ID": "s9", "WANDB_RUN_ID": "r7", "STFUSE_SWEEP_ROOT": "/tmp/sw"}
    )
    assert isolated[-2:] == ["--trainer.default_root_dir", str(Path("/tmp/sw") / "s9" / "r7")]


# ---- executing one sampled configuration of each spec ---------------------------------------------------
@pytest.fixture(scope="module")
def tiny_source_ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep_source")
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=str(root),
        callbacks=[pl.callbacks.ModelCheckpoint(dirpath=root, save_last=True)],
    )
    data = MFIFDataModule(
        crop_size=32, batch_size=2, num_workers=0, samples_per_epoch=2, val_samples=1, val_crop_size=32
    )
    trainer.fit(MFIFStage(net=TINY_NET, warmup_steps=1), datamodule=data)
    return root / "last.ckpt"


def _loader(prefix: str) -> list[str]:
    return [f"{prefix}crop_size", "32", f"{prefix}batch_size", "2", f"{prefix}num_workers", "0"]


def _tiny_overrides(spec: dict[str, Any], params: dict[str, Any], source_ckpt: Path) -> list[str]:
    """CPU, fast_dev_run, tiny embedded data and network (keeping any swept network option)."""
    args = ["--config", str(REPO / "experiments" / "trainer" / "cpu.yaml"), "--trainer.fast_dev_run", "1"]
    if "experiments/mfif.yaml" in spec["command"]:
        data = "--data.init_args."
        args += ["--model.init_args.net", json.dumps({**params.get("model.init_args.net", {}), **TINY_NET})]
        args += _loader(data) + [
            f"{data}val_crop_size",
            "32",
            f"{data}samples_per_epoch",
            "4",
            f"{data}val_samples",
            "2",
        ]
    else:
        ivif, replay = "--data.init_args.ivif.init_args.", "--data.init_args.replay.init_args."
        args += [
            "--model.init_args.source_ckpt",
            str(source_ckpt),
            "--model.init_args.val_metrics",
            "[EN,Qabf]",
        ]
        args += _loader(ivif) + [
            f"{ivif}default_train_size",
            "4",
            f"{ivif}default_image_size",
            "40",
            f"{ivif}val_size",
            "2",
        ]
        args += _loader(replay) + [f"{replay}samples_per_epoch", "4", f"{replay}val_samples", "1"]
    return args


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_sampled_configuration_runs_through_the_agent_command(path, tiny_source_ckpt, tmp_path, monkeypatch):
    spec = load_spec(path)
    params = sample_parameters(spec, 3)
    command = agent_command(spec, params, run_id="run3", sweep_id="sweep3", base_dir=tmp_path)
    assert command[:3] == ["/usr/bin/env", "python", "-m"], command
    assert command[3:6] == ["stfuse", "sweep", "run"], command
    monkeypatch.chdir(REPO)  # the agent runs from the checkout; the spec's config paths are relative to it
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SWEEP_ID", "sweep3")
    monkeypatch.setenv("WANDB_RUN_ID", "run3")
    monkeypatch.setenv(sweeps.SWEEP_ROOT_ENV, str(tmp_path / "runs"))
    cli = stfuse_main(command[4:] + _tiny_overrides(spec, params, tiny_source_ckpt))
    assert Path(cli.trainer.default_root_dir) == tmp_path / "runs" / "sweep3" / "run3"
    assert cli.trainer.state.finished, "fast_dev_run did not finish"
    hparams = cli.model.hparams
    for key, value in params.items():
        if key == "seed_everything":
            assert cli.config["fit"]["seed_everything"] == value
        elif key == "model.init_args.net":
            assert hparams["net"]["cem"] == value["cem"], "the swept CEM variant must reach the network"
        else:
            expected = pytest.approx(value) if isinstance(value, float) else value
            assert hparams[key.removeprefix("model.init_args.")] == expected, key


def test_the_guidance_sweep_sweeps_exactly_the_registered_guidance_modes():
    from stfuse.losses import GUIDANCE_MODES

    spec = load_spec(REPO / "experiments" / "sweeps" / "guidance_modes.yaml")
    assert spec["parameters"]["model.init_args.guidance"]["values"] == list(GUIDANCE_MODES)


@pytest.mark.slow
def test_agent_command_runs_as_a_subprocess(tiny_source_ckpt, tmp_path):
    """The exact argv, started the way the agent starts it: ``/usr/bin/env python`` with the venv on PATH."""
    spec = yaml.safe_load((REPO / "experiments" / "sweeps" / "guidance_modes.yaml").read_text())
    params = sample_parameters(spec, 0)
    command = agent_command(spec, params, run_id="sub", sweep_id="sw", base_dir=tmp_path)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "WANDB_MODE": "offline",
        "WANDB_SWEEP_ID": "sw",
        "WANDB_RUN_ID": "sub",
        sweeps.SWEEP_ROOT_ENV: str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        command + _tiny_overrides(spec, params, tiny_source_ckpt),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fast_dev_run" in done.stderr + done.stdout


def test_make_sweep_creates_the_sweep_and_prints_the_agent_command(monkeypatch, capsys, tmp_path):
    import wandb

    created = {}

    def fake_sweep(sweep, project=None, entity=None):
        created.update(sweep=sweep, project=project, entity=entity)
        return "abc123"

    monkeypatch.setattr(wandb, "sweep", fake_sweep)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    spec_path = REPO / "experiments" / "sweeps" / "guidance_modes.yaml"
    assert sweeps.main(["create", str(spec_path), "--entity", "lab"]) == 0
    assert created["sweep"] == load_spec(spec_path) and (created["project"], created["entity"]) == (
        "stfuse",
        "lab",
    )
    assert "make agent SWEEP_ID=lab/stfuse/abc123" in capsys.readouterr().out
    broken = tmp_path / "broken.yaml"
    broken.write_text("method: grid\nparameters: {a: {min: 0.0, max: 1.0}}\ncommand: [x, '${args}']\n")
    assert sweeps.main(["create", str(broken)]) == 2
    assert "discrete" in capsys.readouterr().err
    broken.write_text("method: grid\ncommand: [x, ${args}]\n")
    assert sweeps.main(["create", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_sample_prints_the_command_with_extra_arguments(capsys):
    spec_path = REPO / "experiments" / "sweeps" / "ivif_loss_weights.yaml"
    assert sweeps.main(["sample", str(spec_path), "--seed", "5", "--", "--trainer.fast_dev_run", "1"]) == 0
    out = capsys.readouterr().out
    command = out.strip().splitlines()[-1].split()
    assert command[:6] == ["/usr/bin/env", "python", "-m", "stfuse", "sweep", "run"]
    assert command[-2:] == ["--trainer.fast_dev_run", "1"]
    params = json.loads(out[: out.rindex("}") + 1])
    json_file = Path(command[command.index("--trainer.fast_dev_run") - 1])
    assert json.loads(json_file.read_text()) == params and not str(json_file).startswith(str(REPO))
