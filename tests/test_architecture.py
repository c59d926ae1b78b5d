"""The shape of vitc/: its import graph has no circle, no module imports another's private names, and
the layers depend one way (docs/ARCHITECTURE.md draws them).

The graph is read from the source with ``ast``: every ``import`` counts, function-level (lazy) ones
too, except those under ``if TYPE_CHECKING:`` (annotations only, never run). Importing ``a.b.c`` also
runs the package ``a.b``'s ``__init__``, so that is an edge too (except into the importer's own
packages and the top-level ``vitc``, whose ``__init__`` only re-exports the public names).
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "vitc"
ROOT = "vitc"
CORE = "vitc._core"  # the C extension: the one private module others may import
# (vitc.config: the activation and pooling names a config.json may use are the C core's, not a copy)
CORE_IMPORTERS = {"vitc", "vitc.config", "vitc.model", "vitc.runtime", "vitc.weights"}

# Every module's layer, first match wins (fnmatch patterns on the dotted name). A new module must be
# given one here: deciding what it may import is part of adding it.
LAYERS: tuple[tuple[str, str], ...] = (
    ("vitc._core", "base"),
    ("vitc.config", "base"),
    ("vitc.files", "base"),
    ("vitc.runtime", "base"),
    ("vitc.reference", "base"),
    ("vitc.outputs", "base"),
    ("vitc.weights", "weights"),
    ("vitc.io", "io"),
    ("vitc.io.*", "io"),
    ("vitc.preprocess", "preprocess"),
    ("vitc.convert", "convert"),
    ("vitc.predict", "predict"),
    ("vitc.model", "model"),
    ("vitc.default_model", "model"),
    ("vitc.testing", "testing"),
    ("vitc.eval", "eval"),
    ("vitc.eval.*", "eval"),
    ("vitc.cli", "cli"),
    ("vitc.bench", "bench"),
    ("vitc.bench.*", "bench"),
    ("vitc", "entry"),  # the package's __init__: the public names
    ("vitc.__main__", "entry"),
    ("vitc.pytest_plugin", "entry"),
)
# What each layer may import besides its own layer: io <- convert/model <- predict/eval <- cli.
# predict sits below model at run time (ViT.predict delegates to it; it names ViT only for typing).
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "weights": {"base"},
    "io": {"base", "weights"},
    "preprocess": {"base", "io"},
    "convert": {"base", "weights", "io"},
    "predict": {"base", "io", "preprocess"},
    "model": {"base", "weights", "io", "preprocess", "predict"},
    "testing": {"base", "model"},
    "eval": {"base", "io", "preprocess", "predict", "model"},
    "cli": {"base", "weights", "io", "preprocess", "convert", "predict", "model", "eval", "bench", "entry"},
    "bench": {"base", "entry"},
    "entry": {"base", "weights", "io", "preprocess", "convert", "predict", "model", "testing", "eval", "cli"},
}
# Who may import the command line, and the package itself (``import vitc``): nothing the package's
# __init__ imports may, or it would import itself.
CLI_IMPORTERS = {"vitc.__main__"}
ROOT_IMPORTERS = {"vitc.cli", "vitc.pytest_plugin", "vitc.bench.run", "vitc.bench.engines", "vitc.bench.prepare"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py")) if "data" not in p.parts}
MODULES = set(SOURCES) | {CORE}


@dataclass(frozen=True)
class Edge:
    importer: str
    target: str  # a module of vitc
    names: tuple[str, ...]  # the names taken from it ("from target import names"); () for "import target"
    line: int

    def where(self) -> str:
        return f"{SOURCES[self.importer].relative_to(PACKAGE_DIR.parent)}:{self.line}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(node: ast.AST):
    """Import nodes under ``node``, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                yield from _runtime_imports_of(sub)
            continue
        yield from _runtime_imports_of(child)


def _runtime_imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _runtime_imports(node)


def edges_of(name: str) -> list[Edge]:
    tree = ast.parse(SOURCES[name].read_text(), filename=str(SOURCES[name]))
    package = name if SOURCES[name].name == "__init__.py" else name.rpartition(".")[0]
    out: list[Edge] = []
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            out += [Edge(name, a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] == ROOT]
            continue
        if node.level:  # relative: from .x import y
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module.split(".")[0] != ROOT:
            continue
        names = []
        for alias in node.names:
            sub = f"{module}.{alias.name}"
            if sub in MODULES:  # from vitc import model: the submodule itself
                out.append(Edge(name, sub, (), node.lineno))
            else:
                names.append(alias.name)
        if names:
            out.append(Edge(name, module, tuple(names), node.lineno))
    return out


