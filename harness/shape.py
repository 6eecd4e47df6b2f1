"""The integration's shape: module and function sizes, and its import graph with its cycles.

`python -m harness.shape [--root DIR]` (or `scripts/shape`) prints the largest modules and
functions of DIR/custom_components/shackleton and its import cycles, at run time and those
that only imports under `if TYPE_CHECKING:` close: the figures before and after a refactor.
tests/test_architecture.py holds the package to the same analysis.
"""

from __future__ import annotations

import argparse
import ast
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
import sys

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "custom_components.shackleton"
# The package's name in the graph: its modules read as `shackleton.voice.engine`.
SHORT = "shackleton"
# The voice package's other name (a link in the repository, the worker's package).
ALIASES = {"shackleton_voice": f"{PACKAGE}.voice"}
MAX_FUNCTION_LINES = 60
LONG_MARK = "# Long:"


@dataclass(frozen=True)
class Module:
    """A module of the package: its dotted name (`shackleton.voice.engine`) and file."""

    name: str
    path: Path
    relative: str  # from the package's folder, as printed
    is_package: bool


@dataclass(frozen=True)
class Function:
    """A function or method, from its first decorator (or `def`) to its last line."""

    module: Module
    line: int
    name: str  # qualified within its module: `Class.method`, `outer.inner`
    length: int
    excused: bool  # a `# Long:` comment just above says why it is long

    @property
    def where(self) -> str:
        """Return `file:line name`."""
        return f"{self.module.relative}:{self.line} {self.name}"


@dataclass(frozen=True)
class Imports:
    """The import graph: edges run at import time, and edges only under TYPE_CHECKING."""

    run_time: frozenset[tuple[str, str]]
    type_checking: frozenset[tuple[str, str]]


def modules(root: Path = REPO) -> list[Module]:
    """Return the package's modules under `root`, sorted by name."""
    base = root / PACKAGE.replace(".", "/")
    found = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        relative = path.relative_to(base).as_posix()
        found.append(Module(".".join((SHORT, *parts)), path, relative, is_package))
    return sorted(found, key=lambda module: module.name)


def _tree(module: Module) -> ast.Module:
    return ast.parse(module.path.read_text(), filename=str(module.path))


def module_lines(found: Iterable[Module]) -> list[tuple[int, Module]]:
    """Return each module's line count, the largest first."""
    sized = [(len(module.path.read_text().splitlines()), module) for module in found]
    return sorted(sized, key=lambda item: (-item[0], item[1].relative))


def _excused(lines: list[str], first: int) -> bool:
    """Return whether the comment block just above line `first` (1-based) opens with `# Long:`."""
    above = first - 2
    if above < 0 or not lines[above].strip().startswith("#"):
        return False
    # A reason may take more than one line: the block's first line carries the mark.
    while above > 0 and lines[above - 1].strip().startswith("#"):
        above -= 1
    return lines[above].strip().startswith(LONG_MARK)


def _visit(node: ast.AST, prefix: str, module: Module, lines: list[str]) -> Iterator[Function]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([d.lineno for d in child.decorator_list] + [child.lineno])
            end = child.end_lineno or child.lineno
            name = f"{prefix}{child.name}"
            yield Function(module, first, name, end - first + 1, _excused(lines, first))
            yield from _visit(child, f"{name}.", module, lines)
        elif isinstance(child, ast.ClassDef):
            yield from _visit(child, f"{prefix}{child.name}.", module, lines)
        else:
            yield from _visit(child, prefix, module, lines)


def functions(found: Iterable[Module]) -> list[Function]:
    """Return every function and method (nested ones too), the longest first."""
    result: list[Function] = []
    for module in found:
        result.extend(_visit(_tree(module), "", module, module.path.read_text().splitlines()))
    return sorted(result, key=lambda f: (-f.length, f.module.relative, f.line))


