"""The package's layering: which part of ``dlcourse`` may import which, read from the source (ast).

A *unit* is a top-level module or subpackage of ``dlcourse`` (``data``, ``detection``, ``course``,
...). Units sit in layers; a unit imports only from its own layer or lower ones, and the import
graph of the units has no cycle. Imports inside functions count too: a lazy import is still a
dependency. Private modules and names (leading underscore) stay inside the package that defines
them.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlcourse"

LAYERS = (
    # foundation: version, quiet Keras import, course-wide settings, argument checks
    {"_version", "quiet", "config", "validate"},
    # plain NumPy: generated data, reference implementations, exercise checks
    {"data", "reference", "checks"},
    # Keras building blocks and measuring them; plots
    {"layers", "models", "metrics", "viz"},
    # what the lessons build from them
    {"detection", "training"},
    # the instructor's tools (import nothing of the course's numerics)
    {"grading"},
    # running the course: results, runner, notebooks, the command (dispatches to grading)
    {"course"},
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """``(imported module, imported names)`` of every ``dlcourse`` import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dlcourse":
                    yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "dlcourse":
                yield node.module, tuple(alias.name for alias in node.names)


def _targets(module: str, names) -> list[str]:
    """The modules an import reaches: ``from dlcourse import data`` reaches ``dlcourse.data``."""
    if module == "dlcourse":
        return [f"dlcourse.{name}" for name in names if name not in {"__version__"}]
    submodules = [f"{module}.{name}" for name in names if _is_module(f"{module}.{name}")]
    return submodules or [module]


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _graph():
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_name(path)
        if source == "dlcourse":  # the lazy front door: imports submodules by name only
            continue
        for module, names in _imports(path):
            for target in _targets(module, names):
                edges.setdefault((_unit(source), _unit(target)), []).append((source, target))
    return edges


def test_every_unit_has_a_layer():
    units = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert units == set(RANK), f"units without a layer: {units - set(RANK)}"


def test_units_import_only_their_own_layer_or_lower():
    upward = [
        f"{source} imports {target} ({src_unit}: layer {RANK[src_unit]}, "
        f"{dst_unit}: layer {RANK[dst_unit]})"
        for (src_unit, dst_unit), pairs in _graph().items()
        if dst_unit is not None and RANK[dst_unit] > RANK[src_unit]
        for source, target in pairs
    ]
    assert upward == []


def test_the_unit_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {unit: set() for unit in RANK}
    for src_unit, dst_unit in _graph():
        if dst_unit is not None and dst_unit != src_unit:
            graph[src_unit].add(dst_unit)
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError
    assert set(order) == set(RANK)


def test_the_check_sees_a_cycle():
    """The control: the same sorter refuses a graph with a cycle."""
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _private_parts(module: str) -> list[int]:
    return [i for i, part in enumerate(module.split(".")) if part.startswith("_")]


def test_no_private_name_crosses_a_module_boundary():
    """``from m import _x`` only inside ``m`` itself; a private module only inside its package."""
    crossings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_name(path)
        for module, names in _imports(path):
            for name in names:
                if _is_module(f"{module}.{name}"):  # a submodule: the module rule below
                    continue
                if name.startswith("_") and name != "__version__" and module != source:
                    crossings.append(f"{source}: from {module} import {name}")
            for target in _targets(module, names):
                for i in _private_parts(target):
                    package = ".".join(target.split(".")[:i])
                    if not source.startswith(package + ".") and source != package:
                        crossings.append(f"{source} imports the private module {target}")
                    elif package == "dlcourse" and target.split(".")[i] != "_version":
                        crossings.append(f"{source} imports {target}")
    assert crossings == []


def test_tests_and_benchmarks_use_private_names_only_of_what_they_test():
    """A test may reach into the module it tests (``test_grading.py`` into ``dlcourse.grading``),
    nothing else; a benchmark uses only the public API."""
    root = PACKAGE.parent
    crossings = []
    for path in sorted([*(root / "tests").glob("*.py"), *(root / "benchmarks").glob("*.py")]):
        tested = path.stem.removeprefix("test_") if path.parent.name == "tests" else None
        for module, names in _imports(path):
            for target in [f"{module}.{name}" for name in names] or [module]:
                parts = target.split(".")
                private = [p for p in parts if p.startswith("_") and p != "__version__"]
                public = [p for p in parts[1:] if not p.startswith("_")]
                if private and not (tested and any(p in tested for p in public)):
                    crossings.append(f"{path.relative_to(root)}: {target}")
    assert crossings == []
