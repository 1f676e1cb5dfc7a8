"""The package layout keeps itself: imports point one way, down the layers, and never in a circle.

Every import of every module is read from its source (function-level ones included), so a lazy
import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

#: Groups of modules from the bottom up.  A module may import its own group (without a circle)
#: and any group of a lower layer, never a group of its own layer or of a higher one.
LAYERS = [
    ["kws_proto", "kws_proto.errors"],  # the package root (its version) and the error hierarchy
    ["kws_proto.util"],  # small helpers: atomic writes, statistics, vectors, the command-line frame
    ["kws_proto.audio"],  # loading, front end, augmentation
    ["kws_proto.encoders"],  # the registry and the encoders
    ["kws_proto.config"],  # typed configs (they name encoders, front-end and augmentation settings)
    ["kws_proto.data"],  # the dataset contract, caches, episodes, the feed
    ["data_prep"],  # corpus builders on the dataset contract; builtin: a config's data on demand
    ["kws_proto.model"],  # protonet, scoring, head, run directories, loading, the shipped model
    ["kws_proto.train", "kws_proto.spot"],  # training | keywords of one's own
    ["kws_proto.eval"],  # evaluation, comparison (which trains what it compares), reports
    ["kws_proto.cli", "kws_proto.demo", "kws_proto.publish", "data_prep.cli", "data_prep.commands"],
]
ENTRY_POINTS = ("kws_proto.demo", "kws_proto.publish")
RANK = {group: i for i, layer in enumerate(LAYERS) for group in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(*packages: str) -> dict[str, Path]:
    return {_module_name(p): p for pkg in packages for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (each resolved to the longest known module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _group(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "data_prep":
        return "data_prep." + parts[1] if len(parts) > 1 and parts[1] in ("cli", "commands") else "data_prep"
    return ".".join(parts[:2])


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules("kws_proto", "data_prep")
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_belongs_to_a_layer(graph):
    assert sorted({_group(m) for m in graph} - set(RANK)) == []


def test_imports_point_down_the_layers(graph):
    upward = []
    for mod, targets in graph.items():
        for t in targets:
            same = _group(t) == _group(mod)
            if not same and RANK[_group(t)] >= RANK[_group(mod)]:
                upward.append(f"{mod} -> {t}")
    assert upward == []


def test_no_import_circles(graph):
    # Tarjan's strongly connected components: any component of two or more modules is a circle
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == []


def test_entry_points_are_imported_by_nothing(graph):
    scripts = _modules("experiments", "benchmarks")
    everything = {**graph, **{n: _imports(n, p, set(graph)) for n, p in scripts.items()}}
    importers = sorted(f"{m} -> {t}" for m, ts in everything.items() for t in ts if t in ENTRY_POINTS)
    assert importers == []


def test_the_checker_sees_function_level_and_upward_imports(tmp_path):
    """The parser itself: a lazy import inside a function is an edge like any other."""
    src = tmp_path / "kws_proto" / "data"
    src.mkdir(parents=True)
    mod = src / "lazy.py"
    mod.write_text("def f():\n    from kws_proto.eval.compare import compare\n    return compare\n")
    known = {"kws_proto.eval.compare", "kws_proto.data.lazy"}
    assert _imports("kws_proto.data.lazy", mod, known) == {"kws_proto.eval.compare"}
    assert RANK[_group("kws_proto.eval.compare")] > RANK[_group("kws_proto.data.lazy")]
