"""Kubernetes client code for Knative: read and patch Services, create and delete Triggers.

Used by the deployer (revisions and traffic) and by `troupe subscribe` (Triggers), against a
real cluster or the local runtime's control plane alike.

The kubernetes client takes about a second to import, so the names of `cluster` load on
first use (PEP 562): the deployer names the errors and traffic rules at start-up, and
imports the client with its first rollout.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from .errors import (
    ApiRequestError,
    ClusterConfigError,
    ClusterUnreachableError,
    KnativeError,
    ResourceConflictError,
    ResourceNotFoundError,
)
from .traffic import (
    CANDIDATE,
    CHAMPION,
    PREVIOUS,
    TrafficTarget,
    canary_traffic,
    champion_traffic,
    revision_name,
    serving_champion,
    tagged,
    template_revision,
    traffic_of,
    with_model,
)

if TYPE_CHECKING:
    from .cluster import LOCAL_KUBECONFIG, Cluster, load_api_client, trigger_manifest

_FROM_CLUSTER: Final = frozenset({"LOCAL_KUBECONFIG", "Cluster", "load_api_client",
                                  "trigger_manifest"})


def __getattr__(name: str) -> Any:
    if name not in _FROM_CLUSTER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".cluster", __name__), name)


__all__ = [
    "CANDIDATE", "CHAMPION", "LOCAL_KUBECONFIG", "PREVIOUS", "ApiRequestError", "Cluster",
    "ClusterConfigError", "ClusterUnreachableError", "KnativeError", "ResourceConflictError",
    "ResourceNotFoundError", "TrafficTarget", "canary_traffic", "champion_traffic",
    "load_api_client", "revision_name", "serving_champion", "tagged", "template_revision",
    "traffic_of", "trigger_manifest", "with_model",
]
