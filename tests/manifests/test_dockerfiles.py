"""Each function's Dockerfile parses, copies only what exists, and runs as non-root."""

from __future__ import annotations

from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "functions").glob("*/Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    parser = DockerfileParser(path=str(path))
    return [(i["instruction"], i["value"]) for i in parser.structure]


def test_every_function_folder_has_a_dockerfile() -> None:
    folders = {p.name for p in (REPO / "functions").iterdir() if p.is_dir()}
    assert {p.parent.name for p in DOCKERFILES} == folders


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_builds_from_existing_paths_as_non_root(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    froms = [value for name, value in steps if name == "FROM"]
    assert froms and all(value.split()[0] == "python:3.11-slim" for value in froms)
    for name, value in steps:
        if name in ("COPY", "ADD") and "--from=" not in value:
            sources = [part for part in value.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile}: COPY source {source} is missing"
    users = [value for name, value in steps if name == "USER"]
    assert users and users[-1].isdigit() and users[-1] != "0"
    command = next(value for name, value in reversed(steps) if name == "CMD")
    function = dockerfile.parent.name
    assert "gunicorn" in command and "${PORT}" in command
    assert f"--chdir functions/{function} main:app" in command
    assert any(name == "COPY" and f"functions/{function}/" in value for name, value in steps)


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", ".troupe"} <= ignored
    # ...but never what the Dockerfiles copy.
    assert not {"shared", "functions", "pyproject.toml", "README.md"} & ignored
