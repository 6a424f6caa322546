"""The model registry: versions v1, v2, ... with metrics, lineage and the champion.

Each model name is one JSON document, registry/<name>.json, changed only through
`Store.update_json`, so allocating a version, registering it and choosing the champion are
atomic, and concurrent writers never hand out the same version twice. Idempotency keys
(the cause event's source and id, say) map to versions inside the same document, so a
redelivered event gets the version it got the first time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .errors import InvalidNameError, NotFoundError

if TYPE_CHECKING:
    from .store import ObjectRef, Store

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    artifact_uri: str
    sha256: str
    metrics: dict[str, float]
    lineage: dict[str, Any]
    created: str  # ISO 8601, UTC

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ModelVersion:
        return cls(
            name=str(value["name"]),
            version=str(value["version"]),
            artifact_uri=str(value["artifact_uri"]),
            sha256=str(value["sha256"]),
            metrics={str(k): float(v) for k, v in value["metrics"].items()},
            lineage=dict(value["lineage"]),
            created=str(value["created"]),
        )


class ModelRegistry:
    def __init__(self, store: Store) -> None:
        self._store = store

    def reserve_version(self, name: str, *, key: str) -> str:
        """The version a registration with idempotency `key` gets: allocated now, or the
        one allocated for `key` before. Save the artifact under it, then `register`."""
        document = self._store.update_json(
            _document_key(name), lambda doc: _reserve(_ensure(doc, name), key)
        )
        return str(document["keys"][key])

    def register(
        self,
        name: str,
        *,
        artifact: ObjectRef,
        metrics: Mapping[str, float],
        lineage: Mapping[str, Any],
        key: str,
    ) -> ModelVersion:
        """Record a version (the one reserved for `key`, or the next one). Registering the
        same `key` again changes nothing and returns the version recorded the first time."""
        artifact_uri = self._store.resolve(artifact.uri)
        record = {
            "name": name,
            "artifact_uri": artifact_uri,
            "sha256": artifact.sha256,
            "metrics": {str(k): float(v) for k, v in metrics.items()},
            "lineage": dict(lineage),
        }
        json.dumps(record, allow_nan=False)  # refuse what cannot be stored before locking

        def add(doc: Any) -> Any:
            doc = _reserve(_ensure(doc, name), key)
            version = doc["keys"][key]
            if version not in doc["versions"]:
                created = datetime.now(UTC).isoformat(timespec="milliseconds")
                doc["versions"][version] = {**record, "version": version, "created": created}
            return doc

        document = self._store.update_json(_document_key(name), add)
        return ModelVersion.from_json(document["versions"][document["keys"][key]])

    def get(self, name: str, version: str) -> ModelVersion:
        record = self._document(name)["versions"].get(version)
        if record is None:
            raise NotFoundError(
                f"model {name!r} has no registered version {version!r}; "
                f"known: {', '.join(self._names(name)) or 'none'}"
            )
        return ModelVersion.from_json(record)

    def versions(self, name: str) -> list[ModelVersion]:
        """The registered versions of `name`, oldest first ([] for an unknown model)."""
        records = self._document(name)["versions"]
        return [ModelVersion.from_json(records[v]) for v in sorted(records, key=_number)]

    def champion(self, name: str) -> ModelVersion | None:
        document = self._document(name)
        version = document.get("champion")
        return ModelVersion.from_json(document["versions"][version]) if version else None

    def champion_history(self, name: str) -> list[str]:
        """The versions that were champion, in the order they became it (latest last)."""
        return [entry["version"] for entry in self._document(name).get("champions", [])]

    def set_champion(self, name: str, version: str) -> None:
        """Make `version` the champion; NotFoundError if it is not registered."""

        def crown(doc: Any) -> Any:
            doc = _ensure(doc, name)
            if version not in doc["versions"]:
                raise NotFoundError(
                    f"cannot make {version!r} the champion of model {name!r}: it is not "
                    "registered; register it first"
                )
            if doc.get("champion") != version:
                doc["champion"] = version
                now = datetime.now(UTC).isoformat(timespec="milliseconds")
                doc.setdefault("champions", []).append({"version": version, "since": now})
            return doc

        self._store.update_json(_document_key(name), crown)

    def _document(self, name: str) -> dict[str, Any]:
        document: dict[str, Any] = _ensure(self._store.read_json(_document_key(name), None), name)
        return document

    def _names(self, name: str) -> list[str]:
        return sorted(self._document(name)["versions"], key=_number)


def check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidNameError(
            f"{what} {name!r} cannot be used: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


def _document_key(name: str) -> str:
    return f"registry/{check_name('model name', name)}.json"


def _ensure(document: Any, name: str) -> dict[str, Any]:
    if document is None:
        return {"name": name, "next": 1, "keys": {}, "versions": {}, "champion": None}
    return dict(document)


def _reserve(document: dict[str, Any], key: str) -> dict[str, Any]:
    if not isinstance(key, str) or not key:
        raise InvalidNameError("an idempotency key is a non-empty string")
    if key not in document["keys"]:
        document["keys"][key] = f"v{document['next']}"
        document["next"] += 1
    return document


def _number(version: str) -> tuple[int, str]:
    digits = version[1:]
    return (int(digits), version) if version.startswith("v") and digits.isdigit() else (0, version)
