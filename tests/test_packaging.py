"""The install exposes what the README promises: both packages, every subpackage, the console script."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

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
