"""The project's manifests applied to the control plane, as `kubectl apply -f` would at
`troupe up`: in kubectl's numbered order, through the same admission as the API, onto
what the last run kept (three-way, apply.py), pruning what came from a manifest that is
gone, and making the namespaces and run Secrets a cluster's operator would have made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from troupe.local.controlplane.admission import admit
from troupe.local.controlplane.apply import applied_onto, as_applied, from_manifest
from troupe.local.controlplane.kinds import (
    BROKER,
    CONFIGMAP,
    CONFIGURATION,
    EVENTPOLICY,
    EVENTTYPE,
    KAFKASOURCE,
    NAMESPACE,
    NETWORKPOLICY,
    PINGSOURCE,
    REVISION,
    ROLE,
    ROLEBINDING,
    ROUTE,
    SECRET,
    SERVICE,
    SERVICEACCOUNT,
    TRIGGER,
    Kind,
    Obj,
)
from troupe.local.controlplane.manifests import ManifestError, Project
from troupe.local.controlplane.objects import AlreadyExists, NotFound, ObjectStore
from troupe.local.controlplane.status import ApiError
from troupe.local.errors import InvalidFieldError
from troupe.local.run_secrets import run_secret

# Apply order, as kubectl's numbered files have it: namespaces, RBAC and configuration
# first, then what refers to them, so that references (a Service's ConfigMap, a Trigger's
# subscriber, a source's sink) resolve at once.
APPLY_ORDER = (NAMESPACE, SERVICEACCOUNT, ROLE, ROLEBINDING, NETWORKPOLICY, CONFIGMAP, SECRET,
                BROKER, EVENTPOLICY, SERVICE, TRIGGER, EVENTTYPE, PINGSOURCE, KAFKASOURCE)
# Kept Revisions come back before their Services, so that traffic finds what it names.
RESTORE_ORDER = (*APPLY_ORDER[:9], REVISION, CONFIGURATION, ROUTE, *APPLY_ORDER[9:])


class ProjectApplier:
    def __init__(self, objects: ObjectStore, project_root: Path,
                 say: Callable[[str], None]) -> None:
        self.objects = objects
        self._project_root = project_root.resolve()
        self._say = say

    def apply(self, project: Project) -> None:
        """Every manifest of the project, in APPLY_ORDER, then prune what came from a
        manifest that is gone; a refused manifest raises ManifestError naming its field."""
        applied: set[tuple[str, str, str]] = set()
        for kind in APPLY_ORDER:
            for manifest in (m for m in project.resources if m.kind == kind):
                metadata = manifest.obj["metadata"]
                applied.add((kind.plural, metadata.get("namespace", ""), metadata["name"]))
                resource = f"{kind.kind}/{metadata['name']}"
                try:
                    self._apply_one(kind, manifest.obj, self._relative(manifest.file))
                except InvalidFieldError as error:
                    raise ManifestError(manifest.file, resource, error.field,
                                        error.problem) from None
                except ApiError as error:  # refused by admission: name every field
                    causes = error.details.get("causes") or [{"field": "-", "message": ""}]
                    raise ManifestError(manifest.file, resource, causes[0]["field"], "; ".join(
                        [causes[0]["message"], *(f"{c['field']}: {c['message']}"
                                                 for c in causes[1:])])) from None
                if kind == SERVICE:
                    self._check_service(manifest.file, resource, manifest.obj)
        for kind in reversed(APPLY_ORDER):  # like `kubectl apply --prune`
            for obj in self.objects.list(kind):
                metadata = obj["metadata"]
                if from_manifest(obj) and (kind.plural, metadata.get("namespace", ""),
                                           metadata["name"]) not in applied:
                    self.objects.delete(kind, metadata.get("namespace", ""), metadata["name"])
                    self._say(f"{kind.kind}/{metadata['name']} is no longer in the manifests: "
                              "deleted")

    def ensure_run_secrets(self, namespaces: set[str]) -> None:
        """The Secrets a cluster's operator would create by hand (run_secrets.py), made
        once where neither an earlier run nor the manifests made them."""
        for namespace in sorted(namespaces):
            with contextlib.suppress(AlreadyExists):
                self.objects.create(SECRET, run_secret(namespace))

    def ensure_namespaces(self, names: set[str]) -> None:
        """The namespaces the runtime and its manifests use exist, as `default` does on a
        cluster: an object cannot be created in a namespace that does not."""
        for name in sorted(names):
            with contextlib.suppress(AlreadyExists):
                self.objects.create(NAMESPACE, {
                    "metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"}})

    def _apply_one(self, kind: Kind, manifest: Obj, file: str) -> None:
        """Apply one manifest as kubectl would, through the same admission as the API."""
        metadata = manifest["metadata"]
        version = str(manifest.get("apiVersion", "")).rpartition("/")[2]
        try:
            live = self.objects.get(kind, metadata.get("namespace", ""), metadata["name"])
        except NotFound:
            self.objects.create(kind, admit(kind, version, as_applied(manifest, file), None,
                                            "Strict").obj)
            return
        candidate = applied_onto(live, manifest, file)
        # Status is the controllers' to write: a manifest never sets it, and kinds without
        # one (a ServiceAccount) would be refused for the empty status the store keeps.
        candidate.pop("status", None)
        updated = admit(kind, version, candidate, live, "Strict").obj
        if {**updated, "status": None} != {**live, "status": None}:
            self.objects.replace(kind, updated)

    def _relative(self, file: Path) -> str:
        try:
            return str(file.resolve().relative_to(self._project_root))
        except ValueError:
            return str(file)

    def _check_service(self, file: Path, resource: str, obj: Obj) -> None:
        metadata = obj["metadata"]
        status = self.objects.get(SERVICE, metadata["namespace"], metadata["name"])["status"]
        for condition in status.get("conditions", []):
            message = str(condition.get("message", ""))
            # A field the runtime cannot run stops `troupe up`; a revision that fails to
            # start later is reported on its Service and Revision (and `troupe status`).
            if (condition["type"] == "ConfigurationsReady" and condition["status"] == "False"
                    and message.startswith(("spec.", "metadata."))):
                field_name, _, problem = message.partition(": ")
                raise ManifestError(file, resource, field_name, problem)
