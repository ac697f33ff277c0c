"""The README's layer table, checked by reading every module's imports.

No lower layer imports a higher one, no front-end module is imported below the front ends,
and no two modules import each other, directly or around a longer loop.  An import under
``if TYPE_CHECKING:`` is read too for the layer rule (a type is a dependency) but not for
cycles (it is never executed).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "concsim"

#: Modules any layer may import: the error types, the version, variant-spec strings.
BASE = {"concsim._errors", "concsim._version", "concsim._varspec"}

#: Each layer and the layers it may import (README, "What is here").  A module belongs to
#: the first layer whose package it is in; top-level modules not in BASE are front ends.
LAYERS: dict[str, set[str]] = {
    "engine": set(),
    "strategies": {"engine"},
    "kernel": {"engine"},
    "driver": {"kernel", "engine"},
    "checks": {"driver", "kernel", "engine"},
    "scenarios": {"checks", "driver", "kernel", "engine"},
    "artifacts": {"engine"},
    "explain": {"checks", "driver", "kernel", "engine", "artifacts"},
    "runs": {"scenarios", "checks", "driver", "kernel", "strategies", "engine", "artifacts"},
    "exploration": {
        "runs",
        "scenarios",
        "checks",
        "driver",
        "kernel",
        "strategies",
        "engine",
        "artifacts",
    },
    "campaign": {
        "exploration",
        "runs",
        "scenarios",
        "checks",
        "driver",
        "kernel",
        "strategies",
        "engine",
        "artifacts",
    },
}
FRONT = "front ends"


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(mod: str) -> str:
    if mod in BASE:
        return "base"
    parts = mod.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    return FRONT


def _resolve(name: str) -> str | None:
    """The concsim module an imported dotted name refers to (its longest module prefix)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(mod: str) -> list[Import]:
    tree = ast.parse(MODULES[mod].read_text(encoding="utf-8"))
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{mod}: relative import"
            base = node.module or ""
            names = [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] != "concsim":
                continue
            target = _resolve(name)
            if target is not None and target != mod:
                found.append(Import(mod, target, getattr(node, "lineno", 0), type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


ALL_IMPORTS = [imp for mod in MODULES for imp in imports_of(mod)]


def test_every_module_has_a_layer() -> None:
    assert "concsim.engine._runtime" in MODULES
    assert {layer_of(m) for m in MODULES} >= {*LAYERS, FRONT, "base"}


def test_no_layer_imports_a_higher_one() -> None:
    bad = []
    for imp in ALL_IMPORTS:
        src, dst = layer_of(imp.source), layer_of(imp.target)
        if src == FRONT or dst in ("base", src):
            continue
        if src == "base" or dst not in LAYERS[src]:
            bad.append(f"{imp.source}:{imp.line} ({src}) imports {imp.target} ({dst})")
    assert bad == []


def test_no_front_end_module_is_imported_below_the_front_ends() -> None:
    bad = [
        f"{imp.source}:{imp.line} imports the front end {imp.target}"
        for imp in ALL_IMPORTS
        if layer_of(imp.source) != FRONT and layer_of(imp.target) == FRONT
    ]
    assert bad == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles_between_modules() -> None:
    edges: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if not imp.type_only:
            edges.setdefault(imp.source, set()).add(imp.target)
    assert _cycles(edges) == []


@pytest.mark.parametrize(
    ("edges", "cyclic"),
    [
        ({"a": {"b"}, "b": {"c"}}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], cyclic: bool) -> None:
    assert bool(_cycles(edges)) == cyclic


def test_the_layer_rule_catches_an_upward_import() -> None:
    assert layer_of("concsim.kernel._mm") == "kernel"
    assert "scenarios" not in LAYERS["kernel"]
    assert layer_of("concsim._api") == FRONT
    assert layer_of("concsim.cli._main") == FRONT
