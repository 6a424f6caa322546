"""What each skaffold artifact builds from the one functions/Dockerfile.

Docker cannot build in the tests, so the Dockerfile is read with dockerfile-parse and each
artifact's build arguments are laid over the Dockerfile's defaults, as `docker build` would.
The manifest tests check the paths this gives; the lock tests check the lock it installs.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "functions" / "Dockerfile"
LOCKS = REPO / "requirements"


@cache
def artifacts() -> dict[str, dict[str, Any]]:
    """Image name -> its skaffold artifact."""
    skaffold = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    return {a["image"]: a for a in skaffold["build"]["artifacts"]}


@cache
def instructions() -> tuple[tuple[str, str], ...]:
    """(instruction, value) for every instruction of the Dockerfile, continuations joined."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    return tuple((i["instruction"], i["value"]) for i in parser.structure)


@cache
def arg_defaults() -> dict[str, str | None]:
    """ARG name -> its default in the Dockerfile, None when it has none."""
    found: dict[str, str | None] = {}
    for name, value in instructions():
        if name == "ARG":
            key, _, default = value.partition("=")
            found[key] = default.strip('"') if default else None
    return found


def build_args(image: str) -> dict[str, str | None]:
    """The build arguments `docker build` sees for one artifact."""
    return {**arg_defaults(), **artifacts()[image]["docker"]["buildArgs"]}


def expand(value: str, args: dict[str, str | None]) -> str:
    """`${NAME}` replaced by the build argument's value; a missing or unset one is an error."""
    def value_of(match: re.Match[str]) -> str:
        found = args.get(match.group(1))
        assert found is not None, f"${{{match.group(1)}}} has no value in {value}"
        return found
    return re.sub(r"\$\{(\w+)\}", value_of, value)


def lock_file(image: str) -> Path:
    """requirements/<LOCK>.txt: the lock the artifact's image installs."""
    lock = build_args(image)["LOCK"]
    assert lock, f"{image}: no LOCK build argument and no default in the Dockerfile"
    return LOCKS / f"{lock}.txt"
