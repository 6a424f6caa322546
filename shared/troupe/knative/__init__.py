"""Kubernetes client code for Knative: read and patch Services, create and delete Triggers.

Used by the deployer (revisions and traffic) and by `troupe subscribe` (Triggers), against a
real cluster or the local runtime's control plane alike.
"""

from .cluster import LOCAL_KUBECONFIG, Cluster, load_api_client, trigger_manifest
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

__all__ = [
    "CANDIDATE", "CHAMPION", "LOCAL_KUBECONFIG", "PREVIOUS", "ApiRequestError", "Cluster",
    "ClusterConfigError", "ClusterUnreachableError", "KnativeError", "ResourceConflictError",
    "ResourceNotFoundError", "TrafficTarget", "canary_traffic", "champion_traffic",
    "load_api_client", "revision_name", "serving_champion", "tagged", "template_revision",
    "traffic_of", "trigger_manifest", "with_model",
]
