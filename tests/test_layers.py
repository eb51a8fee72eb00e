"""The package's imports flow one way: no module of `genwire` imports, directly or
through others, a module that imports it back (imports only for type checking
excepted). Read with `ast`, so a cycle fails here even where Python would
tolerate it at import time."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "genwire"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement except those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the genwire modules it imports (a package's `__init__` counts as the
    package; `from pkg import mod` as `pkg.mod`)."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level or not node.module:
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                targets.add(submodule if submodule in modules else node.module)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_module_of_genwire_imports_itself_back() -> None:
    graph = import_graph()
    assert "genwire.service" in graph, "the graph was not read"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_only_the_store_imports_sqlalchemy() -> None:
    """A closed store: nothing above it passes a connection or knows the driver's errors."""
    outside = sorted(
        name
        for name, path in ((_module_name(p), p) for p in PACKAGE.rglob("*.py"))
        if not name.startswith("genwire.store")
        and any(
            (
                isinstance(node, ast.Import)
                and any(a.name.startswith("sqlalchemy") for a in node.names)
            )
            or (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"))
            for node in _runtime_imports(ast.parse(path.read_text()))
        )
    )
    assert outside == []


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_the_client_imports_nothing_of_genwire_outside_it() -> None:
    """The client ships without the server: it never imports the rest of genwire."""
    graph = import_graph()
    outside = {
        name: sorted(target for target in targets if not _within(target, "genwire.client"))
        for name, targets in graph.items()
        if _within(name, "genwire.client")
    }
    assert "genwire.client.sync" in outside, "the client was not read"
    assert {name: targets for name, targets in outside.items() if targets} == {}


def test_the_doctor_reaches_the_client_only_through_its_public_names() -> None:
    """The doctor drives a server as a user's code would: through what `genwire.client`
    exports, never its private or submodules."""
    graph = import_graph()
    private = {
        name: sorted(
            target
            for target in targets
            if target != "genwire.client" and not _within(target, "genwire.client.doctor")
        )
        for name, targets in graph.items()
        if _within(name, "genwire.client.doctor")
    }
    assert "genwire.client.doctor.runner" in private, "the doctor was not read"
    assert {name: targets for name, targets in private.items() if targets} == {}
