"""The house rules of the tree, checked: no module imports from a higher layer, and no import cycle
anywhere (product code, benchmark harness or tests' helpers).

Every `import` and `from … import` counts, wherever it stands (module level, inside a function, under
`TYPE_CHECKING`): a cycle that only exists for the type checker is still two modules that cannot be
understood one without the other. Layers, lowest first (a module may import its own layer's package
and any lower layer; the rooms of one layer may not import each other):
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("wal", "actors", "transports", "bench")

# (rank, module prefix). The longest matching prefix decides a module's layer.
LAYERS: list[tuple[int, str]] = [
    (0, "wal"),
    (1, "actors"),
    (2, "transports.api"),
    (3, "transports.config"),
    (4, "transports.security"),
    (5, "transports.http"),
    (5, "transports.mqtt"),
    (6, "transports.observability"),
    (7, "transports.service_registry"),
    (8, "transports"),  # the composition root and the commands: service, cli, status, admin
    (9, "bench"),
]


def layer_of(module: str) -> tuple[int, str]:
    best: tuple[int, str] | None = None
    for rank, prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
            best = (rank, prefix)
    assert best is not None, module
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imported_modules(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The project modules `path` imports (resolving `from package import module` to the module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known_prefix(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    yield f"{target}.{alias.name}"
                    break
            else:
                yield from _known_prefix(target, known)


def _known_prefix(target: str, known: set[str]) -> Iterator[str]:
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            yield candidate
            return


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {
        name: {target for target in imported_modules(path, name, known) if target != name}
        for name, path in modules.items()
    }


def test_every_module_belongs_to_a_layer() -> None:
    for name in product_modules():
        layer_of(name)


def test_no_module_imports_from_a_higher_layer_or_a_sibling_room() -> None:
    wrong = []
    for name, targets in import_graph().items():
        rank, room = layer_of(name)
        for target in targets:
            target_rank, target_room = layer_of(target)
            if target_rank > rank or (target_rank == rank and target_room != room):
                wrong.append(f"{name} ({room}) imports {target} ({target_room})")
    assert not wrong, "\n".join(sorted(wrong))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None (iterative DFS, three colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for start in sorted(graph):
        if colour[start]:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if colour.get(child, 2) == 1:
                    path = [entry for entry, _ in stack]
                    return [*path[path.index(child) :], child]
                if colour.get(child) == 0:
                    colour[child] = 1
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                colour[node] = 2
                stack.pop()
    return None


def test_no_import_cycle_anywhere() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"a2", "b"}, "a2": set(), "b": {"a2"}}, False),
        ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, True),
    ],
)
def test_find_cycle_finds_cycles_and_only_cycles(graph: dict[str, set[str]], has_cycle: bool) -> None:
    cycle = find_cycle(graph)
    assert (cycle is not None) == has_cycle
    if cycle:
        assert cycle[0] == cycle[-1]
        assert all(b in graph[a] for a, b in itertools.pairwise(cycle))
