"""Every benchmark module loads: `make bench` is run rarely, so a name moved in the library
or between bench modules would otherwise show only there, after the benchmarks before it
have spent their minutes. (Loading needs only the test extra: the bench extra's baselines,
River and ciw, are imported where they are used.)"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(REPO / "bench")]))


@pytest.mark.parametrize("name", MODULES)
def test_the_benchmark_module_loads(name: str) -> None:
    importlib.import_module(f"bench.{name}")
