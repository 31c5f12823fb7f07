"""The package's shape: no import cycle inside ``vesselflow``, between modules or between
packages; the shared base imports no task and the two tasks not each other; argument parsers
only in ``vesselflow/cli/``; no oversized module; one definition of bits per dimension; and the
app writes no image with its own code."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "vesselflow"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path, mod: str) -> list[tuple[str, str | None]]:
    """What a module imports, anywhere in the file (functions included): ``(module, None)`` for
    ``import module`` and ``(module, name)`` for ``from module import name``, made absolute."""
    is_pkg = path.name == "__init__.py"
    package = mod.split(".") if is_pkg else mod.split(".")[:-1]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            found += [(src, a.name) for a in node.names]
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> vesselflow modules it imports (anywhere in the file, functions included)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for src, name in _imports(path, mod):
            # `from pkg import submodule` imports the submodule
            t = f"{src}.{name}" if name and f"{src}.{name}" in mods else src
            while t and t not in mods:  # `import a.b.c` where c is a name: a.b
                t = t.rpartition(".")[0]
            if t and t != mod:
                graph[mod].add(t)
    return graph


def external_imports() -> dict[str, set[str]]:
    """module -> top-level names of everything it imports (``argparse``, ``torch``, ...)."""
    return {mod: {src.split(".")[0] for src, _ in _imports(path, mod)}
            for mod, path in _modules().items()}


def package_of(mod: str, packages: set[str]) -> str:
    """The package a module belongs to (itself if it is one). A module directly under
    ``vesselflow/`` (``runtime``, ``__main__``) is its own unit: the root is no layer."""
    if mod in packages:
        return mod
    parent = mod.rpartition(".")[0]
    return mod if parent == "vesselflow" else parent


def package_graph(graph: dict[str, set[str]], packages: set[str]
                  ) -> dict[str, dict[str, list[str]]]:
    """package -> package it imports -> the module imports ("a.x -> b.y") that make the edge."""
    out: dict[str, dict[str, list[str]]] = {package_of(m, packages): {} for m in graph}
    for m, deps in graph.items():
        a = package_of(m, packages)
        for d in sorted(deps):
            b = package_of(d, packages)
            if b != a:
                out[a].setdefault(b, []).append(f"{m} -> {d}")
    return out


def _packages() -> set[str]:
    return {m for m, p in _modules().items() if p.name == "__init__.py"}


def cross_imports(graph: dict[str, set[str]], a: str, b: str) -> list[str]:
    """Imports from package ``a`` (or below) into ``b`` (or below), and back."""
    def under(m: str, p: str) -> bool:
        return m == p or m.startswith(p + ".")
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                  if (under(m, a) and under(d, b)) or (under(m, b) and under(d, a)))


def importers_outside(imports: dict[str, set[str]], name: str, allowed: str) -> list[str]:
    """Modules that import ``name`` but are not ``allowed`` (a package) or below it."""
    return sorted(m for m, names in imports.items()
                  if name in names and m != allowed and not m.startswith(allowed + "."))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack[stack.index(n):], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one node (each sorted): every
    node in one reaches every other, so each holds at least one cycle. Sorted."""
    reach: dict[str, set[str]] = {}
    for start in graph:  # small graphs (a few dozen packages): plain search from each node
        seen, todo = set(), [start]
        while todo:
            for n in graph.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        reach[start] = seen
    parts = {tuple(sorted({m for m in graph if m in reach[n] and n in reach[m]} | {n}))
             for n in graph}
    return sorted(list(p) for p in parts if len(p) > 1)


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_package_graph_finds_a_planted_cycle_between_packages() -> None:
    # No module cycle, yet p.a -> q.b -> p.c is a cycle between packages p and q.
    graph = {"v.p.a": {"v.q.b"}, "v.q.b": {"v.p.c"}, "v.p.c": set(), "v.p": set(),
             "v.q": set()}
    assert find_cycle(graph) is None
    pg = package_graph(graph, {"v.p", "v.q"})
    assert pg["v.p"] == {"v.q": ["v.p.a -> v.q.b"]} and pg["v.q"] == {"v.p": ["v.q.b -> v.p.c"]}
    assert find_cycle({p: set(d) for p, d in pg.items()}) == ["v.p", "v.q", "v.p"]
    assert tangles({p: set(d) for p, d in pg.items()}) == [["v.p", "v.q"]]
    assert tangles({"a": {"b"}, "b": {"c"}, "c": {"b"}, "d": {"d"}}) == [["b", "c"]]
    assert package_of("vesselflow.runtime", set()) == "vesselflow.runtime"


