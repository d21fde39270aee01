"""The install exposes what the README promises: both packages, every subpackage, the console script."""

from __future__ import annotations

import configparser
import importlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from stfuse.models.checkpoint import READER_ENTRY_POINT_GROUP
from stfuse.stages.checkpoint_format import read_stage_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _listed_packages() -> set[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}


def test_every_package_folder_is_listed_in_setup_cfg():
    found = set()
    for top, folder in (("stfuse", REPO / "src" / "stfuse"), ("data_modules", REPO / "data_modules")):
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((top, *parts)))
    missing = found - _listed_packages()
    assert not missing, f"add these packages to setup.cfg [options] packages: {sorted(missing)}"


def test_python_dash_m_stfuse_shows_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "stfuse", "--help"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    for command in ("fit", "validate", "test", "predict"):
        assert command in result.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "stfuse"
    assert script.is_file(), "the stfuse console script is missing; reinstall with pip install -e ."


def test_the_stage_checkpoint_reader_is_declared_and_installed_as_an_entry_point():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    declared = dict(
        (part.strip() for part in line.split("=", 1))
        for line in config["options.entry_points"][READER_ENTRY_POINT_GROUP].splitlines()
        if line.strip()
    )
    module, attribute = declared["stage"].split(":")
    assert getattr(importlib.import_module(module), attribute) is read_stage_checkpoint
    installed = {ep.name: ep.value for ep in entry_points(group=READER_ENTRY_POINT_GROUP)}
    assert declared.items() <= installed.items(), "setup.cfg's readers are not installed; pip install -e ."