def graph_edges() -> list[Edge]:
    """Every import edge between vitc modules, with the implicit ones into imported packages' __init__."""
    edges: list[Edge] = []
    for name in SOURCES:
        for e in edges_of(name):
            if e.target == name:
                continue
            edges.append(e)
            parts = e.target.split(".")
            for k in range(2, len(parts)):
                pkg = ".".join(parts[:k])
                if pkg in MODULES and not (name == pkg or name.startswith(pkg + ".")):
                    edges.append(Edge(name, pkg, (), e.line))
    return edges


EDGES = graph_edges()


def layer_of(name: str) -> str | None:
    return next((layer for pattern, layer in LAYERS if fnmatch.fnmatchcase(name, pattern)), None)


def find_cycle(edges: list[Edge]) -> list[Edge] | None:
    """One import circle as its edges, or None (depth-first search, deterministic order)."""
    out: dict[str, list[Edge]] = {}
    for e in edges:
        out.setdefault(e.importer, []).append(e)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[Edge] = []

    def visit(node: str) -> list[Edge] | None:
        state[node] = 1
        for e in sorted(out.get(node, []), key=lambda e: (e.target, e.line)):
            if state.get(e.target) == 1:
                start = next((i for i, p in enumerate(path) if p.importer == e.target), len(path))
                return path[start:] + [e]
            if e.target not in state:
                path.append(e)
                found = visit(e.target)
                if found:
                    return found
                path.pop()
        state[node] = 2
        return None

    for node in sorted(out):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def describe(edges: list[Edge]) -> str:
    return "\n".join(f"  {e.importer} -> {e.target}  ({e.where()})" for e in edges)


# ---------------------------------------------------------------------------------------------------
# The checker itself, on graphs with known answers (a test that cannot fail is a defect)


def test_the_parser_sees_lazy_imports_and_skips_type_checking(tmp_path):
    assert any(e.importer == "vitc.default_model" and e.target == "vitc.model" for e in EDGES)  # lazy
    assert not any(e.importer == "vitc.predict" and e.target == "vitc.model" for e in EDGES)  # typing only
    assert any(e.importer == "vitc.model" and e.target == CORE for e in EDGES)  # from vitc import _core


def test_the_cycle_finder_finds_a_circle():
    a_b, b_c, c_a = (
        Edge("vitc.model", "vitc.cli", (), 1),
        Edge("vitc.cli", "vitc.eval", (), 2),
        Edge("vitc.eval", "vitc.model", (), 3),
    )
    assert find_cycle([a_b, b_c]) is None
    assert sorted(find_cycle([c_a, a_b, b_c]), key=lambda e: e.line) == [a_b, b_c, c_a]


# ---------------------------------------------------------------------------------------------------
# The rules


def test_no_import_circles():
    cycle = find_cycle(EDGES)
    assert cycle is None, "import circle in vitc/:\n" + describe(cycle)


def test_no_private_names_across_modules():
    bad = [
        e
        for e in EDGES
        if e.target != CORE
        and (
            any(n.startswith("_") and not n.startswith("__") for n in e.names)
            or any(part.startswith("_") and not part.startswith("__") for part in e.target.split("."))
        )
    ]
    assert not bad, "imports of another module's private names (only vitc._core may be):\n" + describe(bad)


def test_few_modules_import_the_c_extension():
    importers = {e.importer for e in EDGES if e.target == CORE}
    assert importers <= CORE_IMPORTERS, f"vitc._core imported by {sorted(importers - CORE_IMPORTERS)}"


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if layer_of(m) is None)
    assert not missing, f"give these modules a layer in LAYERS (and say what they may import): {missing}"


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_layers_depend_one_way(layer):
    bad = [e for e in EDGES if layer_of(e.importer) == layer and layer_of(e.target) not in MAY_IMPORT[layer] | {layer}]
    assert not bad, f"{layer} may import only {sorted(MAY_IMPORT[layer])}:\n" + describe(bad)


def test_only_the_entry_points_import_the_cli_and_the_package():
    cli = [e for e in EDGES if e.target == "vitc.cli" and e.importer not in CLI_IMPORTERS]
    assert not cli, "only vitc/__main__.py imports vitc.cli:\n" + describe(cli)
    root = [e for e in EDGES if e.target == ROOT and e.importer not in ROOT_IMPORTERS]
    assert not root, "'import vitc' inside the package (import the module itself):\n" + describe(root)