def test_cross_import_and_argparse_checkers_find_planted_violations() -> None:
    graph = {"vesselflow.vessel.x": {"vesselflow.io.files"}, "vesselflow.sr.y": set()}
    assert cross_imports(graph, "vesselflow.vessel", "vesselflow.sr") == []
    graph["vesselflow.sr.y"].add("vesselflow.vessel.x")
    assert cross_imports(graph, "vesselflow.vessel", "vesselflow.sr") == [
        "vesselflow.sr.y -> vesselflow.vessel.x"]
    imports = {"vesselflow.cli": {"argparse"}, "vesselflow.cli.bench": {"argparse"},
               "vesselflow.clinic": {"argparse"}, "vesselflow.vessel.bench": {"json"}}
    assert importers_outside(imports, "argparse", "vesselflow.cli") == ["vesselflow.clinic"]


def test_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    assert "vesselflow.io.files" in graph["vesselflow.io.weights"]
    assert "vesselflow.vessel.models.vessel" in graph["vesselflow.vessel.models.weights"]


def test_no_import_cycle_inside_vesselflow() -> None:
    assert find_cycle(import_graph()) is None


def test_no_import_cycle_between_packages() -> None:
    # Packages are layers: a cycle between two means neither can be read, tested or moved
    # without the other. Every tangle is reported, with the module imports inside it.
    pg = package_graph(import_graph(), _packages())
    found = tangles({p: set(deps) for p, deps in pg.items()})
    assert not found, "\n".join(
        "packages importing each other: " + ", ".join(t) + "\n" + "\n".join(
            f"    {i}" for a in t for b in t if b in pg[a] for i in pg[a][b]) for t in found)


def test_the_two_tasks_do_not_import_each_other() -> None:
    assert cross_imports(import_graph(), "vesselflow.vessel", "vesselflow.sr") == []


def test_argument_parsers_only_in_cli() -> None:
    # Library functions take typed parameters; parsing command lines is cli/'s job alone.
    assert importers_outside(external_imports(), "argparse", "vesselflow.cli") == []


def test_no_module_over_the_size_limit() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in _modules().items()}
    big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


BASE = ("vesselflow.io", "vesselflow.flows", "vesselflow.training", "vesselflow.batch",
        "vesselflow.runtime")
TASKS = ("vesselflow.vessel", "vesselflow.sr", "vesselflow.app", "vesselflow.cli")


def test_shared_base_does_not_import_the_tasks() -> None:
    graph = import_graph()
    bad = {m: sorted(d for d in deps if d.startswith(TASKS))
           for m, deps in graph.items() if m.startswith(BASE)}
    assert not {m: d for m, d in bad.items() if d}


def test_bits_per_dim_is_defined_once() -> None:
    # ln 2 appears only in the definition: every bpd in the package goes through it
    hits = [f"{m}:{i + 1}" for m, p in _modules().items()
            for i, line in enumerate(p.read_text().splitlines())
            if "log(2)" in line.replace(" ", "") or "log(2.0)" in line.replace(" ", "")]
    assert hits == [next(f"vesselflow.flows.multiscale:{i + 1}" for i, line in enumerate(
        (PKG / "flows" / "multiscale.py").read_text().splitlines()) if "log(2.0)" in line)]


def test_the_app_writes_no_image_with_its_own_code() -> None:
    # The app encodes nothing itself: files come from the library's writers.
    writers = ("Image.fromarray", ".save(", "imwrite", "png_bytes", "tiff_bytes",
               "Nifti1Image", "to_bytes(")
    found = [f"{m}: {w}" for m, p in _modules().items() if m.startswith("vesselflow.app")
             for w in writers if w in p.read_text()]
    assert not found
