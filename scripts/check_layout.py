"""Layout rules `make lint` enforces: no module in src/ over 500 lines, and no import circle
among modules through their module-level imports (imports inside functions and under
TYPE_CHECKING are deliberate late bindings and are not counted; docs/design.md lists them)."""

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
    sys.stdout.write("".join(f"{line}\n" for line in problems))
    sys.stdout.write(f"checked {len(files)} modules: {len(problems)} problems\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
