"""Read a project's `knative/` and `eventing/` manifests: the very files skaffold applies.

Every kind the control plane serves is loaded: the kinds the runtime runs (Knative
Services, Brokers, Triggers, PingSources, KafkaSources) are checked field by field; the
others (Namespaces, ConfigMaps, Secrets, RBAC, EventTypes...) are kept, as a cluster keeps
them, and ConfigMaps and Secrets feed `env`/`envFrom` references. A kind it does not serve
is ignored.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from troupe.local.controlplane.kinds import CONFIGMAP, SECRET, Kind, Obj, kind_of
from troupe.local.controlplane.resources import validate
from troupe.local.conventions import DEFAULT_NAMESPACE
from troupe.local.errors import InvalidFieldError, LocalError

MANIFEST_FOLDERS = ("knative", "eventing")


class ManifestError(LocalError, ValueError):
    """A manifest the runtime cannot run. The message names the file, the resource and the field."""

    def __init__(self, file: Path, resource: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: {resource}: {field}: {problem}")
        self.file = file
        self.resource = resource
        self.field = field


@dataclass(frozen=True)
class Manifest:
    kind: Kind
    obj: Obj
    file: Path


@dataclass
class Project:
    root: Path
    resources: list[Manifest] = field(default_factory=list)
    # (namespace, name) -> data; values decoded to text for Secrets.
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


def load_project(root: Path, namespace: str = DEFAULT_NAMESPACE) -> Project:
    """Load every *.yaml/*.yml under root/knative and root/eventing, in file-name order."""
    project = Project(root=root.resolve())
    folders = [root / name for name in MANIFEST_FOLDERS if (root / name).is_dir()]
    if not folders:
        raise ManifestError(root, "-", "-", "no knative/ or eventing/ folder here; "
                            "run from the project root or pass --project DIR")
    for folder in folders:
        for path in sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]):
            _load_file(project, path, namespace)
    return project


def _load_file(project: Project, path: Path, namespace: str) -> None:
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as error:
        raise ManifestError(path, "-", "-", f"not valid YAML: {error}") from None
    for index, doc in enumerate(documents):
        if doc is None:
            continue
        where = f"document {index + 1}"
        if not isinstance(doc, dict):
            raise ManifestError(path, where, "-", "a manifest document must be a mapping")
        api_version, kind_name = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind_name, str):
            raise ManifestError(path, where, "apiVersion/kind", "both are required")
        metadata = doc.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise ManifestError(path, f"{kind_name} ({where})", "metadata", "must be a mapping")
        resource = f"{kind_name}/{metadata.get('name', f'<unnamed {where}>')}"
        kind = kind_of(api_version, kind_name)
        if kind is None:
            continue  # a kind the control plane does not serve (a Deployment...)
        if kind.namespaced:
            metadata.setdefault("namespace", namespace)
        if kind in (CONFIGMAP, SECRET):
            _load_config(project, doc, path, resource)
        try:
            validate(kind, doc)
        except InvalidFieldError as error:
            raise ManifestError(path, resource, error.field, error.problem) from None
        project.resources.append(Manifest(kind, doc, path))


def _load_config(project: Project, doc: Obj, path: Path, resource: str) -> None:
    key = (doc["metadata"]["namespace"], str(doc["metadata"].get("name")))
    values: dict[str, str] = {}
    for name, value in (doc.get("data") or {}).items():
        if doc["kind"] == "Secret":
            try:
                values[name] = base64.b64decode(str(value), validate=True).decode()
            except ValueError:
                raise ManifestError(path, resource, f"data.{name}", "is not base64") from None
        else:
            values[name] = str(value)
    for name, value in (doc.get("stringData") or {}).items():
        values[name] = str(value)
    (project.secrets if doc["kind"] == "Secret" else project.config_maps)[key] = values
