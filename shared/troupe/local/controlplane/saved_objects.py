"""The control plane's objects on disk, so that `troupe down` and `troupe up` keep them.

A Knative cluster keeps its objects in etcd across restarts of any component: the
Services as the deployer patched them, their Revisions, a user's own Triggers. The local
runtime keeps them in one JSON file under the project's `.troupe/`. The file is rewritten
whole after every change, through a temporary file, fsync and rename, so that a crash
leaves either the old file or the new one and never half of one.

A file that cannot be read back (truncated, edited by hand, written by another format)
is refused as a whole with a message naming it and `--fresh`: restoring part of a
control plane would leave Triggers pointing at Services that are not there.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from troupe.local.controlplane.kinds import Kind, Obj, kind_by_plural
from troupe.local.errors import LocalError

# Bumped whenever the layout below changes; an older file is refused, never guessed at.
STATE_FORMAT: Final = 1
STATE_FILE_NAME: Final = "objects.json"


class SavedStateError(LocalError, ValueError):
    """A state file that cannot be restored; the message names it and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}. Nothing was changed. Start from nothing with "
            "`troupe up --fresh` (it removes this file and the store), or move the file away."
        )
        self.path = path


@dataclass(frozen=True)
class SavedObjects:
    resource_version: int
    objects: tuple[tuple[Kind, Obj], ...]


def read_saved_objects(path: Path, kinds: tuple[Kind, ...]) -> SavedObjects | None:
    """The objects saved at `path`, or None when there is no file (a first start)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise SavedStateError(path, f"cannot be read ({error})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SavedStateError(path, f"is not complete JSON ({error.msg} at line "
                                    f"{error.lineno}); it may have been cut short") from None
    if not isinstance(document, dict) or "format" not in document:
        raise SavedStateError(path, "is not a troupe state file")
    if document["format"] != STATE_FORMAT:
        raise SavedStateError(path, f"has format {document['format']!r}; this troupe reads "
                                    f"format {STATE_FORMAT}")
    version, entries = document.get("resourceVersion"), document.get("objects")
    if not isinstance(version, int) or not isinstance(entries, list):
        raise SavedStateError(path, "lacks resourceVersion or objects")
    restored: list[tuple[Kind, Obj]] = []
    for index, entry in enumerate(entries):
        restored.append((_kind_of(path, index, entry, kinds), entry["object"]))
    return SavedObjects(version, tuple(restored))


def _kind_of(path: Path, index: int, entry: Any, kinds: tuple[Kind, ...]) -> Kind:
    if not isinstance(entry, dict) or not isinstance(entry.get("object"), dict):
        raise SavedStateError(path, f"object {index} is not a mapping")
    group, _, plural = str(entry.get("resource", "")).partition("/")
    kind = kind_by_plural(group, plural, kinds)
    metadata = entry["object"].get("metadata")
    if kind is None or not isinstance(metadata, dict) or "name" not in metadata:
        raise SavedStateError(path, f"object {index} ({entry.get('resource')}) is not a kind "
                                    "this runtime keeps")
    return kind


class SavedObjectsWriter:
    """Writes the whole object set after each change; one write at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, resource_version: int, objects: list[tuple[Kind, Obj]]) -> None:
        document = {
            "format": STATE_FORMAT,
            "resourceVersion": resource_version,
            "objects": [{"resource": f"{kind.group}/{kind.plural}", "object": obj}
                        for kind, obj in objects],
        }
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            # Owner-only: the file holds Secrets (base64, as the API keeps them).
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
