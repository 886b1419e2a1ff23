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
