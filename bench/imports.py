"""Import time of every function, so that a heavy import added at module load shows.

What is measured: `python -X importtime -c "import main"` in each function's folder, with
the environment `troupe up` gives it, summed over every module imported (the "self"
column, so nothing counts twice). That is what a fresh process of the function pays
before it can answer, where no template has imported it already: a Knative pod, or
`troupe up --no-prewarm`. The predictor is measured with no model configured, as its
manifest ships; its model loads at start-up, after the imports.

Baseline: the same measurement of `import troupe.function`, the contract every function
imports (Flask, the CloudEvents codecs, the store, the metrics), in the same run. The
ratio is what a function adds to it. Each figure is the median of RUNS measurements, the
functions and the baseline taken in turn, so that machine noise falls on all alike.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from bench.report import Figure

NAME = "imports"
RUNS = 7
REPO = Path(__file__).resolve().parents[1]
# One line per imported module: "import time: <self us> | <cumulative us> | <name>".
_LINE: Final = re.compile(r"^import time:\s+(\d+)\s+\|\s+\d+\s+\|")


def import_seconds(statement: str, folder: Path, env: dict[str, str]) -> float:
    """Seconds `statement` spends importing in a fresh interpreter, per -X importtime."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{statement!r} failed in {folder.name}: {done.stderr[-800:]}")
    micros = [int(m.group(1)) for line in done.stderr.splitlines() if (m := _LINE.match(line))]
    return sum(micros) / 1e6


def functions() -> list[str]:
    return sorted(p.parent.name for p in (REPO / "functions").glob("*/main.py"))


def measure(runs: int = RUNS) -> tuple[dict[str, float], float]:
    """Median import seconds per function, and of the baseline."""
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as store:
        base_env = {**os.environ, "PYTHONPATH": str(REPO / "shared"),
                    "TROUPE_STORE_URL": Path(store).as_uri()}
        samples: dict[str, list[float]] = {name: [] for name in functions()}
        floor: list[float] = []
        for _ in range(runs):
            floor.append(import_seconds("import troupe.function", REPO, base_env))
            for name in samples:
                env = {**base_env, "K_SERVICE": name}
                samples[name].append(import_seconds("import main", REPO / "functions" / name,
                                                    env))
    return ({name: statistics.median(s) for name, s in samples.items()},
            statistics.median(floor))


def run() -> list[Figure]:
    medians, floor = measure()
    baseline = f"import troupe.function (median of {RUNS})"
    return [Figure(NAME, f"import time, {name}", seconds * 1000, "ms", baseline, floor * 1000)
            for name, seconds in medians.items()]


if __name__ == "__main__":
    from bench.report import render

    print(render(run()))
