"""The one Dockerfile builds any function: it parses, copies only what exists for each
skaffold artifact's build arguments (its lock included), installs that lock by hash alone,
and runs the function's main.py as non-root."""

from __future__ import annotations

import shlex
from pathlib import Path

import gunicorn
import pytest
import yaml
from gunicorn.config import Config
from support.images import (
    DOCKERFILE,
    arg_defaults,
    artifacts,
    build_args,
    expand,
    instructions,
    lock_file,
)

REPO = Path(__file__).resolve().parents[2]
SKAFFOLD = yaml.safe_load((REPO / "skaffold.yaml").read_text())
ARTIFACTS = artifacts()
FOLDERS = sorted(p.name for p in (REPO / "functions").iterdir() if (p / "main.py").is_file())
SERVICES = {doc["metadata"]["name"]: doc for path in sorted((REPO / "knative").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc["kind"] == "Service"}


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
    args = build_args(image)
    assert set(ARTIFACTS[image]["docker"]["buildArgs"]) <= set(arg_defaults())
    assert arg_defaults()["FUNCTION"] is None  # required: no function by default
    steps = instructions()
    froms = [value for name, value in steps if name == "FROM"]
    assert froms and all(value.split()[0] == "python:3.11-slim" for value in froms)
    copied = []
    for name, value in steps:
        if name in ("COPY", "ADD") and "--from=" not in value:
            sources = [part for part in value.split() if not part.startswith("--")][:-1]
            for source in sources:
                path = REPO / expand(source, args)
                assert path.exists(), f"{image}: COPY source {source} is missing ({path})"
                copied.append(path)
    assert (REPO / "functions" / str(args["FUNCTION"]) / "main.py").is_file()
    assert lock_file(image).is_file(), f"{image}: no lock {lock_file(image).name}"
    assert lock_file(image) in copied, f"{image}: its lock is not copied into the image"
    users = [value for name, value in steps if name == "USER"]
    assert users and users[-1].isdigit() and users[-1] != "0"
    command = next(value for name, value in reversed(steps) if name == "CMD")
    assert "gunicorn" in command and "${PORT}" in command and '"${THREADS}"' in command
    assert '--chdir "functions/${FUNCTION}" main:app' in command


def test_the_image_command_is_one_the_locked_gunicorn_accepts() -> None:
    """Every option of the CMD exists in the gunicorn of the locks (a flag newer than the
    lock would stop every pod at start), and the master starts no control server."""
    locked = next(line.split("==")[1].split()[0] for line in
                  lock_file("ingest").read_text().splitlines() if line.startswith("gunicorn=="))
    assert gunicorn.__version__ == locked, "the tests run another gunicorn than the images"
    command = next(value for name, value in reversed(instructions()) if name == "CMD")
    words = shlex.split(command.replace("${PORT}", "8080").replace("${THREADS}", "4")
                        .replace("${FUNCTION}", "ingest"))
    assert words[:2] == ["exec", "gunicorn"]
    parsed = Config().parser().parse_args(words[2:])  # exits (SystemExit) on an unknown flag
    assert parsed.control_socket_disable is True
    assert (parsed.workers, parsed.threads, parsed.bind) == (1, 4, ["0.0.0.0:8080"])


def test_every_artifact_names_its_lock_and_the_default_is_the_base_lock() -> None:
    # An artifact left on the default would silently get the s3 lock alone.
    for image, artifact in ARTIFACTS.items():
        assert "LOCK" in artifact["docker"]["buildArgs"], f"{image} passes no LOCK"
    assert arg_defaults()["LOCK"] == "s3"


def test_the_image_installs_its_lock_by_hash_then_troupe_alone_then_checks() -> None:
    pip = [words[1:] for words in _final_stage_commands() if words[:1] == ["pip"]]
    installs = [words for words in pip if words[0] == "install"]
    # Nothing in the image is resolved outside the lock: every install takes no dependency.
    assert len(installs) == 2 and all("--no-deps" in words for words in installs), pip
    lock, troupe = installs
    assert "--require-hashes" in lock and "requirements/${LOCK}.txt" in lock
    assert lock[lock.index("requirements/${LOCK}.txt") - 1] == "-r"
    assert troupe[-1] == "/wheels/troupe-*.whl"
    assert pip[-1] == ["check"] and pip.index(troupe) < len(pip) - 1


def _final_stage_commands() -> list[list[str]]:
    """The shell commands the final stage runs, each split into words as the shell would."""
    steps = instructions()
    final = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    commands = []
    for name, value in steps[final:]:
        if name == "RUN":
            words = shlex.split(value, comments=True)
            command: list[str] = []
            for word in [*words, ";"]:
                if word in ("&&", "||", ";", "|"):
                    commands.append(command)
                    command = []
                else:
                    command.append(word)
    return [c for c in commands if c]


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
        # Adding at .../buildArgs itself would replace FUNCTION and LOCK.
        assert patch["path"].endswith("/docker/buildArgs/GUNICORN_CMD_ARGS"), patch["path"]


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", ".troupe"} <= ignored
    # ...but never what the Dockerfile copies.
    assert not {"shared", "functions", "pyproject.toml", "README.md", "requirements"} & ignored
