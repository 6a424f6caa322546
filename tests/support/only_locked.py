"""Import a function's main.py with only some distributions importable, as in its image.

An image holds its lock's packages and nothing else, while the test environment holds
every extra: a function that imports a package its lock lacks passes every other test
and fails only when its container starts. Run as a script, in a fresh interpreter, since
a module imported earlier would slip past the check:

    python only_locked.py FUNCTION_FOLDER DISTRIBUTION [DISTRIBUTION ...]

A module that an installed distribution provides imports only when that distribution is
among those given; the standard library and the function's own modules always do. Only
imports made while main.py loads are seen, not those deferred into a handler. Exits 0
when main.py imports; otherwise the ModuleNotFoundError names the module refused.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
from collections.abc import Sequence
from types import ModuleType

from packaging.utils import canonicalize_name


class OnlyLocked(importlib.abc.MetaPathFinder):
    """Refuses, before any other finder looks, modules of distributions not allowed."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.providers = importlib.metadata.packages_distributions()

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        providers = {canonicalize_name(d) for d in self.providers.get(top, ())}
        if providers and not providers & self.allowed:
            raise ModuleNotFoundError(
                f"{fullname} comes from {', '.join(sorted(providers))}, which the lock lacks",
                name=fullname)
        return None  # allowed: the usual finders find it


def import_main(folder: str, allowed: Sequence[str]) -> None:
    sys.meta_path.insert(0, OnlyLocked({canonicalize_name(name) for name in allowed}))
    # The function's folder in place of this script's, as `gunicorn --chdir` puts it.
    sys.path[0] = folder
    importlib.import_module("main")


if __name__ == "__main__":
    import_main(sys.argv[1], sys.argv[2:])
