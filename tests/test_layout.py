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


#: Imports forbidden whatever the layers allow, each with its reason.
FORBIDDEN = {
    ("kws_proto.train", "data_prep"): "training takes a prepared dataset: the command builds the "
                                      "corpus before it calls train()",
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_forbidden_imports(graph):
    found = [f"{m} -> {t}: {why}" for m, ts in sorted(graph.items()) for t in sorted(ts)
             for (low, high), why in FORBIDDEN.items() if _within(m, low) and _within(t, high)]
    assert found == []


#: The longest function allowed, in lines without its docstring, under each folder.
MAX_LINES = {"kws_proto": 60, "kws_proto/train": 40}


def _long_functions(source: str, limit: int) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function of ``source`` longer than ``limit`` lines, counted
    from its ``def`` to its last line, less its docstring."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        lines = node.end_lineno - node.lineno + 1
        first = node.body[0]
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            lines -= first.end_lineno - first.lineno + 1
        if lines > limit:
            out.append((node.name, lines))
    return out


@pytest.mark.parametrize("folder", sorted(MAX_LINES))
def test_functions_are_short(folder):
    long = [f"{p.relative_to(REPO)}: {name} ({n} lines)"
            for p in sorted((REPO / folder).rglob("*.py"))
            for name, n in _long_functions(p.read_text(encoding="utf-8"), MAX_LINES[folder])]
    assert long == []


def test_the_length_checker_leaves_out_docstrings_only():
    body = "".join(f"    x{i} = {i}\n" for i in range(5))
    source = ('def f():\n    """One\n    two\n    three."""\n' + body
              + "def g():\n    # a comment counts\n" + body)
    # f: its def line and 5 statements; g: its def line, the comment and 5 statements
    assert _long_functions(source, 6) == [("g", 7)]
    assert _long_functions(source, 5) == [("f", 6), ("g", 7)]


def test_the_forbidden_check_sees_a_lazy_import_of_a_corpus_builder(tmp_path):
    mod = tmp_path / "kws_proto" / "train" / "lazy.py"
    mod.parent.mkdir(parents=True)
    mod.write_text("def f(cfg):\n    from data_prep.builtin import prepare_data\n"
                   "    return prepare_data(cfg)\n")
    known = {"data_prep.builtin", "kws_proto.train.lazy"}
    graph = {"kws_proto.train.lazy": _imports("kws_proto.train.lazy", mod, known)}
    with pytest.raises(AssertionError, match="kws_proto.train.lazy -> data_prep.builtin"):
        test_forbidden_imports(graph)


def _untagged_lazy_imports(source: str) -> list[int]:
    """Line numbers of function-level imports in ``source`` without a ``# lazy: REASON`` comment
    on their first line or the line above it."""
    lines = source.splitlines()
    out = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                here, above = lines[node.lineno - 1], lines[node.lineno - 2].strip()
                if "# lazy: " not in here and not above.startswith("# lazy: "):
                    out.append(node.lineno)
    return sorted(set(out))


def test_every_function_level_import_says_why_it_is_lazy():
    """An import inside a function keeps something heavy (TensorFlow, librosa, SciPy, an optional
    extra, the parsers `--help` builds) off its module's import; every other import sits at the
    top of the module."""
    untagged = [f"{p.relative_to(REPO)}:{n}" for pkg in ("kws_proto", "data_prep")
                for p in sorted((REPO / pkg).rglob("*.py"))
                for n in _untagged_lazy_imports(p.read_text(encoding="utf-8"))]
    assert untagged == []


def test_the_lazy_import_check_sees_an_untagged_import_in_a_nested_block():
    source = ("def f(x):\n    if x:\n        import json\n        return json\n"
              "    import math  # lazy: never mind\n    return math\n")
    assert _untagged_lazy_imports(source) == [3]
