"""House rules anyone can check: no import cycle inside a package, and no module importing another
module's `_private` names. The imports are read from the source (every `import` statement, those
inside functions and `if TYPE_CHECKING:` blocks included), so a cycle hidden in a function counts.

Each package that passes is listed in `PACKAGES`; add yours when it does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: (directory of the package, its import name)
PACKAGES: list[tuple[str, str]] = [
    ("relay/podwatch_relay", "podwatch_relay"),
    ("layers/podwatch/podwatch", "podwatch"),
    ("functions", "functions"),
    ("cli/podwatch_cli", "podwatch_cli"),
    ("local", "local"),
]


def _module_name(package: str, path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an `ImportFrom` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(package: str, base: Path) -> dict[str, list[tuple[str, str | None, int]]]:
    """module → [(imported module, imported name or None, line)] for every module of the package."""
    found: dict[str, list[tuple[str, str | None, int]]] = {}
    for path in sorted(base.rglob("*.py")):
        module = _module_name(package, path, base)
        tree = ast.parse(path.read_text(), filename=str(path))
        rows: list[tuple[str, str | None, int]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                rows.extend((alias.name, None, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", node)
                rows.extend((target, alias.name, node.lineno) for alias in node.names)
        found[module] = rows
    return found


def _edges(package: str, imports: dict[str, list[tuple[str, str | None, int]]]) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports (`from pkg import mod` included)."""
    modules = set(imports)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, rows in imports.items():
        for target, name, _ in rows:
            if name is not None and f"{target}.{name}" in modules:
                target = f"{target}.{name}"
            if target in modules and target != module and target != package:
                edges[module].add(target)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module)):
            return found
    return None


@pytest.mark.parametrize(("directory", "package"), PACKAGES)
def test_no_import_cycle(directory: str, package: str) -> None:
    edges = _edges(package, _imports(package, ROOT / directory))
    assert _cycle(edges) is None, f"import cycle in {package}: {' -> '.join(_cycle(edges) or [])}"


@pytest.mark.parametrize(("directory", "package"), PACKAGES)
def test_no_private_name_imported_across_modules(directory: str, package: str) -> None:
    imports = _imports(package, ROOT / directory)
    private = [
        f"{module}:{line} imports {name} from {target}"
        for module, rows in imports.items()
        for target, name, line in rows
        if name is not None and name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert private == []


def test_the_checks_catch_what_they_are_for() -> None:
    # A hidden cycle and a private import are found: the checks above are not vacuous.
    edges = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": set()}
    assert _cycle(edges) == ["p.a", "p.b", "p.c", "p.a"]
    assert _cycle({"p.a": {"p.b"}, "p.b": set()}) is None
    tree = ast.parse("def f():\n    from p.b import _hidden\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert (_resolve("p.a", False, node), node.names[0].name) == ("p.b", "_hidden")
    relative = ast.parse("from .b import x\n").body[0]
    assert isinstance(relative, ast.ImportFrom)
    assert _resolve("p.a", False, relative) == "p.b"
    assert _resolve("p", True, relative) == "p.b"


#: What each package may import of the others: downwards only, so the CLI an operator installs never
#: needs the local stack, and the layer and the relay need nothing but the layer.
BELOW: dict[str, set[str]] = {
    "podwatch": set(),
    "podwatch_relay": {"podwatch"},
    "functions": {"podwatch"},
    "podwatch_cli": {"podwatch"},
    "local": {"podwatch", "podwatch_relay", "podwatch_cli"},
    "bench": {"podwatch", "podwatch_relay", "podwatch_cli", "local"},
    "tests": {"podwatch", "podwatch_relay", "podwatch_cli", "local", "bench"},
}


@pytest.mark.parametrize(("directory", "package"), [*PACKAGES, ("bench", "bench"), ("tests", "tests")])
def test_packages_import_only_the_ones_below_them(directory: str, package: str) -> None:
    upwards = sorted(
        f"{module}:{line} imports {target}"
        for module, rows in _imports(package, ROOT / directory).items()
        for target, _, line in rows
        if (top := target.split(".")[0]) in BELOW and top != package and top not in BELOW[package]
    )
    assert upwards == []
