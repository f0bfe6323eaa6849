"""The project's import graph: no cycles between modules, and no module reaches into another module's
private (``_name``) names; each module talks to the others through public names only.

Read from the source with ``ast``. Cycles: module-level imports only (an import inside a function is a
deliberate late import and cannot form an import-time cycle). Reach-ins: ``from m import _x`` and
``m._x`` where ``m`` names one of our modules; an object's private attribute (``obj._x``) cannot be
told apart statically and is left to review. The last tests are positive controls on a made-up package.
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


def _imports(module: str, path: Path, modules=None):
    """The modules ``path`` imports at module level (the graph's edges), {local name: our module it names}
    for every import (function-level too), the private names it imports, and its syntax tree."""
    modules = MODULES if modules is None else modules
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
                if alias.name in modules:
                    edges_of_this.add(alias.name)
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
        else:
            source = _absolute(module, node, path)
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in modules:  # a submodule
                    edges_of_this.add(target)
                    aliases[alias.asname or alias.name] = target
                elif source in modules:
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


def _cycle_through(start: str, graph=None):
    """One import cycle through ``start`` (a list of modules), or None."""
    graph = GRAPH if graph is None else graph
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, path = stack.pop()
        for target in graph.get(node, ()):
            if target == start:
                return path + [start]
            if target not in seen:
                seen.add(target)
                stack.append((target, path + [target]))
    return None


def test_the_graph_was_read():
    assert "keras_xai.analyzer" in GRAPH and "keras_xai.analyzers" in GRAPH["keras_xai.analyzer"]
    assert len(MODULES) > 60


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_cycle(module):
    assert _cycle_through(module) is None, " -> ".join(_cycle_through(module))


@pytest.mark.parametrize("module", sorted(PRIVATE))
def test_no_reach_into_another_modules_privates(module):
    assert PRIVATE[module] == []


def test_a_made_up_cycle_and_reach_in_are_found(tmp_path):
    package = tmp_path / "made_up"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from made_up import b\n_secret = 1\n")
    (package / "b.py").write_text("from made_up import a\nfrom made_up.c import _hidden\n\n\n"
                                  "def late():\n    return a._secret\n")
    (package / "c.py").write_text("_hidden = 2\n")
    modules = {"made_up": package / "__init__.py", **{f"made_up.{n}": package / f"{n}.py" for n in "abc"}}
    graph, private = {}, {}
    for name, path in modules.items():
        edges, aliases, names, tree = _imports(name, path, modules)
        graph[name] = edges - {name}
        private[name] = names + _private_attribute_reads(tree, aliases, name)
    assert _cycle_through("made_up.a", graph) == ["made_up.a", "made_up.b", "made_up.a"]
    assert _cycle_through("made_up.c", graph) is None
    assert private["made_up.b"] == ["from made_up.c import _hidden", "a._secret (line 6)"]
    assert private["made_up.a"] == []
