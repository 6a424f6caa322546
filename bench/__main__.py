"""Run every benchmark module (or those named on the command line) and print one table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench
from bench.report import Figure, render


def main(argv: list[str]) -> int:
    # An underscore module is a part of another benchmark, which runs it itself.
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__)
        if m.name != "report" and not m.name.startswith("_")
    )
    figures: list[Figure] = []
    failed = []
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except Exception as error:  # a module that cannot load fails alone, too
            failed.append(f"{name}: cannot be imported: {error!r}")
            continue
        if not hasattr(module, "run"):
            continue
        started = time.monotonic()
        print(f"running bench/{name}.py ...", file=sys.stderr, flush=True)
        try:
            figures += module.run()
        except Exception as error:  # one broken benchmark must not hide the others
            failed.append(f"{name}: {error}")
        print(f"  done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    print(render(figures))
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
