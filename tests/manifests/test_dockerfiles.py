"""The one Dockerfile builds any function: it parses, copies only what exists for each
skaffold artifact's build arguments, and runs the function's main.py as non-root."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "functions" / "Dockerfile"
SKAFFOLD = yaml.safe_load((REPO / "skaffold.yaml").read_text())
ARTIFACTS = {a["image"]: a for a in SKAFFOLD["build"]["artifacts"]}
FOLDERS = sorted(p.name for p in (REPO / "functions").iterdir() if (p / "main.py").is_file())
EXTRAS = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
             ["optional-dependencies"])
SERVICES = {doc["metadata"]["name"]: doc for path in sorted((REPO / "knative").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc["kind"] == "Service"}


def instructions() -> list[tuple[str, str]]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return [(i["instruction"], i["value"]) for i in parser.structure]


def args_with_defaults() -> dict[str, str | None]:
    found = {}
    for name, value in instructions():
        if name == "ARG":
            key, _, default = value.partition("=")
            found[key] = default.strip('"') if default else None
    return found


def expand(value: str, build_args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: build_args[m.group(1)], value)


def test_one_dockerfile_and_no_copies_in_function_folders() -> None:
    assert DOCKERFILE.is_file()
    assert sorted((REPO / "functions").glob("*/Dockerfile")) == []


def test_every_function_folder_is_one_artifact_of_the_one_dockerfile() -> None:
    assert sorted(ARTIFACTS) == FOLDERS
    for image, artifact in ARTIFACTS.items():
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == "functions/Dockerfile"
        assert artifact["docker"]["buildArgs"]["FUNCTION"] == image


@pytest.mark.parametrize("image", sorted(ARTIFACTS))
def test_each_artifact_builds_from_existing_paths_as_non_root(image: str) -> None:
    build_args = {**args_with_defaults(), **ARTIFACTS[image]["docker"]["buildArgs"]}
    assert set(ARTIFACTS[image]["docker"]["buildArgs"]) <= set(args_with_defaults())
    assert args_with_defaults()["FUNCTION"] is None  # required: no function by default
    steps = instructions()
    froms = [value for name, value in steps if name == "FROM"]
    assert froms and all(value.split()[0] == "python:3.11-slim" for value in froms)
    for name, value in steps:
        if name in ("COPY", "ADD") and "--from=" not in value:
            sources = [part for part in value.split() if not part.startswith("--")][:-1]
            for source in sources:
                path = REPO / expand(source, build_args)
                assert path.exists(), f"{image}: COPY source {source} is missing"
    assert (REPO / "functions" / build_args["FUNCTION"] / "main.py").is_file()
    assert set(build_args["EXTRAS"].split(",")) <= EXTRAS
    users = [value for name, value in steps if name == "USER"]
    assert users and users[-1].isdigit() and users[-1] != "0"
    command = next(value for name, value in reversed(steps) if name == "CMD")
    assert "gunicorn" in command and "${PORT}" in command and '"${THREADS}"' in command
    assert '--chdir "functions/${FUNCTION}" main:app' in command


@pytest.mark.parametrize("image", sorted(ARTIFACTS))
def test_a_service_that_takes_one_request_at_a_time_runs_one_thread(image: str) -> None:
    threads = int(ARTIFACTS[image]["docker"]["buildArgs"]["THREADS"])
    concurrency = SERVICES[image]["spec"]["template"]["spec"]["containerConcurrency"]
    assert threads >= 1
    assert (threads == 1) == (concurrency == 1)


def test_the_dev_profile_adds_to_build_args_without_replacing_them() -> None:
    (dev,) = [p for p in SKAFFOLD["profiles"] if p["name"] == "dev"]
    patched = [p for p in dev["patches"] if "/buildArgs" in p["path"]]
    assert len(patched) == len(ARTIFACTS)
    for patch in patched:
        # Adding at .../buildArgs itself would replace FUNCTION and EXTRAS.
        assert patch["path"].endswith("/docker/buildArgs/GUNICORN_CMD_ARGS"), patch["path"]


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", ".troupe"} <= ignored
    # ...but never what the Dockerfile copies.
    assert not {"shared", "functions", "pyproject.toml", "README.md"} & ignored
