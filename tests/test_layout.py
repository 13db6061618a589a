"""The package's shape: no import cycles between modules, HTTP code only in ``framework2.service``, and modules a
reader can hold in their head. Read from the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "framework2"
HTTP_LIBRARIES = {"fastapi", "starlette", "uvicorn"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (at the top or inside a function), as absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imported(path) if m in modules and m != name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (a package __init__ importing its own modules counts): " + "; ".join(
        " ↔ ".join(c) for c in found
    )


def test_cycle_finder_sees_a_cycle_made_by_a_function_level_import(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_http_code_lives_only_in_the_service_package() -> None:
    offenders = {
        module_name(path): sorted(lib for lib in HTTP_LIBRARIES if any(m.split(".")[0] == lib for m in imported(path)))
        for path in PACKAGE.rglob("*.py")
        if not module_name(path).startswith("framework2.service")
    }
    assert {m: libs for m, libs in offenders.items() if libs} == {}


def test_every_folder_of_code_is_a_package_that_installs() -> None:
    """setuptools installs only folders with an ``__init__.py``: one without would work from a checkout and be
    missing from the image and the wheel."""
    from setuptools import find_packages

    found = set(find_packages(str(PACKAGE.parent), include=["framework2*"]))
    folders = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("*.py") if p.parent.name != "__pycache__"}
    # Alembic's scripts are data it loads by path (pyproject's package-data ships them), not importable modules.
    scripts = {"framework2.store.migrations", "framework2.store.migrations.versions"}
    assert folders - found - scripts == set()
