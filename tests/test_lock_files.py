"""The lock files pin, with hashes, everything each function image installs, and agree
with the ranges pyproject.toml declares, so a range changed without `make lock` fails here;
the ranges stay past published advisories."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from support.images import LOCKS, artifacts, build_args, lock_file

REPO = Path(__file__).resolve().parent.parent
ONLY_LOCKED = REPO / "tests" / "support" / "only_locked.py"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]
# Every image reads an s3:// store, so every lock includes the s3 extra.
ALWAYS = "s3"

IMAGES = {image: lock_file(image) for image in artifacts()}
LOCK_FILES = sorted(set(IMAGES.values()))


@cache
def compiled_with(lock: Path) -> tuple[str, ...]:
    """The pip-compile command that pip-compile wrote into the lock's header."""
    header = lock.read_text().split("\n\n", 1)[0]
    (command,) = [line.lstrip("# ") for line in header.splitlines()
                  if "pip-compile" in line and "--output-file" in line]
    return tuple(shlex.split(command))


def extras_of(lock: Path) -> tuple[str, ...]:
    return tuple(sorted(a.removeprefix("--extra=") for a in compiled_with(lock)
                        if a.startswith("--extra=")))


@cache
def pins(lock: Path) -> dict[str, tuple[Version, int]]:
    """Package -> (pinned version, number of hashes), from pip-compile's output."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split(" --")
        parsed = Requirement(requirement)
        (specifier,) = parsed.specifier
        assert specifier.operator == "==", f"{lock.name}: {line} is not pinned"
        hashes = [o for o in options if o.startswith("hash=sha256:")]
        found[canonicalize_name(parsed.name)] = (Version(specifier.version), len(hashes))
    return found


def declared(extras: tuple[str, ...]) -> Iterator[tuple[str, Requirement]]:
    """(where, requirement) for the base dependencies and each extra's, troupe[...] expanded.

    Only those whose environment marker holds here, as pip-compile resolved them.
    """
    seen: set[str] = set()

    def walk(where: str, lines: list[str]) -> Iterator[tuple[str, Requirement]]:
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(
                    {"extra": ""}):
                continue
            if canonicalize_name(requirement.name) == "troupe":
                for extra in sorted(requirement.extras - seen):
                    seen.add(extra)
                    yield from walk(f"[{extra}]", OPTIONAL[extra])
            else:
                yield where, requirement

    yield from walk("dependencies", PYPROJECT["project"]["dependencies"])
    for extra in extras:
        if extra not in seen:
            seen.add(extra)
            yield from walk(f"[{extra}]", OPTIONAL[extra])


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_image_has_a_lock_compiled_for_its_extra_and_s3(image: str) -> None:
    lock = IMAGES[image]
    assert lock.is_file(), f"{image} installs {lock.name}, which does not exist: `make lock`"
    command = compiled_with(lock)
    assert "--generate-hashes" in command
    assert f"--output-file=requirements/{lock.name}" in command
    assert set(extras_of(lock)) == {lock.stem, ALWAYS}, (
        f"{lock.name} was compiled for {extras_of(lock)}, not [{lock.stem}] with [{ALWAYS}]")
    assert set(extras_of(lock)) <= set(OPTIONAL)


def test_every_lock_is_one_an_image_installs() -> None:
    assert sorted(LOCKS.glob("*.txt")) == LOCK_FILES


@pytest.mark.parametrize("lock", LOCK_FILES, ids=lambda p: p.name)
def test_a_lock_pins_every_declared_dependency_with_hashes_within_its_range(lock: Path) -> None:
    pinned = pins(lock)
    assert pinned and all(count >= 1 for _, count in pinned.values())
    stale = []
    for where, requirement in declared(extras_of(lock)):
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            stale.append(f"{requirement} ({where}) is not pinned")
            continue
        version, _ = pinned[name]
        if not requirement.specifier.contains(version, prereleases=True):
            stale.append(f"{name}=={version} is outside {requirement} ({where})")
    assert not stale, f"{lock.name} is stale, run `make lock`: " + "; ".join(stale)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_each_function_imports_with_only_what_its_lock_installs(image: str) -> None:
    folder = REPO / "functions" / str(build_args(image)["FUNCTION"])
    allowed = [*pins(IMAGES[image]), "troupe"]
    result = subprocess.run([sys.executable, str(ONLY_LOCKED), str(folder), *allowed],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (
        f"{image}'s image, with {IMAGES[image].name} alone, would not start: "
        f"{result.stderr.strip().splitlines()[-1:]}")


def test_the_locks_carry_no_machine_paths_or_indexes() -> None:
    for lock in LOCK_FILES:
        text = lock.read_text()
        assert "--index-url" not in text and "--find-links" not in text
        assert "file://" not in text and "/opt/" not in text


@pytest.mark.parametrize(("name", "first_fixed", "advisory"), [
    # CVE-2025-54886: Card.get_model fell back to joblib (code execution); fixed in 0.13.0.
    ("skops", "0.13.0", "CVE-2025-54886"),
    # CVE-2026-25645 (extract_zipped_paths), after CVE-2024-47081 (.netrc) in 2.32.4.
    ("requests", "2.33.0", "CVE-2026-25645"),
])
def test_lower_bounds_are_past_published_advisories(
    name: str, first_fixed: str, advisory: str
) -> None:
    optional = PYPROJECT["project"]["optional-dependencies"]
    everywhere = [*PYPROJECT["project"]["dependencies"], *(r for e in optional.values()
                                                          for r in e)]
    ranges = [Requirement(r) for r in everywhere if Requirement(r).name == name]
    ranges += [Requirement(line) for line in (REPO / "requirements.txt").read_text().splitlines()
               if line and not line.startswith("#") and Requirement(line).name == name]
    assert ranges
    fixed = Version(first_fixed)
    last_vulnerable = Version(f"{fixed.major}.{fixed.minor - 1}.99")
    for requirement in ranges:
        lower_bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert lower_bounds and min(lower_bounds) >= fixed, (
            f"{requirement} admits versions affected by {advisory}")
        assert not requirement.specifier.contains(last_vulnerable)
