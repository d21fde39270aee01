"""The import structure, held against docs/architecture.md.

Every project module's imports are read with ``ast``: ``import``/``from … import`` anywhere (inside functions
too), ``importlib.import_module("…")``, and string references to a project module (``"pkg.mod"`` or
``"pkg.mod:attr"``, as in ``TOOL_COMMANDS``). A package's lazy exports (a dict of ``name → "module"`` in its
``__init__``) are resolved where they are used: ``from stfuse import Fuser`` is an edge to
``stfuse.inference.fuser``, and the package itself gains no edge from its table.

Checked: (a) no import cycle among the modules; (b) no import from a lower layer to a higher one (the layers
of the doc's "Arrows" section); (c) the doc's arrows are exactly the real edges between its rooms.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
ROOTS = {"stfuse": REPO / "src" / "stfuse", "data_modules": REPO / "data_modules"}


def _module_name(package: str, path: Path) -> str:
    parts = [package, *path.relative_to(ROOTS[package]).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {
        _module_name(package, path): path
        for package, root in ROOTS.items()
        for path in sorted(root.rglob("*.py"))
    }


def _module_ref(text: str) -> str | None:
    """The project module a string names (``"pkg.mod"`` or ``"pkg.mod:attr"``), else None."""
    name = text.partition(":")[0] if re.fullmatch(r"[\w.]+(:\w+)?", text) else ""
    return name if name in modules() else None


@cache
def lazy_exports(package: str) -> dict[str, str]:
    """``name → defining module`` from the dicts of module strings in a package's ``__init__``."""
    path = modules().get(package)
    if path is None or path.name != "__init__.py":
        return {}
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict) and node.values:
            keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
            values = [v.value if isinstance(v, ast.Constant) else None for v in node.values]
            if all(isinstance(v, str) and _module_ref(v) for v in values):
                found.update({k: _module_ref(v) for k, v in zip(keys, values) if isinstance(k, str)})
        elif isinstance(node, ast.DictComp) and isinstance(node.value, ast.Constant):
            target = _module_ref(str(node.value.value))
            generator = node.generators[0].iter
            if target and isinstance(generator, ast.Tuple):
                found.update({e.value: target for e in generator.elts if isinstance(e, ast.Constant)})
    return found


def _lazy_table_strings(tree: ast.AST) -> set[int]:
    """ids of the string constants that form lazy-export tables (not edges of the package itself)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and node.values:
            values = [v.value if isinstance(v, ast.Constant) else None for v in node.values]
            if all(isinstance(v, str) and _module_ref(v) for v in values):
                ids.update(id(v) for v in node.values)
        elif isinstance(node, ast.DictComp) and isinstance(node.value, ast.Constant):
            ids.add(id(node.value))
    return ids


def _resolve(base: str, names: list[str]) -> set[str]:
    targets = set()
    for name in names:
        if f"{base}.{name}" in modules():
            targets.add(f"{base}.{name}")
        elif name in lazy_exports(base):
            targets.add(lazy_exports(base)[name])
        elif base in modules():
            targets.add(base)
    if not names and base in modules():
        targets.add(base)
    return targets


@cache
def imports_of(name: str) -> frozenset[str]:
    path = modules()[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    table = _lazy_table_strings(tree) if path.name == "__init__.py" else set()
    # imports under `if TYPE_CHECKING:` never run: annotations only, not an edge
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
        for child in node.body
        for inner in ast.walk(child)
    }
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = alias.name
                while module and module not in modules():
                    module = module.rpartition(".")[0]
                targets |= {module} if module else set()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets |= _resolve(base, [alias.name for alias in node.names])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in table:
            if ":" in node.value and (module := _module_ref(node.value)):  # "pkg.mod:attr", loaded by name
                targets.add(module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == (
            "import_module"
        ):
            if (
                node.args
                and isinstance(node.args[0], ast.Constant)
                and (module := _module_ref(node.args[0].value))
            ):
                targets.add(module)
    targets.discard(name)
    return frozenset(targets)


def module_edges() -> set[tuple[str, str]]:
    return {(name, target) for name in modules() for target in imports_of(name)}


# ---- the doc ----------------------------------------------------------------------------------------
def _doc_block(title: str) -> list[str]:
    text = DOC.read_text()
    section = text.split(f"## {title}", 1)[1]
    return section.split("```", 2)[1].strip().splitlines()


def _room_of_path(path: str) -> str:
    """``cli.py`` → ``stfuse.cli``; ``stages/`` → ``stfuse.stages``; ``data_modules/`` → ``data_modules``."""
    path = path.rstrip("/").removesuffix(".py")
    dotted = path.replace("/", ".")
    return (
        dotted if dotted.split(".")[0] in ROOTS else f"stfuse.{dotted}" if dotted != "__init__" else "stfuse"
    )


@cache
def doc_layers() -> list[list[str]]:
    """The rooms of each layer, top layer first, from the doc's "Layers" block."""
    layers = []
    for line in _doc_block("Layers"):
        _, _, rooms = line.partition(":")
        layers.append([_room_of_path(room) for room in rooms.split()])
    return layers


