"""Layout rules `make lint` enforces:
- no module in src/ over 500 lines;
- no import circle among modules through their module-level imports;
- no circle among packages (``data``, ``models``, ``eval``, ``ranking``, ``service``, ... and
  the top-level modules) through *any* import, those inside functions included: the packages
  form layers and no arrow runs back up (docs/design.md draws them). Only imports under
  ``TYPE_CHECKING`` (annotations) and the model registry's names by string are left out."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, name: str) -> set[str]:
    """Modules imported at module level (not in functions, not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return out


def all_imports(path: Path, root: str) -> list[tuple[str, int]]:
    """Every module of package ``root`` imported anywhere in the file but under
    ``if TYPE_CHECKING``, with its line."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.module, node.lineno)]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
    return [(m, line) for m, line in out if m == root or m.startswith(root + ".")]


def package_of(module: str) -> str:
    """``llmrec.eval.tuning`` -> ``eval``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_circles(files: list[Path]) -> list[str]:
    edges: dict[str, dict[str, str]] = {}
    for p in files:
        name = module_name(p)
        src = package_of(name)
        for m, line in all_imports(p, name.split(".")[0]):
            dst = package_of(m)
            if dst != src:
                edges.setdefault(src, {}).setdefault(dst, f"{p.relative_to(SRC.parent)}:{line}")
    # Tarjan's strongly connected components: any with two or more packages is a circle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:
        if len(comp) > 1:
            inside = [
                f"{a} -> {b} ({where})"
                for a in comp
                for b, where in sorted(edges.get(a, {}).items())
                if b in comp
            ]
            out.append("package circle: " + "; ".join(inside))
    return out


def main() -> int:
    files = sorted(SRC.rglob("*.py"))
    problems = [
        f"{p.relative_to(SRC.parent)}: {n} lines > {MAX_LINES}"
        for p in files
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    names = {module_name(p): p for p in files}
    # an edge to one's own package (``from llmrec.data import columns`` inside data/) is how
    # Python loads a package, not a circle: left out
    graph = {
        m: {
            i
            for i in top_level_imports(p, m)
            if i in names and i != m and not m.startswith(i + ".")
        }
        for m, p in names.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                problems.append("import circle: " + " -> ".join(cycle))
            elif n not in state:
                dfs(n)
        stack.pop()
        state[m] = 2

    sys.setrecursionlimit(10_000)
    for m in sorted(graph):
        if m not in state:
            dfs(m)
    problems += package_circles(files)
    sys.stdout.write("".join(f"{line}\n" for line in problems))
    sys.stdout.write(f"checked {len(files)} modules: {len(problems)} problems\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
