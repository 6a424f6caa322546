"""Brokers and Triggers from a folder of multi-document YAML manifests; other kinds are skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from troupe.local.eventing.broker.errors import InvalidResourceError

_GROUP = "eventing.knative.dev/"


def load_eventing(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(brokers, triggers) as resource dicts, from every *.yaml / *.yml in file-name order."""
    brokers: list[dict[str, Any]] = []
    triggers: list[dict[str, Any]] = []
    files = sorted([*Path(folder).glob("*.yaml"), *Path(folder).glob("*.yml")])
    for path in files:
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as error:
            raise InvalidResourceError(str(path), "-", f"is not valid YAML: {error}") from None
        for document in documents:
            if not isinstance(document, dict):
                continue
            api_version = str(document.get("apiVersion", ""))
            if not api_version.startswith(_GROUP):
                continue
            if document.get("kind") == "Broker":
                brokers.append(document)
            elif document.get("kind") == "Trigger":
                triggers.append(document)
    return brokers, triggers
