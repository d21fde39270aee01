"""One definition per metric: every view of a metric (its class, the suite, ``FusionMetrics``, the
package exports, aliases, the presets' tables, the VIFB convention) is derived from
:data:`stfuse.metrics.registry.METRICS`, and nothing else in the metrics package names metrics by hand."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stfuse.metrics as metrics_package
from stfuse.metrics import METRIC_FACTORIES, METRIC_PRESETS, FusionMetric, MetricSuite, build_metric
from stfuse.metrics.classes import METRIC_CLASSES, OptionMetric
from stfuse.metrics.colour import COLOUR_CONVENTIONS, colour_convention
from stfuse.metrics.registry import (
    METRIC_NAMES,
    METRICS,
    canonical_metric_name,
    default_metric_names,
    resolve_metric_names,
)
from stfuse.metrics.suite import DEFINITIONS
from stfuse.metrics.vifb import FLOAT_GREY_METRICS

METRICS_PACKAGE = Path(metrics_package.__file__).parent


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_each_definition_gives_its_class_suite_entry_factory_and_export(name: str) -> None:
    definition = METRICS[name]
    cls = METRIC_CLASSES[definition.class_name]
    assert getattr(metrics_package, definition.class_name) is cls  # exported from stfuse.metrics
    assert definition.class_name in metrics_package.__all__
    assert issubclass(cls, FusionMetric) and cls.__doc__
    assert DEFINITIONS[name] is definition
    metric = METRIC_FACTORIES[name]()
    assert metric.definition is definition
    assert build_metric(name).definition is definition
    assert metric.higher_is_better == definition.higher_is_better
    assert metric.needs_sources == definition.needs_sources
    for alias in (name, name.lower(), *definition.aliases):
        assert canonical_metric_name(alias) == name


def test_the_derived_views_hold_every_metric_and_nothing_else() -> None:
    assert set(DEFINITIONS) == set(METRIC_FACTORIES) == set(METRICS)
    assert metrics_package.METRICS is METRICS  # one word: the definitions, everywhere
    assert set(METRIC_CLASSES) == {d.class_name for d in METRICS.values()}
    shared = [cls for cls in METRIC_CLASSES.values() if issubclass(cls, OptionMetric)]
    assert [cls.__name__ for cls in shared] == ["FMIMetric"]  # FMI_pixel and FMI_gradient
    assert FLOAT_GREY_METRICS == {n for n, d in METRICS.items() if d.vifb_grey_sources == "float"}


@pytest.mark.parametrize("preset", sorted(METRIC_PRESETS))
def test_a_presets_tables_are_the_registry_seen_through_it(preset: str) -> None:
    spec = METRIC_PRESETS[preset]
    assert set(spec.table_extras) <= set(METRICS)
    defined = [name for name in METRIC_NAMES if METRICS[name].defined_by(spec)]
    assert resolve_metric_names("all", spec) == defined
    assert default_metric_names(spec) == resolve_metric_names(None, spec)
    assert set(default_metric_names(spec)) <= set(defined)
    for name in set(METRICS) - set(defined):
        with pytest.raises(ValueError, match=preset):
            build_metric(name, spec)
        with pytest.raises(ValueError, match=preset):
            MetricSuite(spec, [name])


@pytest.mark.parametrize("preset", sorted(METRIC_PRESETS))
def test_the_colour_convention_is_the_presets_and_shared_by_every_entry_point(preset: str) -> None:
    spec = METRIC_PRESETS[preset]
    convention = colour_convention(spec)
    assert convention is COLOUR_CONVENTIONS[spec.colour]
    assert MetricSuite(spec, ["EN"]).convention is convention
    assert build_metric("EN", spec).convention is convention


def test_one_metric_class_computes_what_the_suite_computes_for_every_definition() -> None:
    torch.manual_seed(0)
    fused, ir, vi = (torch.rand(2, 3, 48, 52) for _ in range(3))
    for preset in METRIC_PRESETS:
        names = [n for n in resolve_metric_names("all", preset) if n != "MS_SSIM"]  # MS-SSIM: ≥ 161 px
        suite = MetricSuite(preset, names)(fused, ir, vi)
        for name in names:
            metric = build_metric(name, preset)
            metric.update(fused, ir, vi)
            assert torch.equal(metric.compute_per_image(), suite[name]), f"{preset} {name}"


def _string_constants(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_module_of_the_metrics_package_but_the_registry_lists_metric_names() -> None:
    """A list, tuple, set or dict of two or more metric names anywhere but registry.py would be a second
    registry that adding a metric must remember."""
    names = set(METRIC_NAMES)
    offenders = []
    for path in sorted(METRICS_PACKAGE.glob("*.py")):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
                listed = [s for s in _string_constants(node) if s in names]
                if len(listed) >= 2:
                    offenders.append(f"{path.name}:{node.lineno}: {listed}")
    assert not offenders, offenders


def _imports(path: Path) -> set[str]:
    """Modules of stfuse.metrics that ``path`` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stfuse.metrics"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("stfuse.metrics"))
    return found


def test_the_metrics_package_has_no_import_circle_and_imports_no_private_name() -> None:
    modules = {f"stfuse.metrics.{p.stem}": p for p in METRICS_PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports(path) & set(modules) for name, path in modules.items()}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    circles = [name for name in graph if reaches(name, name, {name})]
    assert not circles, circles
    private = []
    for path in METRICS_PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stfuse"):
                private += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, private


def test_the_registry_and_the_names_load_without_torch() -> None:
    code = (
        "import sys, stfuse.metrics as m; m.resolve_metric_names('all', 'tang'); m.LOWER_IS_BETTER; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=None)
    importlib.import_module("stfuse.metrics.registry")  # and in-process, of course


def test_the_presets_colour_field_names_exactly_the_conventions() -> None:
    import typing

    from stfuse.metrics.presets import MetricPreset

    hints = typing.get_type_hints(MetricPreset)
    assert typing.get_args(hints["colour"]) == tuple(COLOUR_CONVENTIONS)
