"""A Kubernetes API connection for Knative objects, on the official `kubernetes` client.

The same code talks to a real cluster, to the local runtime's control plane and to a test
stand-in: only the configuration differs. Every client failure is translated into a
`troupe.knative` error that says whether retrying can help.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from . import errors

# Where `troupe up` writes the kubeconfig of its control plane, relative to its workdir.
LOCAL_KUBECONFIG: Final = Path(".troupe") / "kubeconfig"

SERVING_GROUP: Final = "serving.knative.dev"
EVENTING_GROUP: Final = "eventing.knative.dev"
VERSION: Final = "v1"
SERVICES: Final = "services"
TRIGGERS: Final = "triggers"

_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Seconds to connect and to read; an unreachable cluster must fail fast, not hang a handler.
_TIMEOUT: Final = (3.0, 15.0)


def load_api_client(
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    *,
    local_kubeconfig: str | Path | None = LOCAL_KUBECONFIG,
) -> k8s.ApiClient:
    """An API client for, in order of preference: the kubeconfig file given; the pod's
    service account when running in a cluster; the default kubeconfig ($KUBECONFIG or
    ~/.kube/config); the local runtime's kubeconfig. `context` picks a kubeconfig context."""
    configuration = k8s.Configuration()
    if kubeconfig:
        _load_kubeconfig(Path(kubeconfig), context, configuration)
        return _client(configuration)
    if context is None:
        try:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return _client(configuration)
        except k8s_config.ConfigException:
            pass  # not in a pod: fall through to kubeconfig files
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            context=context, client_configuration=configuration
        )
        return _client(configuration)
    except (k8s_config.ConfigException, OSError) as error:
        default_error = error
    if local_kubeconfig and Path(local_kubeconfig).is_file():
        _load_kubeconfig(Path(local_kubeconfig), context, configuration)
        return _client(configuration)
    raise errors.ClusterConfigError(
        f"no Kubernetes configuration found ({default_error}): run inside a cluster, set "
        "KUBECONFIG or TROUPE_KUBECONFIG, or start the local runtime with `troupe up`"
    )


def _load_kubeconfig(path: Path, context: str | None, configuration: k8s.Configuration) -> None:
    if not path.is_file():
        raise errors.ClusterConfigError(f"kubeconfig {path} does not exist: check the path")
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(path), context=context, client_configuration=configuration
        )
    except (k8s_config.ConfigException, ValueError) as error:
        raise errors.ClusterConfigError(f"kubeconfig {path} is not usable: {error}") from None


def _client(configuration: k8s.Configuration) -> k8s.ApiClient:
    # One retry at most: the caller (a broker redelivery) is the retry loop that matters.
    configuration.retries = 1
    return k8s.ApiClient(configuration)


