"""The control plane's object store: Kubernetes object bookkeeping.

It assigns uid, resourceVersion, generation and creationTimestamp as the API server does,
and tells controllers about every change so that changes take effect live. It keeps the
last changes, status ones included, as numbered events, so that a watch can resume from a
resourceVersion (events.py). It lives in memory; `snapshot` and `restore` let the runtime
keep it on disk across restarts (saved_objects.py).
"""

from __future__ import annotations

import builtins
import copy
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from troupe.local.controlplane.events import Change, EventLog
from troupe.local.controlplane.kinds import Kind, Obj
from troupe.local.controlplane.resources import validate
from troupe.local.errors import LocalError

Listener = Callable[[Change, Kind, Obj], None]
Validator = Callable[[Obj], None]  # raises InvalidFieldError
Key = tuple[str, str, str]  # (plural, namespace or "", name)


class NotFound(LocalError, KeyError):
    pass


class AlreadyExists(LocalError, ValueError):
    pass


class Conflict(LocalError, ValueError):
    """The object changed since the version the caller sent, or a precondition failed."""

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(name)
        self.why = why


@dataclass(frozen=True)
class Preconditions:
    """A delete's `preconditions`: it goes ahead only if the object still has these."""

    uid: str | None = None
    resource_version: str | None = None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_of(kind: Kind, metadata: Obj) -> Key:
    return (kind.plural, str(metadata.get("namespace") or "") if kind.namespaced else "",
            str(metadata["name"]))


