"""Import a function's modules straight from `functions/<folder>/`, as tests need them.

Every function folder has a `handler.py` and a `main.py`, so the plain names would clash in
one test process: each file is imported under a name unique to its folder.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def load_function(folder: str, module: str = "handler") -> ModuleType:
    """functions/<folder>/<module>.py, imported once per test process and then shared.

    The folder goes on `sys.path` (as `gunicorn --chdir` puts it) so that the module's own
    siblings import, and the module is registered in `sys.modules` before it runs so that
    its dataclasses can resolve their type hints.
    """
    unique = f"_function_{folder}_{module}"
    if unique not in sys.modules:
        path = FUNCTIONS / folder
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
        spec = importlib.util.spec_from_file_location(unique, path / f"{module}.py")
        assert spec is not None and spec.loader is not None
        sys.modules[unique] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[unique])
    return sys.modules[unique]


def load_fresh(folder: str, module: str, *, name: str) -> ModuleType:
    """functions/<folder>/<module>.py run anew on each call and not registered: for a
    main.py, which builds its app from the environment while it is imported."""
    spec = importlib.util.spec_from_file_location(name, FUNCTIONS / folder / f"{module}.py")
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return fresh


def load_main(folder: str) -> ModuleType:
    """functions/<folder>/main.py, run anew with its own `handler` as the one it imports.

    main.py says `from handler import ...`, which gunicorn --chdir resolves to its folder's
    handler.py; in a test process several folders' handlers coexist, so the right one is put
    under that plain name while main.py runs, and the name is given back afterwards. The app
    is built from the environment, as gunicorn builds it.
    """
    previous = sys.modules.get("handler")
    sys.modules["handler"] = load_function(folder)
    try:
        return load_fresh(folder, "main", name=f"_function_{folder}_main")
    finally:
        if previous is None:
            del sys.modules["handler"]
        else:
            sys.modules["handler"] = previous
