"""Structure figures of the `translate` package: modules, lines, the longest functions, import
cycles between modules and imports inside functions.

    python -m scripts.dev.code_stats                 # a summary
    python -m scripts.dev.code_stats --imports       # also list every import inside a function
    python -m scripts.dev.code_stats --json out.json

Read from the source with `ast`; nothing of the package is imported or run.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "translate"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def collect(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, int, str]], list[dict]]:
    """(module -> modules it imports at top level or in functions, imports inside functions, functions)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    inner: list[tuple[str, int, str]] = []
    functions: list[dict] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                parents[child] = parent
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append({"module": name, "function": node.name, "line": node.lineno,
                                  "lines": node.end_lineno - node.lineno + 1})
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = resolve(name, is_package, node)
                targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
            if not targets:
                continue
            in_function = False
            up = parents.get(node)
            while up is not None:
                if isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    in_function = True
                    break
                up = parents.get(up)
            if in_function:
                inner.append((name, node.lineno, targets[0]))
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph, inner, functions


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
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
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.code_stats", description=__doc__.splitlines()[0])
    parser.add_argument("--imports", action="store_true", help="list every import inside a function")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--top", type=int, default=10, help="how many of the longest functions to list")
    args = parser.parse_args()
    paths = sorted((ROOT / PACKAGE).rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in paths)
    graph, inner, functions = collect(modules)
    # A package's __init__ re-exporting its submodules is not a cycle of dependencies.
    graph = {m: {t for t in ts if not (m.startswith(t + ".") and modules[t].name == "__init__.py")}
             for m, ts in graph.items()}
    found = cycles(graph)
    longest = sorted(functions, key=lambda f: -f["lines"])[: args.top]
    over_80 = [f for f in functions if f["lines"] > 80]
    print(f"modules: {len(paths)}   lines: {lines}")
    print(f"import cycles: {len(found)} ({sum(len(c) for c in found)} modules)")
    for component in found:
        print("  " + " <-> ".join(component))
    print(f"imports inside functions: {len(inner)}")
    if args.imports:
        for name, line, target in inner:
            print(f"  {name}:{line} -> {target}")
    print(f"functions over 80 lines: {len(over_80)}")
    print(f"the {args.top} longest functions:")
    for f in longest:
        print(f"  {f['lines']:4d}  {f['module']}:{f['function']} (line {f['line']})")
    if args.json:
        args.json.write_text(json.dumps({"modules": len(paths), "lines": lines, "cycles": found,
                                         "imports_inside_functions": len(inner), "longest": longest},
                                        indent=2))


if __name__ == "__main__":
    main()
