"""The control plane's object store: Kubernetes object bookkeeping.

It assigns uid, resourceVersion, generation and creationTimestamp as the API server does,
and tells controllers about every change so that changes take effect live. It lives in
memory; `snapshot` and `restore` let the runtime keep it on disk across restarts
(saved_objects.py).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Literal

from troupe.local.controlplane.resources import Kind, Obj, validate
from troupe.local.errors import LocalError

Change = Literal["ADDED", "MODIFIED", "DELETED"]
Listener = Callable[[Change, Kind, Obj], None]
Validator = Callable[[Obj], None]  # raises InvalidFieldError


class NotFound(LocalError, KeyError):
    pass


class AlreadyExists(LocalError, ValueError):
    pass


class Conflict(LocalError, ValueError):
    pass


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ObjectStore:
    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._kinds: dict[tuple[str, str, str], Kind] = {}
        self._lock = threading.RLock()
        self._version = 0
        self._listeners: list[Listener] = []
        self._validators: dict[str, list[Validator]] = {}

    def add_validator(self, kind: Kind, validator: Validator) -> None:
        """A controller's own checks, run on create and update after the common ones."""
        self._validators.setdefault(kind.plural, []).append(validator)

    def _validate(self, kind: Kind, obj: Obj) -> None:
        validate(kind, obj)
        for validator in self._validators.get(kind.plural, []):
            validator(obj)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

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
        taken: dict[tuple[str, str, str], tuple[Kind, Obj]] = {}
        for kind, obj in objects:
            obj = copy.deepcopy(obj)
            self._validate(kind, obj)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            obj["status"] = {}
            metadata = obj["metadata"]
            taken[(kind.plural, metadata["namespace"], metadata["name"])] = (kind, obj)
        with self._lock:
            for key, (kind, obj) in taken.items():
                self._objects[key], self._kinds[key] = obj, kind
            self._version = max(self._version, version)
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

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        with self._lock:
            obj = self._objects.get((kind.plural, namespace, name))
            if obj is None:
                raise NotFound(name)
            return copy.deepcopy(obj)

    def create(self, kind: Kind, obj: Obj) -> Obj:
        self._validate(kind, obj)
        with self._lock:
            metadata = obj["metadata"]
            key = (kind.plural, metadata["namespace"], metadata["name"])
            if key in self._objects:
                raise AlreadyExists(metadata["name"])
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            metadata = obj["metadata"]
            metadata.update(uid=str(uuid.uuid4()), generation=1,
                            creationTimestamp=now_iso(), resourceVersion=self._next_version())
            obj.setdefault("status", {})
            self._objects[key], self._kinds[key] = obj, kind
            stored = copy.deepcopy(obj)
        self._notify("ADDED", kind, stored)
        return stored

    def replace(self, kind: Kind, obj: Obj) -> Obj:
        """Store a new version of an object (an update or a patch result).

        A changed spec bumps generation, as on the API server."""
        self._validate(kind, obj)
        with self._lock:
            metadata = obj["metadata"]
            key = (kind.plural, metadata["namespace"], metadata["name"])
            current = self._objects.get(key)
            if current is None:
                raise NotFound(metadata["name"])
            sent_version = metadata.get("resourceVersion")
            if sent_version and sent_version != current["metadata"]["resourceVersion"]:
                raise Conflict(metadata["name"])
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            for fixed in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                obj["metadata"][fixed] = current["metadata"][fixed]
            if obj.get("spec") != current.get("spec"):
                obj["metadata"]["generation"] = current["metadata"]["generation"] + 1
            obj["status"] = current.get("status", {})  # status changes only via update_status
            obj["metadata"]["resourceVersion"] = self._next_version()
            self._objects[key] = obj
            stored = copy.deepcopy(obj)
        self._notify("MODIFIED", kind, stored)
        return stored

    def update_status(self, kind: Kind, namespace: str, name: str, status: Obj) -> None:
        """Controllers report status here; it never reaches the listeners (no spec change)."""
        with self._lock:
            obj = self._objects.get((kind.plural, namespace, name))
            if obj is None or obj.get("status") == status:
                return
            obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = self._next_version()

    def delete(self, kind: Kind, namespace: str, name: str) -> Obj:
        with self._lock:
            key = (kind.plural, namespace, name)
            obj = self._objects.pop(key, None)
            self._kinds.pop(key, None)
            if obj is None:
                raise NotFound(name)
        self._notify("DELETED", kind, obj)
        return obj

    def _notify(self, change: Change, kind: Kind, obj: Obj) -> None:
        for listener in self._listeners:
            listener(change, kind, copy.deepcopy(obj))
