"""The kinds the control plane serves: the Knative kinds the runtime runs, the Revisions,
Configurations and Routes its serving controller keeps, and the Kubernetes kinds the
project's manifests also hold (Namespaces, ConfigMaps, RBAC...), which are kept so that
`kubectl apply -f knative/ -f eventing/` works as on a cluster, though nothing runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str  # the version objects are stored in
    kind: str
    plural: str
    short_names: tuple[str, ...] = ()
    # Every version served, the preferred one first. Each is checked against its own
    # schema; they differ only by fields a newer version adds (KafkaSource v1's SASL
    # options), so an object is kept as sent and reads the same in each but for its
    # apiVersion.
    served: tuple[str, ...] = field(default=())
    namespaced: bool = True
    writable: bool = True  # False: kept by a controller, read-only through the API
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return api_version(self.group, self.version)

    @property
    def versions(self) -> tuple[str, ...]:
        return self.served or (self.version,)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def resource(self) -> str:
        """`services.serving.knative.dev`, as kubectl and the API's messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


_SERVING: Final = ("all", "knative", "serving")
_EVENTING: Final = ("all", "knative", "eventing")
_SOURCES: Final = ("all", "knative", "sources")

SERVICE: Final = Kind("serving.knative.dev", "v1", "Service", "services", ("ksvc", "kservice"),
                      categories=_SERVING)
BROKER: Final = Kind("eventing.knative.dev", "v1", "Broker", "brokers", categories=_EVENTING)
TRIGGER: Final = Kind("eventing.knative.dev", "v1", "Trigger", "triggers", categories=_EVENTING)
PINGSOURCE: Final = Kind("sources.knative.dev", "v1", "PingSource", "pingsources",
                         categories=_SOURCES)
KAFKASOURCE: Final = Kind("sources.knative.dev", "v1beta1", "KafkaSource", "kafkasources",
                          served=("v1", "v1beta1"), categories=(*_SOURCES, "eventing"))
# What the runtime runs: a manifest of one of these kinds starts something.
KINDS: Final = (SERVICE, BROKER, TRIGGER, PINGSOURCE, KAFKASOURCE)

# Written by the serving controller, read-only through the API, as Knative's are owned by
# their Service.
REVISION: Final = Kind("serving.knative.dev", "v1", "Revision", "revisions", ("rev",),
                       writable=False, categories=_SERVING)
CONFIGURATION: Final = Kind("serving.knative.dev", "v1", "Configuration", "configurations",
                            ("config", "cfg"), writable=False, categories=_SERVING)
ROUTE: Final = Kind("serving.knative.dev", "v1", "Route", "routes", ("rt",), writable=False,
                    categories=_SERVING)
SERVING_OWNED: Final = (REVISION, CONFIGURATION, ROUTE)

# Kept and served, never run: the rest of what the project's manifests declare.
EVENTTYPE: Final = Kind("eventing.knative.dev", "v1beta3", "EventType", "eventtypes",
                        categories=_EVENTING)
EVENTPOLICY: Final = Kind("eventing.knative.dev", "v1alpha1", "EventPolicy", "eventpolicies",
                          categories=_EVENTING)
NAMESPACE: Final = Kind("", "v1", "Namespace", "namespaces", ("ns",), namespaced=False)
CONFIGMAP: Final = Kind("", "v1", "ConfigMap", "configmaps", ("cm",))
SECRET: Final = Kind("", "v1", "Secret", "secrets")
SERVICEACCOUNT: Final = Kind("", "v1", "ServiceAccount", "serviceaccounts", ("sa",))
ROLE: Final = Kind("rbac.authorization.k8s.io", "v1", "Role", "roles")
ROLEBINDING: Final = Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings")
NETWORKPOLICY: Final = Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies",
                           ("netpol",))
KEPT_KINDS: Final = (EVENTTYPE, EVENTPOLICY, NAMESPACE, CONFIGMAP, SECRET, SERVICEACCOUNT,
                     ROLE, ROLEBINDING, NETWORKPOLICY)

SERVED_KINDS: Final = (*KINDS, *SERVING_OWNED, *KEPT_KINDS)
# Every kind is kept on disk across restarts.
STORED_KINDS: Final = SERVED_KINDS


def kind_of(api_version_text: str, kind: str, kinds: tuple[Kind, ...] = SERVED_KINDS
            ) -> Kind | None:
    """The kind a manifest's apiVersion and kind name, in any version it is served at."""
    group, _, version = api_version_text.rpartition("/")
    return next((k for k in kinds if k.group == group and k.kind == kind
                 and version in k.versions), None)


def kind_by_plural(group: str, plural: str, kinds: tuple[Kind, ...] = SERVED_KINDS
                   ) -> Kind | None:
    return next((k for k in kinds if k.group == group and k.plural == plural), None)
