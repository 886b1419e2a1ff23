"""The import rules of the house style, checked for real."""

import ast
import subprocess
import sys
from pathlib import Path

from rebase_core.settings import PROJECT_ROOT

LIBRARY = PROJECT_ROOT / "rebase_core"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_library_never_imports_streamlit():
    offenders = [p for p in LIBRARY.rglob("*.py") if "streamlit" in _imports(p)]
    assert offenders == []


def test_only_the_store_module_imports_chromadb():
    offenders = [
        p.relative_to(LIBRARY).as_posix()
        for p in LIBRARY.rglob("*.py")
        if "chromadb" in _imports(p)
    ]
    assert offenders in ([], ["store.py"])


def test_import_is_light():
    """`import rebase_core` (and its CLI parser) loads none of the heavy libraries."""
    code = (
        "import sys, rebase_core, rebase_core.cli, rebase_core.types, rebase_core.settings;"
        "rebase_core.cli.build_parser();"
        "heavy = {'streamlit','torch','umap','anthropic','openai','chromadb','transformers',"
        "'sentence_transformers','datasets','llama_cpp','pandas'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _module_imports(path: Path) -> set[str]:
    """The rebase_core modules a file imports when it is loaded (not in functions, not under
    TYPE_CHECKING), with the packages that importing them loads first."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    out = set()
    for name in found:
        parts = name.split(".")
        out.update(".".join(parts[:k]) for k in range(2, len(parts) + 1))
    return out


def test_no_import_cycle_in_the_library():
    def name(p: Path) -> str:
        parts = list(p.relative_to(PROJECT_ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name(p): p for p in LIBRARY.rglob("*.py")}
    graph = {
        m: {d for d in _module_imports(p) if d in modules and d != m and not m.startswith(d + ".")}
        for m, p in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def cycle_from(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return [*path[path.index(d) :], d] if d in path else [m, d]
            if d not in state and (found := cycle_from(d, [*path, d])):
                return found
        state[m] = 2
        return None

    for m in sorted(modules):
        if m not in state and (found := cycle_from(m, [m])):
            raise AssertionError(f"import cycle: {' -> '.join(found)}")
