"""The package's shape: no import cycle inside ``vesselflow``, no oversized module, one
definition of bits per dimension, and the app writes no image with its own code."""

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


def import_graph() -> dict[str, set[str]]:
    """module -> vesselflow modules it imports (anywhere in the file, functions included)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                # `from pkg import submodule` imports the submodule
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src
                           for a in node.names]
            for t in targets:
                while t and t not in mods:  # `import a.b.c` where c is a name: a.b
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


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


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    assert "vesselflow.io.files" in graph["vesselflow.io.weights"]
    assert "vesselflow.vessel.models.vessel" in graph["vesselflow.vessel.models.weights"]


def test_no_import_cycle_inside_vesselflow() -> None:
    assert find_cycle(import_graph()) is None


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
