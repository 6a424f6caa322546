"""`python -m troupe.local.dashboard.declared FUNCTIONS FOLDER...`: print, as JSON, what each
function's app declares it consumes (see declarations.py, which runs this in a child
process). Each main.py is run as gunicorn runs it: from its folder, importing its own
`handler`."""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from troupe.function import consumed_types


def declared(folder: Path) -> dict[str, Any]:
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(folder))
    os.environ["K_SERVICE"] = folder.name
    try:
        namespace = runpy.run_path(str(folder / "main.py"), run_name=f"_declared_{folder.name}")
        consumes = consumed_types(namespace["app"])
        return {"types": sorted(consumes.types or ()), "any": consumes.any}
    except Exception as error:  # one broken function must not hide the others
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        sys.path[:] = saved_path
        # The next folder has a `handler` of its own.
        for name in set(sys.modules) - saved_modules:
            module = sys.modules.get(name)
            if module is not None and str(folder) in str(getattr(module, "__file__", "")):
                del sys.modules[name]


def main(argv: list[str]) -> int:
    functions, folders = Path(argv[0]), argv[1:]
    print(json.dumps({name: declared(functions / name) for name in folders}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
