"""The project's import graph: no cycles between modules, and no module reaches into another module's
private (``_name``) attributes; each package talks to the others through public names only.

Read from the source with ``ast`` (module-level imports only: an import inside a function is a
deliberate late import and cannot form an import-time cycle).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keras_xai", "architectures", "sanity", "lstm_svd")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def _absolute(module: str, node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path):
    """The modules ``path`` imports at module level (the graph's edges), {local name: our module it names}
    for every import (function-level too), the private names it imports, and its syntax tree."""
    tree = ast.parse(path.read_text(), str(path))
    edges, aliases, private_names = set(), {}, []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        late = any(isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) for parent in _parents(tree, node))
        if late:  # a late import forms no import-time cycle, but its names count for the private check
            edges_of_this = set()
        else:
            edges_of_this = edges
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    edges_of_this.add(alias.name)
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
        else:
            source = _absolute(module, node, path)
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in MODULES:  # a submodule
                    edges_of_this.add(target)
                    aliases[alias.asname or alias.name] = target
                elif source in MODULES:
                    edges_of_this.add(source)
                    if alias.name.startswith("_") and source != module:
                        private_names.append(f"from {source} import {alias.name}")
    return edges, aliases, private_names, tree


_PARENTS = {}


def _parents(tree, node):
    if id(tree) not in _PARENTS:
        table = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                table[id(child)] = parent
        _PARENTS[id(tree)] = table
    table, chain = _PARENTS[id(tree)], []
    while id(node) in table:
        node = table[id(node)]
        chain.append(node)
    return chain


def _private_attribute_reads(tree, aliases: dict, module: str) -> list:
    """``alias._name`` where ``alias`` names another of our modules (any import, function-level too)."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_")
                and not node.attr.startswith("__") and node.value.id in aliases
                and aliases[node.value.id] != module):
            found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


GRAPH = {}
PRIVATE = {}
for _name, _path in MODULES.items():
    _edges, _aliases, _private, _tree = _imports(_name, _path)
    GRAPH[_name] = _edges - {_name}
    PRIVATE[_name] = _private + _private_attribute_reads(_tree, _aliases, _name)
for _path in SCRIPTS:
    _, _aliases, _private, _tree = _imports(f"scripts.{_path.stem}", _path)
    PRIVATE[f"scripts/{_path.name}"] = _private + _private_attribute_reads(_tree, _aliases, "")


def _cycle_through(start: str):
    """One import cycle through ``start`` (a list of modules), or None."""
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, path = stack.pop()
        for target in GRAPH.get(node, ()):
            if target == start:
                return path + [start]
            # A package's __init__ importing its own submodules is how packages are built, not a cycle.
            if target not in seen and not start.startswith(target + "."):
                seen.add(target)
                stack.append((target, path + [target]))
    return None


def test_the_graph_was_read():
    assert "keras_xai.api" in GRAPH and "keras_xai.analyzers" in GRAPH["keras_xai.api"]
    assert len(MODULES) > 60


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_cycle(module):
    assert _cycle_through(module) is None, " -> ".join(_cycle_through(module))


@pytest.mark.parametrize("module", sorted(PRIVATE))
def test_no_reach_into_another_modules_privates(module):
    assert PRIVATE[module] == []