def doc_arrows() -> set[tuple[str, str]]:
    arrows = set()
    for line in _doc_block("Arrows"):
        source, arrow, targets = line.partition("──►")
        if not arrow:
            continue
        for target in re.sub(r"\([^)]*\)", "", targets).split(","):  # (notes) are comments
            arrows.add((_room_of_path(source.strip()), _room_of_path(target.strip())))
    return arrows


def room(module: str) -> str:
    rooms = [r for layer in doc_layers() for r in layer]
    matches = [r for r in rooms if module == r or (module.startswith(r + ".") and r != "stfuse")]
    if not matches:
        raise AssertionError(f"module {module} is in no room of the Layers block of {DOC.name}")
    return max(matches, key=len)


def room_edges() -> set[tuple[str, str]]:
    return {(room(a), room(b)) for a, b in module_edges() if room(a) != room(b)}


# ---- the checks -------------------------------------------------------------------------------------
def test_the_scanner_sees_every_kind_of_import():
    edges = module_edges()
    assert ("stfuse.inference.cli", "stfuse.inference.runner") in edges  # an import inside a function
    assert ("stfuse.cli", "stfuse.docking.cli") in edges  # a "module:function" string (TOOL_COMMANDS)
    assert ("stfuse.docking.sources", "stfuse.baselines") in edges  # importlib.import_module("…")
    assert ("stfuse.metrics.tables", "stfuse.metrics") not in edges  # no such module: nothing invented
    assert imports_of("stfuse") == {"stfuse.utils.lazy"}, "a package's lazy table is no edge of its own"
    assert lazy_exports("stfuse")["Fuser"] == "stfuse.inference.fuser"
    assert lazy_exports("data_modules")["read_image"] == "data_modules.io"


def test_no_import_cycle_among_the_modules():
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in module_edges():
        graph[source].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(modules()):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import cycle: " + " → ".join(cycle))


def test_every_module_is_in_one_room_of_the_layers():
    rooms = [r for layer in doc_layers() for r in layer]
    assert len(rooms) == len(set(rooms)), "a room is listed twice in the Layers block"
    for module in modules():
        room(module)


def test_no_import_goes_up_a_layer():
    level = {r: index for index, layer in enumerate(doc_layers()) for r in layer}
    upward = sorted(
        f"{a} → {b} ({room(a)} is below {room(b)})"
        for a, b in module_edges()
        if level[room(a)] > level[room(b)]
    )
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_the_doc_arrows_are_the_real_edges_between_rooms():
    real, documented = room_edges(), doc_arrows()
    missing = sorted(f"{a} ──► {b}" for a, b in real - documented)
    stale = sorted(f"{a} ──► {b}" for a, b in documented - real)
    assert not missing and not stale, (
        f"docs/architecture.md's arrows differ from the imports.\nmissing: {missing}\nnot real: {stale}"
    )


def test_no_private_name_is_imported_from_another_project_module():
    found = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or _module_ref(node.module or "")):
                found |= {
                    (name, alias.name)
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                }
    assert found == set(), "make these public in their module, or move them"


def test_no_source_module_is_over_400_lines():
    long = {
        name: lines for name, path in modules().items() if (lines := len(path.read_text().splitlines())) > 400
    }
    assert not long, f"split these modules along their jobs: {long}"
