"""The house's layering (docs/architecture.md): no package imports one above it, no package cycles.

Read from the source with `ast`, so it needs nothing installed and names every offending import.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "mailwarden"

# Modules every layer may use: errors, ids, file and log helpers; they import only each other.
FOUNDATION = frozenset(
    {"__init__", "errors", "ids", "durable", "logs", "metrics", "dns", "throttle", "lifeline", "i18n"}
)
# What each package may import besides the foundation. Siblings of one floor do not import each other.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "mail": frozenset({"model"}),
    "pipeline": frozenset({"model", "mail"}),
    "ingest": frozenset({"model", "mail"}),
    "deliver": frozenset({"model", "mail"}),
    "store": frozenset({"model", "mail"}),
    "enforce": frozenset({"model", "mail", "pipeline", "deliver"}),
    "quarantine": frozenset({"model", "mail", "store", "deliver"}),
    "clawback": frozenset({"model", "mail", "store"}),
    "export": frozenset({"model", "mail", "store"}),
    "outbound": frozenset({"model", "mail", "store"}),
}
MAY_IMPORT["service"] = frozenset(MAY_IMPORT)  # every floor below it
MAY_IMPORT["api"] = MAY_IMPORT["service"] | {"service"}
MAY_IMPORT["console"] = MAY_IMPORT["api"] | {"api"}
MAY_IMPORT["cli"] = MAY_IMPORT["console"] | {"console"}
MAY_IMPORT["__main__"] = frozenset({"cli"})


def _unit(path: Path) -> str:
    """The package (or foundation module) a source file belongs to."""
    first = path.relative_to(SRC).parts[0]
    return first.removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, first component under mailwarden) of every mailwarden import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "mailwarden":
                names = [f"mailwarden.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mailwarden" and len(parts) > 1:
                known = (SRC / parts[1]).is_dir() or (SRC / f"{parts[1]}.py").is_file()
                found.append((node.lineno, parts[1] if known else "__init__"))  # `from mailwarden import __version__`
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        unit = _unit(path)
        for line, target in _imports(path):
            if target == unit or (target in FOUNDATION and (unit != "__init__" or target == "__init__")):
                continue
            if unit in FOUNDATION:
                allowed: frozenset[str] = FOUNDATION
            else:
                assert unit in MAY_IMPORT, f"{unit}: a package the layering does not place (add it)"
                allowed = MAY_IMPORT[unit] | FOUNDATION
            if target not in allowed:
                out.append(f"{path.relative_to(SRC.parent)}:{line}: {unit} imports {target}")
    return out


def test_no_package_imports_upward_or_sideways() -> None:
    assert _violations() == []


def test_every_package_has_a_place() -> None:
    units = {_unit(p) for p in SRC.rglob("*.py")}
    assert units <= set(MAY_IMPORT) | FOUNDATION, units - set(MAY_IMPORT) - FOUNDATION


def _subpackage(path: Path) -> str:
    """`pipeline.spam` for pipeline/spam/stage.py, `pipeline` for pipeline/engine.py."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def _subpackage_graph() -> dict[str, set[str]]:
    packages = {_subpackage(p) for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        source = _subpackage(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mailwarden."):
                parts = node.module.split(".")[1:]
                target = ".".join(parts[:2]) if ".".join(parts[:2]) in packages else parts[0]
                if target != source and target in packages and not _parent_and_child(source, target):
                    graph.setdefault(source, set()).add(target)
    return graph


def _parent_and_child(a: str, b: str) -> bool:
    """A package and one of its own sub-packages (api and api.routes) work as one; not a cycle."""
    return b.startswith(f"{a}.") or a.startswith(f"{b}.")


def test_no_package_cycles() -> None:
    graph = _subpackage_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
