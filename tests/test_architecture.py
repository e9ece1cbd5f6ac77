"""The layer map of docs/architecture.md, checked: no module imports one above it.

Every ``import`` and ``from … import`` of every module under reconcile/ is read with ``ast``
(including imports inside functions); imports under ``if TYPE_CHECKING:`` are type hints, not
dependencies, and are skipped.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reconcile"

# Bottom to top; a module may import its own layer and the ones below it. The first matching
# prefix wins, so list a module before the package it sits in.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "reconcile",  # the package itself: __version__
            "reconcile.errors",
            "reconcile.identity",
            "reconcile.timeparse",
            "reconcile.terminal",
            "reconcile.model",
            "reconcile.spool",
            "reconcile.progress",
            "reconcile.logsetup",
            "reconcile.paths",
            "reconcile.leftovers",
            "reconcile.demo",
        ),
    ),
    ("sources", ("reconcile.ca", "reconcile.graph", "reconcile.intune", "reconcile.evidence")),
    ("join", ("reconcile.engine", "reconcile.join", "reconcile.guards")),
    ("enrich", ("reconcile.enrich",)),
    ("views", ("reconcile.views", "reconcile.history")),
    ("report", ("reconcile.report",)),
    (
        "app",
        (
            "reconcile.explain",
            "reconcile.doctor",
            "reconcile.notify",
            "reconcile.lock",
            "reconcile.retention",
            "reconcile.emulator",
        ),
    ),
    # Settings are resolved once here and turned into each part's small options; the use cases
    # that still take the whole Settings object sit beside them.
    ("door", ("reconcile.settings", "reconcile.pipeline", "reconcile.verify", "reconcile.starter")),
    ("cli", ("reconcile.cli",)),
)

# Sources read one system each and never one another, except that intune/ reads through graph/
# and fetches and stores Cloud PKI (a CA that lives in the tenant) with ca/cloudpki's decoders.
SOURCES = ("reconcile.ca", "reconcile.graph", "reconcile.intune", "reconcile.evidence")
SOURCE_MAY_USE = {"reconcile.intune": ("reconcile.graph", "reconcile.ca.cloudpki")}

# Settings stop at the door (issue 13 item 1): resolved once, then each part gets the small
# typed options it needs. These modules still read the Settings object; the list only shrinks.
SETTINGS_READERS = frozenset(
    {"reconcile.cli", "reconcile.pipeline", "reconcile.starter", "reconcile.verify"}
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, resolved to its full dotted name."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            base = node.module or ""
            # "from reconcile import history" imports the module reconcile.history (and, as
            # every submodule import does, its package).
            modules = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
            found.update(modules or {base})
            if len(modules) < len(node.names):
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int:
    """Index into LAYERS of the most specific prefix naming ``module``."""
    best: tuple[int, int] | None = None
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _within(module, prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    assert best is not None, f"{module} is in no layer of docs/architecture.md"
    return best[1]


def _internal(imports: set[str]) -> set[str]:
    return {name for name in imports if name in MODULES}


def test_every_module_sits_in_a_layer() -> None:
    assert {layer_of(module) for module in MODULES} == set(range(len(LAYERS)))


def test_no_module_imports_one_above_it() -> None:
    upward = {
        (module, target)
        for module, imports in IMPORTS.items()
        for target in _internal(imports)
        if layer_of(target) > layer_of(module)
    }
    names = [name for name, _ in LAYERS]
    described = sorted(
        f"{m} ({names[layer_of(m)]}) imports {t} ({names[layer_of(t)]})" for m, t in upward
    )
    assert described == []


def test_no_import_cycles_even_inside_a_layer() -> None:
    """Imports inside functions count too: a cycle hidden in a function is still a cycle."""
    graph = {m: {t for t in _internal(imports) if t != m} for m, imports in IMPORTS.items()}
    # A package's __init__ importing its own submodules (and them it) is how packages work.
    graph = {m: {t for t in targets if not _within(m, t)} for m, targets in graph.items()}
    cycles = []
    for start in graph:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            module = stack.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                stack.extend(graph[module])
    assert cycles == []


def test_sources_do_not_read_one_another() -> None:
    crossing = sorted(
        f"{module} imports {target}"
        for module, imports in IMPORTS.items()
        for source in SOURCES
        if _within(module, source) and layer_of(module) == 1
        for target in _internal(imports)
        for other in SOURCES
        if other != source
        and _within(target, other)
        and not any(_within(target, allowed) for allowed in SOURCE_MAY_USE.get(source, ()))
    )
    assert crossing == []


def test_typer_is_imported_by_cli_only() -> None:
    users = sorted(m for m, imports in IMPORTS.items() if any(_within(i, "typer") for i in imports))
    assert users == ["reconcile.cli"]


def test_nothing_imports_cli_and_only_cli_starts_the_emulator() -> None:
    assert sorted(m for m, imports in IMPORTS.items() if "reconcile.cli" in imports) == []
    emulator_users = sorted(
        m
        for m, imports in IMPORTS.items()
        if not _within(m, "reconcile.emulator")
        and any(_within(i, "reconcile.emulator") for i in _internal(imports))
    )
    assert emulator_users == ["reconcile.cli"]


def test_no_new_module_reads_the_settings_object() -> None:
    readers = {m for m, imports in IMPORTS.items() if "reconcile.settings" in imports}
    assert sorted(readers - SETTINGS_READERS) == []


def test_report_and_history_exchange_records_not_imports() -> None:
    """RunDelta, RunRow, FindingRef and FindingDetail live in model.py for both."""
    crossing = sorted(
        f"{module} imports {target}"
        for module, imports in IMPORTS.items()
        for target in _internal(imports)
        for one, other in (
            ("reconcile.report", "reconcile.history"),
            ("reconcile.history", "reconcile.report"),
        )
        if _within(module, one) and _within(target, other)
    )
    assert crossing == []


def test_report_is_imported_only_above_it() -> None:
    below = sorted(
        f"{module} imports {target}"
        for module, imports in IMPORTS.items()
        for target in _internal(imports)
        if _within(target, "reconcile.report") and layer_of(module) < layer_of("reconcile.report")
    )
    assert below == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The parser is what every rule stands on: it must find imports in functions and skip
    TYPE_CHECKING blocks."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "import reconcile.errors\n"
        "if TYPE_CHECKING:\n"
        "    from reconcile.views import Views\n"
        "def f():\n"
        "    from reconcile import pipeline, __version__\n",
        encoding="utf-8",
    )
    assert _internal(_imports(sample)) == {"reconcile", "reconcile.errors", "reconcile.pipeline"}
    assert layer_of("reconcile.pipeline") > layer_of("reconcile.errors")
    assert layer_of("reconcile.enrich.evidence") > layer_of("reconcile.evidence.store")
