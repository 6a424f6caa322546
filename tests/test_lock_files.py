"""The lock files pin, with hashes, everything each function image installs, and agree
with the ranges pyproject.toml declares; the ranges stay past published advisories."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Every image reads an s3:// store, so every lock includes the s3 extra.
ALWAYS: tuple[str, ...] = ("s3",)


def image_extras() -> dict[str, tuple[str, ...]]:
    """Function -> the extras its Dockerfile installs troupe with."""
    found = {}
    for dockerfile in sorted((REPO / "functions").glob("*/Dockerfile")):
        match = re.search(r"troupe-\*\.whl\)\[([a-z0-9,]+)\]", dockerfile.read_text())
        assert match, f"{dockerfile}: no troupe[extras] install found"
        found[dockerfile.parent.name] = tuple(sorted(match.group(1).split(",")))
    return found


def lock_for(extras: tuple[str, ...]) -> Path:
    """requirements/<extra>.txt: named after the one extra besides s3 (s3.txt for none)."""
    (name,) = [e for e in extras if e not in ALWAYS] or ["s3"]
    return LOCKS / f"{name}.txt"


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


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    optional = PYPROJECT["project"]["optional-dependencies"]
    names = [*PYPROJECT["project"]["dependencies"], *(r for e in extras for r in optional[e])]
    return [Requirement(r) for r in names]


IMAGES = image_extras()
LOCK_FILES = sorted({lock_for(extras) for extras in IMAGES.values()})


@pytest.mark.parametrize("function", sorted(IMAGES))
def test_every_image_has_a_lock_compiled_for_its_extras(function: str) -> None:
    extras = IMAGES[function]
    lock = lock_for(extras)
    assert lock.is_file(), f"{function} installs troupe[{','.join(extras)}]: no {lock.name}"
    header = lock.read_text().split("\n\n", 1)[0]
    command = next(line for line in header.splitlines() if "pip-compile" in line
                   and "--output-file" in line)
    assert "--generate-hashes" in command
    assert sorted(re.findall(r"--extra=([a-z0-9]+)", command)) == sorted(extras)
    assert f"--output-file=requirements/{lock.name}" in command


@pytest.mark.parametrize("lock", LOCK_FILES, ids=lambda p: p.name)
def test_a_lock_pins_every_package_with_hashes_within_the_declared_ranges(lock: Path) -> None:
    pinned = pins(lock)
    assert pinned and all(count >= 1 for _, count in pinned.values())
    (extras,) = {e for e in IMAGES.values() if lock_for(e) == lock}
    for requirement in declared(extras):
        version, _ = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.name} pins {requirement.name}=={version}, outside {requirement}: "
            "run `make lock`")


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
