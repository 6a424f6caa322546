"""Fixtures shared by every test folder. Folder-specific fixtures live in their own conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The team's handbook folder beside the repository: conformance data and the validator.
HANDBOOK = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def conformance() -> Path:
    path = HANDBOOK / "conformance"
    if not path.is_dir():
        pytest.skip("../shared/conformance is absent: the CloudEvents conformance data lives there")
    return path