class Cluster:
    """Knative Services and Triggers in one cluster."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self._api = k8s.CustomObjectsApi(api_client)
        self.host: str = api_client.configuration.host

    @classmethod
    def connect(cls, kubeconfig: str | Path | None = None, context: str | None = None) -> Cluster:
        return cls(load_api_client(kubeconfig, context))

    # -- Knative Serving ----------------------------------------------------------------

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        return self._get(SERVING_GROUP, SERVICES, "Service", namespace, name)

    def list_services(self, namespace: str) -> list[dict[str, Any]]:
        return self._list(SERVING_GROUP, SERVICES, "Services", namespace)

    def patch_service(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch: mappings merge, lists (traffic, containers) are replaced."""
        return self._call(
            f"patch Service {namespace}/{name}",
            lambda: self._api.patch_namespaced_custom_object(
                SERVING_GROUP, VERSION, namespace, SERVICES, name, dict(patch),
                _request_timeout=_TIMEOUT,
            ),
        )

    # -- Knative Eventing ---------------------------------------------------------------

    def create_trigger(self, trigger: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Trigger, as `trigger_manifest` builds it (a sink URI or a Knative
        Service by name, `spec.filter` attributes or Knative's `spec.filters` dialects)."""
        body = dict(trigger)
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        created = self._call(
            f"create Trigger {namespace}/{name}",
            lambda: self._api.create_namespaced_custom_object(
                EVENTING_GROUP, VERSION, namespace, TRIGGERS, body, _request_timeout=_TIMEOUT
            ),
        )
        # Some API servers answer 200 rather than 201, which the client reads as no body.
        return created or body

    def get_trigger(self, namespace: str, name: str) -> dict[str, Any]:
        return self._get(EVENTING_GROUP, TRIGGERS, "Trigger", namespace, name)

    def list_triggers(self, namespace: str) -> list[dict[str, Any]]:
        return self._list(EVENTING_GROUP, TRIGGERS, "Triggers", namespace)

    def delete_trigger(self, namespace: str, name: str) -> None:
        self._call(
            f"delete Trigger {namespace}/{name}",
            lambda: self._api.delete_namespaced_custom_object(
                EVENTING_GROUP, VERSION, namespace, TRIGGERS, name, _request_timeout=_TIMEOUT
            ),
        )

    # -- reading, and error translation -------------------------------------------------

    def _get(self, group: str, plural: str, kind: str, namespace: str,
             name: str) -> dict[str, Any]:
        return self._call(
            f"get {kind} {namespace}/{name}",
            lambda: self._api.get_namespaced_custom_object(
                group, VERSION, namespace, plural, name, _request_timeout=_TIMEOUT
            ),
        )

    def _list(self, group: str, plural: str, kinds: str, namespace: str) -> list[dict[str, Any]]:
        listing = self._call(
            f"list {kinds} in {namespace}",
            lambda: self._api.list_namespaced_custom_object(
                group, VERSION, namespace, plural, _request_timeout=_TIMEOUT
            ),
        )
        return list(listing.get("items", []))

    def _call(self, action: str, request: Callable[[], object]) -> dict[str, Any]:
        try:
            answer = request()
        except ApiException as error:
            raise _api_error(action, error) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise errors.ClusterUnreachableError(
                f"cannot {action}: the Kubernetes API at {self.host} is unreachable "
                f"({type(error).__name__}); check the cluster, or start `troupe up`"
            ) from None
        # Deletes answer a Status; everything else answers the object. Both are mappings.
        return dict(answer) if isinstance(answer, Mapping) else {}


def _api_error(action: str, error: ApiException) -> errors.KnativeError:
    status = int(error.status or 0)
    reason = _reason(error)
    if status == 404:
        return errors.ResourceNotFoundError(
            f"cannot {action}: not found ({reason}); is Knative installed and the name right?"
        )
    if status == 409:
        return errors.ResourceConflictError(f"cannot {action}: conflict ({reason})")
    if status in (401, 403):
        return errors.ApiRequestError(
            f"cannot {action}: access denied ({reason}); check the ServiceAccount's Role",
            status=status,
        )
    return errors.ApiRequestError(f"cannot {action}: HTTP {status} ({reason})", status=status)


def _reason(error: ApiException) -> str:
    import json

    try:
        body = json.loads(error.body or "")
        return str(body.get("message") or body.get("reason") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)


def trigger_manifest(
    namespace: str,
    name: str,
    *,
    broker: str,
    filter_attributes: Mapping[str, str] | None = None,
    sink_uri: str | None = None,
    service: str | None = None,
    delivery: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    filters: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Trigger resource `create_trigger` submits (also usable to write YAML)."""
    for what, value in (("namespace", namespace), ("name", name), ("broker", broker)):
        if not _DNS_LABEL.match(value) or len(value) > 63:
            raise ValueError(
                f"trigger {what} {value!r} must be a DNS label: lowercase letters, digits "
                "and '-', at most 63 characters"
            )
    if (sink_uri is None) == (service is None):
        raise ValueError("give exactly one sink: a sink URI or a Knative Service name")
    subscriber: dict[str, Any] = (
        {"uri": sink_uri}
        if sink_uri is not None
        else {"ref": {"apiVersion": f"{SERVING_GROUP}/{VERSION}", "kind": "Service",
                      "name": service}}
    )
    if filters is not None and filter_attributes:
        raise ValueError("give filter_attributes or filters, not both: Knative ignores "
                         "spec.filter when spec.filters is set")
    spec: dict[str, Any] = {"broker": broker}
    if filters is not None:
        spec["filters"] = [dict(f) for f in filters]
    else:
        spec["filter"] = {"attributes": dict(filter_attributes or {})}
    spec["subscriber"] = subscriber
    if delivery:
        spec["delivery"] = dict(delivery)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": f"{EVENTING_GROUP}/{VERSION}",
        "kind": "Trigger",
        "metadata": metadata,
        "spec": spec,
    }
