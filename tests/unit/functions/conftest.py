"""Fixtures for the handler tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from troupe.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty file:// store of the test's own."""
    return Store(f"file://{tmp_path}/store")
