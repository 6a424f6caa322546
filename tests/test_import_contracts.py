"""The layers hold: import-linter's contracts (pyproject.toml) on the troupe package, and,
since function folders are not a package import-linter can analyse, an AST check of what
each function imports.

troupe.events <- troupe.function <- functions/*: a function imports the public modules of
the libraries its image carries, and its own folder's modules, and nothing of the local
runtime, the CLI or the demo.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = REPO / "functions"
# What a function image installs (pyproject's base dependencies and per-function extras).
IMAGE_PACKAGES = ("troupe.events", "troupe.function", "troupe.store", "troupe.ml",
                  "troupe.knative", "troupe.traces")


def test_import_linter_contracts_are_kept() -> None:
    tool = Path(sys.executable).parent / "lint-imports"
    if not tool.exists() and shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared")}
    result = subprocess.run([str(tool) if tool.exists() else "lint-imports"], cwd=REPO,
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert "0 broken" in result.stdout


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _problem(name: str) -> str | None:
    top = name.split(".")[0]
    if top != "troupe":
        return None if top not in ("functions",) else "imports another function's folder"
    if not name.startswith(tuple(f"{p}." for p in IMAGE_PACKAGES)) and \
            name not in IMAGE_PACKAGES:
        return "imports a troupe package that function images do not carry"
    if any(part.startswith("_") for part in name.split(".")):
        return "imports a private (_-prefixed) name"
    return None


@pytest.mark.parametrize("folder", sorted(p.name for p in FUNCTIONS.iterdir() if p.is_dir()))
def test_each_function_imports_only_public_modules_of_its_image(folder: str) -> None:
    problems = [f"{path.relative_to(REPO)}:{line}: {name}: {why}"
                for path in sorted((FUNCTIONS / folder).glob("*.py"))
                for line, name in _imports(path)
                if (why := _problem(name)) is not None]
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    planted = tmp_path / "handler.py"
    planted.write_text("from troupe.local.runtime import Runtime\n"
                       "from troupe.function._private import x\n")
    found = [_problem(name) for _, name in _imports(planted)]
    assert found[0] is not None and "do not carry" in found[0]
    assert found[1] is not None and "private" in found[1]
