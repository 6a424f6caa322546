"""Kubernetes' garbage collector, for the objects of one store: what an object owns (its
dependents, whose ownerReferences name its uid) goes when it goes.

The three propagation policies of a DELETE: Background (the default) deletes the owner
at once and its dependents after; Foreground marks the owner with a deletionTimestamp and
the `foregroundDeletion` finalizer, deletes its dependents, then lets it go; Orphan
removes the owner reference from its dependents and leaves them. A Service owns its
Configuration and Route, a Configuration its Revisions, as in Knative.
"""

from __future__ import annotations

import contextlib
from typing import Final

from troupe.local.controlplane.events import Change
from troupe.local.controlplane.kinds import SERVED_KINDS, Kind, Obj
from troupe.local.controlplane.objects import Conflict, NotFound, ObjectStore

FOREGROUND: Final = "foregroundDeletion"


def dependents(objects: ObjectStore, uid: str) -> list[tuple[Kind, Obj]]:
    return [(kind, obj) for kind in SERVED_KINDS for obj in objects.list(kind)
            if any(ref.get("uid") == uid
                   for ref in obj["metadata"].get("ownerReferences") or [])]


def orphan(objects: ObjectStore, uid: str) -> None:
    """Take the owner reference to `uid` off every dependent, which then stays."""
    for kind, obj in dependents(objects, uid):
        refs = [r for r in obj["metadata"]["ownerReferences"] if r.get("uid") != uid]
        obj["metadata"]["ownerReferences"] = refs
        if not refs:
            del obj["metadata"]["ownerReferences"]
        with contextlib.suppress(NotFound, Conflict):  # gone or changed meanwhile
            objects.replace(kind, obj)


class GarbageCollector:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects
        objects.subscribe(self._on_change)

    def _on_change(self, change: Change, kind: Kind, obj: Obj) -> None:
        metadata = obj["metadata"]
        if change == "DELETED":
            self._delete_dependents(metadata["uid"])
            for ref in metadata.get("ownerReferences") or []:
                self._finish_foreground(ref.get("uid"))
        elif metadata.get("deletionTimestamp") and FOREGROUND in (metadata.get("finalizers")
                                                                   or []):
            self._delete_dependents(metadata["uid"])
            self._finish_foreground(metadata["uid"])

    def _delete_dependents(self, uid: str) -> None:
        for kind, obj in dependents(self._objects, uid):
            metadata = obj["metadata"]
            with contextlib.suppress(NotFound):
                self._objects.delete(kind, metadata.get("namespace", ""), metadata["name"])

    def _finish_foreground(self, uid: str | None) -> None:
        """Let an owner in foreground deletion go once none of its dependents is left."""
        if uid is None or dependents(self._objects, uid):
            return
        for kind in SERVED_KINDS:
            for obj in self._objects.list(kind):
                metadata = obj["metadata"]
                if metadata["uid"] == uid and FOREGROUND in (metadata.get("finalizers") or []):
                    metadata["finalizers"] = [f for f in metadata["finalizers"]
                                              if f != FOREGROUND]
                    with contextlib.suppress(NotFound, Conflict):
                        self._objects.replace(kind, obj)
                    return
