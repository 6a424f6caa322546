"""What the template preloads: every import of the project's functions, deferred ones too,
followed into the troupe modules they reach, without the functions' own modules and
without the runtime's side of troupe."""

from __future__ import annotations

from pathlib import Path

from troupe.local.serving.prewarm import modules_to_preload

MAIN = '''
from __future__ import annotations
import json
from helper import shout
from troupe.ml import catalog

def later():
    import colorsys  # deferred: preloaded all the same
    from .sibling import thing  # relative: a module of this folder
'''


def _project(root: Path) -> Path:
    (root / "functions" / "alpha").mkdir(parents=True)
    (root / "functions" / "alpha" / "main.py").write_text(MAIN)
    (root / "functions" / "alpha" / "helper.py").write_text("import wave\nshout = str\n")
    (root / "functions" / "beta").mkdir()
    (root / "functions" / "beta" / "main.py").write_text("import troupe.local.runtime\n")
    (root / "functions" / "gamma").mkdir()  # broken: its instance will say so, not up
    (root / "functions" / "gamma" / "main.py").write_text("import csv\ndef (:\n")
    (root / "functions" / "notes").mkdir()  # no main.py: not a function
    (root / "functions" / "notes" / "draft.py").write_text("import this\n")
    return root


def test_the_functions_imports_are_preloaded_deferred_ones_too(tmp_path: Path) -> None:
    preload = dict(modules_to_preload(_project(tmp_path)))

    assert preload["json"] == [] and preload["colorsys"] == [] and preload["wave"] == []
    assert preload["troupe.ml"] == ["catalog"]
    assert not {"helper", "sibling", "__future__", "this", "csv"} & set(preload)


def test_troupe_modules_are_followed_to_what_they_defer(tmp_path: Path) -> None:
    preload = dict(modules_to_preload(_project(tmp_path)))

    # catalog reads frames with dataset, imported on first use; dataset imports pandas.
    assert "troupe.ml.dataset" in preload and "pandas" in preload
    assert not [name for name in preload if name.startswith("troupe.local")]
