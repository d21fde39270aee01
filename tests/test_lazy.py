"""One lazy-export mechanism (``stfuse.utils.lazy``) for every package that names objects of its modules."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from stfuse.utils.lazy import lazy_exports

LAZY_PACKAGES = [
    "stfuse",
    "stfuse.inference",
    "stfuse.evaluation",
    "stfuse.metrics",
    "stfuse.stages",
    "stfuse.docking",
    "data_modules",
]


def _module(name: str, exports: dict[str, str]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__getattr__, module.__dir__ = lazy_exports(name, exports)
    sys.modules[name] = module
    return module


def test_a_name_loads_on_first_use_and_is_then_a_plain_attribute(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "_lazy_probe", raising=False)
    module = _module("_lazy_probe", {"dumps": "json", "loads_renamed": "json:loads"})
    try:
        assert "dumps" not in vars(module) and "dumps" in dir(module)
        assert module.dumps is json.dumps and module.loads_renamed is json.loads
        assert vars(module)["dumps"] is json.dumps  # cached: the next access skips __getattr__
        with pytest.raises(AttributeError, match="'_lazy_probe' has no attribute 'missing'"):
            module.missing  # noqa: B018
    finally:
        del sys.modules["_lazy_probe"]


def test_an_export_without_a_module_is_refused() -> None:
    with pytest.raises(ValueError, match="no module"):
        lazy_exports("x", {"a": ":a"})


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_importing_a_lazy_package_imports_no_torch_and_every_export_resolves(package: str) -> None:
    script = (
        "import importlib, json, sys\n"
        f"package = importlib.import_module({package!r})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pytorch_lightning', 'torchmetrics'})\n"
        "names = sorted(getattr(package, '__all__', ['Fuser']))\n"
        "missing = [n for n in names if getattr(package, n, None) is None]\n"
        "print(json.dumps([heavy, missing, [n for n in names if n not in dir(package)]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    heavy, missing, undiscoverable = json.loads(done.stdout.splitlines()[-1])
    assert heavy == [], f"import {package} loaded {heavy}"
    assert missing == [] and undiscoverable == []