class ObjectStore:
    def __init__(self, history: int = 4096) -> None:
        self._objects: dict[Key, Obj] = {}
        self._kinds: dict[Key, Kind] = {}
        self._lock = threading.RLock()
        self._version = 0
        self._listeners: list[Listener] = []
        self._validators: dict[str, list[Validator]] = {}
        self.events = EventLog(self._lock, history)

    def add_validator(self, kind: Kind, validator: Validator) -> None:
        """A controller's own checks, run on create and update after the common ones."""
        self._validators.setdefault(kind.plural, []).append(validator)

    def validate(self, kind: Kind, obj: Obj) -> None:
        validate(kind, obj)
        for validator in self._validators.get(kind.plural, []):
            validator(obj)

    def subscribe(self, listener: Listener) -> None:
        """Hear every change of spec or metadata (not of status, which controllers write)."""
        self._listeners.append(listener)

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def snapshot(self) -> tuple[int, list[tuple[Kind, Obj]]]:
        """The resourceVersion counter and every object, consistent with each other."""
        with self._lock:
            return self._version, [(self._kinds[key], copy.deepcopy(obj))
                                   for key, obj in sorted(self._objects.items())]

    def restore(self, version: int, objects: Iterable[tuple[Kind, Obj]],
                order: Iterable[Kind]) -> None:
        """Take back objects saved earlier, keeping their uid, generation and version.

        Every object is checked first and nothing is taken when one fails, so a bad file
        changes nothing. Status is dropped: the controllers work it out again. Listeners
        hear ADDED kind by kind in `order`, so a Service's Revisions are there before it.
        """
        taken: dict[Key, tuple[Kind, Obj]] = {}
        for kind, obj in objects:
            obj = copy.deepcopy(obj)
            self.validate(kind, obj)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            obj["status"] = {}
            taken[key_of(kind, obj["metadata"])] = (kind, obj)
        with self._lock:
            for key, (kind, obj) in taken.items():
                self._objects[key], self._kinds[key] = obj, kind
            self._version = max(self._version, version)
            # Nobody watched before this start: a watch may resume only from here on.
            self.events.reset(self._version)
        for kind in order:
            for (plural, _, _), (_, obj) in sorted(taken.items()):
                if plural == kind.plural:
                    self._notify("ADDED", kind, obj)

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def list(self, kind: Kind, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(obj) for (plural, ns, _), obj in sorted(self._objects.items())
                    if plural == kind.plural and (namespace is None or ns == namespace)]

    def list_at_version(self, kind: Kind, namespace: str | None = None
                        ) -> tuple[builtins.list[Obj], int]:
        """The objects and the resourceVersion they are current at, for list-then-watch."""
        with self._lock:
            return self.list(kind, namespace), self._version

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        with self._lock:
            obj = self._objects.get((kind.plural, namespace if kind.namespaced else "", name))
            if obj is None:
                raise NotFound(name)
            return copy.deepcopy(obj)

    def create(self, kind: Kind, obj: Obj, *, dry_run: bool = False) -> Obj:
        self.validate(kind, obj)
        with self._lock:
            key = key_of(kind, obj["metadata"])
            if key in self._objects:
                raise AlreadyExists(key[2])
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            metadata = obj["metadata"]
            for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                metadata.pop(system_field, None)
            metadata.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=now_iso())
            if kind.group:  # custom resources carry status; Kubernetes' own kinds here don't
                obj.setdefault("status", {})
            if dry_run:
                metadata["resourceVersion"] = ""
                return obj
            metadata["resourceVersion"] = self._next_version()
            self._objects[key], self._kinds[key] = obj, kind
            stored = copy.deepcopy(obj)
            self.events.record(self._version, "ADDED", kind, stored, None)
        self._notify("ADDED", kind, stored)
        return stored

    def replace(self, kind: Kind, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new version of an object (an update or a patch result).

        A changed spec bumps generation, as on the API server. An object being deleted
        goes once its last finalizer is removed."""
        self.validate(kind, obj)
        with self._lock:
            key = key_of(kind, obj["metadata"])
            current = self._objects.get(key)
            if current is None:
                raise NotFound(key[2])
            sent_version = obj["metadata"].get("resourceVersion")
            if sent_version and sent_version != current["metadata"]["resourceVersion"]:
                raise Conflict(key[2])
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            for fixed in ("uid", "creationTimestamp", "generation", "namespace", "name",
                          "deletionTimestamp", "deletionGracePeriodSeconds"):
                if fixed in current["metadata"]:
                    obj["metadata"][fixed] = current["metadata"][fixed]
                else:
                    obj["metadata"].pop(fixed, None)
            if obj.get("spec") != current.get("spec"):
                obj["metadata"]["generation"] = current["metadata"]["generation"] + 1
            if "status" in current:  # status changes only via update_status
                obj["status"] = current["status"]
            if dry_run:
                return obj
            change: Change = "MODIFIED"
            if "deletionTimestamp" in obj["metadata"] and not obj["metadata"].get("finalizers"):
                change, stored = "DELETED", self._remove(kind, key, obj)
            else:
                obj["metadata"]["resourceVersion"] = self._next_version()
                self._objects[key] = obj
                stored = copy.deepcopy(obj)
                self.events.record(self._version, "MODIFIED", kind, stored, current)
        self._notify(change, kind, stored)
        return stored

    def update_status(self, kind: Kind, namespace: str, name: str, status: Obj) -> None:
        """Controllers report status here. Watches see it; controllers' listeners do not,
        since no spec changed and a controller must not wake itself with its own report."""
        with self._lock:
            key = (kind.plural, namespace if kind.namespaced else "", name)
            current = self._objects.get(key)
            if current is None or current.get("status") == status:
                return
            obj = {**current, "status": copy.deepcopy(status),
                   "metadata": {**current["metadata"], "resourceVersion": self._next_version()}}
            self._objects[key] = obj
            self.events.record(self._version, "MODIFIED", kind, copy.deepcopy(obj), current)

    def delete(self, kind: Kind, namespace: str, name: str, *,
               preconditions: Preconditions = Preconditions(), dry_run: bool = False,
               finalizers: Iterable[str] = ()) -> tuple[Obj, bool]:
        """Delete an object, or mark it deleted while finalizers remain.

        Returns the object and whether it is gone; `finalizers` are added (as foreground
        deletion adds its own) before the object is marked."""
        with self._lock:
            key = (kind.plural, namespace if kind.namespaced else "", name)
            current = self._objects.get(key)
            if current is None:
                raise NotFound(name)
            metadata = current["metadata"]
            if preconditions.uid is not None and preconditions.uid != metadata["uid"]:
                raise Conflict(name, f"Precondition failed: UID in precondition: "
                               f"{preconditions.uid}, UID in object meta: {metadata['uid']}")
            if (preconditions.resource_version is not None
                    and preconditions.resource_version != metadata["resourceVersion"]):
                raise Conflict(name, "Precondition failed: ResourceVersion in precondition: "
                               f"{preconditions.resource_version}, ResourceVersion in object "
                               f"meta: {metadata['resourceVersion']}")
            pending = [*metadata.get("finalizers", []),
                       *(f for f in finalizers if f not in metadata.get("finalizers", []))]
            if dry_run:
                return copy.deepcopy(current), not pending
            if "deletionTimestamp" in metadata and pending == metadata.get("finalizers"):
                return copy.deepcopy(current), False  # already being deleted
            if not pending:
                change: Change = "DELETED"
                stored = self._remove(kind, key, current)
            else:
                change = "MODIFIED"
                obj = copy.deepcopy(current)
                obj["metadata"].update(deletionTimestamp=metadata.get("deletionTimestamp")
                                       or now_iso(), deletionGracePeriodSeconds=0,
                                       finalizers=pending, resourceVersion=self._next_version())
                self._objects[key] = obj
                stored = copy.deepcopy(obj)
                self.events.record(self._version, "MODIFIED", kind, stored, current)
        self._notify(change, kind, stored)
        return stored, change == "DELETED"

    def _remove(self, kind: Kind, key: Key, obj: Obj) -> Obj:
        """Drop the object; the caller holds the lock. DELETED carries a new version."""
        previous = self._objects.pop(key)
        self._kinds.pop(key, None)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_version()
        self.events.record(self._version, "DELETED", kind, gone, previous)
        return gone

    def _notify(self, change: Change, kind: Kind, obj: Obj) -> None:
        for listener in self._listeners:
            listener(change, kind, copy.deepcopy(obj))