def long_functions(found: Iterable[Module], limit: int = MAX_FUNCTION_LINES) -> list[Function]:
    """Return the functions over `limit` lines without a `# Long:` reason, the longest first."""
    return [f for f in functions(found) if f.length > limit and not f.excused]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time(
    body: Sequence[ast.AST], guarded: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Yield the imports a module runs as it loads (class bodies too), and if under TYPE_CHECKING.

    Functions' bodies run later: their imports are not the module's.
    """
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            yield stmt, guarded
        elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            yield from _import_time(stmt.body, guarded=True)
            yield from _import_time(stmt.orelse, guarded)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                inner = getattr(stmt, field, None)
                if isinstance(inner, list):
                    yield from _import_time(inner, guarded)


def _absolute(name: str) -> str | None:
    """Return the graph's name for an absolute module name, or None if not the package's."""
    for alias, target in ALIASES.items():
        if name == alias or name.startswith(f"{alias}."):
            name = target + name[len(alias) :]
    if name == PACKAGE or name.startswith(f"{PACKAGE}."):
        return SHORT + name[len(PACKAGE) :]
    return None


def _targets(stmt: ast.Import | ast.ImportFrom, module: Module, known: set[str]) -> set[str]:
    """Return the package's modules that an import statement loads."""
    if isinstance(stmt, ast.Import):
        names = [_absolute(alias.name) for alias in stmt.names]
        return {name for name in names if name in known}
    if stmt.level:
        package = module.name.split(".")
        if not module.is_package:
            package = package[:-1]
        package = package[: len(package) - (stmt.level - 1)]
        base: str | None = ".".join([*package, *([stmt.module] if stmt.module else [])])
    else:
        base = _absolute(stmt.module or "")
    if base is None:
        return set()
    # `from pkg import name`: the submodule `name` if there is one, else `pkg` itself.
    found = set()
    for alias in stmt.names:
        submodule = f"{base}.{alias.name}"
        found.add(submodule if submodule in known else base)
    return found & known


def imports(found: Iterable[Module]) -> Imports:
    """Return the package's import graph between its own modules."""
    found = list(found)
    known = {module.name for module in found}
    run_time: set[tuple[str, str]] = set()
    type_checking: set[tuple[str, str]] = set()
    for module in found:
        for stmt, guarded in _import_time(_tree(module).body, guarded=False):
            for target in _targets(stmt, module, known) - {module.name}:
                (type_checking if guarded else run_time).add((module.name, target))
    return Imports(frozenset(run_time), frozenset(type_checking - run_time))


def _shortest_path(edges: Iterable[tuple[str, str]], start: str, end: str) -> list[str] | None:
    """Return the shortest path from `start` to `end` (both included), or None."""
    following: dict[str, list[str]] = {}
    for source, target in sorted(edges):
        following.setdefault(source, []).append(target)
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == end:
            path = [node]
            while (previous := came_from[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for target in following.get(node, []):
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    return None


def _canonical(cycle: list[str]) -> tuple[str, ...]:
    """Return the cycle (no repeated end) rotated to start at its smallest name."""
    start = cycle.index(min(cycle))
    return tuple(cycle[start:] + cycle[:start])


def cycles(
    closing: Iterable[tuple[str, str]], edges: Iterable[tuple[str, str]]
) -> list[tuple[str, ...]]:
    """Return the cycles each `closing` edge makes with `edges`: the shortest one through each.

    Each cycle is its modules in order, its first repeated at the end.
    """
    edges = set(edges)
    found = set()
    for source, target in sorted(closing):
        back = _shortest_path(edges, target, source)
        if back is not None:
            found.add(_canonical([source, *back[:-1]]))
    return sorted((*cycle, cycle[0]) for cycle in found)


def run_time_cycles(graph: Imports) -> list[tuple[str, ...]]:
    """Return the import cycles at run time."""
    return cycles(graph.run_time, graph.run_time)


def type_checking_cycles(graph: Imports) -> list[tuple[str, ...]]:
    """Return the cycles that only the imports under TYPE_CHECKING close."""
    every = graph.run_time | graph.type_checking
    at_run_time = set(run_time_cycles(graph))
    return [c for c in cycles(graph.type_checking, every) if c not in at_run_time]


def _short(name: str) -> str:
    """Return a module's name within the package (the package itself keeps its name)."""
    return name.removeprefix(f"{SHORT}.")


def report(root: Path, top_modules: int = 12, top_functions: int = 25) -> str:
    """Return the printed summary for the tree under `root`."""
    found = modules(root)
    sizes = module_lines(found)
    every = functions(found)
    graph = imports(found)
    long = [f for f in every if f.length > MAX_FUNCTION_LINES]
    lines = [
        f"{len(found)} modules, {sum(n for n, _ in sizes)} lines, {len(every)} functions, "
        f"{len(long)} over {MAX_FUNCTION_LINES} lines "
        f"({sum(not f.excused for f in long)} without a `{LONG_MARK}` reason)",
        "",
        f"Largest modules (lines), top {top_modules}:",
        *(f"  {n:5d}  {module.relative}" for n, module in sizes[:top_modules]),
        "",
        f"Largest functions (lines), top {top_functions}:",
        *(
            f"  {f.length:5d}  {f.where}{'  (# Long)' if f.excused else ''}"
            for f in every[:top_functions]
        ),
    ]
    for title, found_cycles in (
        ("Import cycles at run time", run_time_cycles(graph)),
        ("Import cycles closed only under TYPE_CHECKING", type_checking_cycles(graph)),
    ):
        lines += ["", f"{title}: {len(found_cycles)}"]
        lines += [f"  {' -> '.join(_short(name) for name in cycle)}" for cycle in found_cycles]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Print the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO,
        help="the folder holding custom_components/shackleton (default: this repository)",
    )
    args = parser.parse_args()
    if not (args.root / PACKAGE.replace(".", "/")).is_dir():
        parser.error(f"no {PACKAGE.replace('.', '/')} under {args.root}")
    sys.stdout.write(report(args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
