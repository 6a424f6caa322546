"""What can go wrong talking to a cluster, with one root so callers catch one thing.

Each subclass also derives from the builtin a caller would expect, as the CloudEvents SDK
does: an unreachable cluster is a ConnectionError, a missing object a KeyError.
"""

from __future__ import annotations


class KnativeError(Exception):
    """Root of every error raised by troupe.knative."""


class ClusterConfigError(KnativeError, ValueError):
    """No usable Kubernetes configuration (kubeconfig, context, or in-cluster account)."""


class ClusterUnreachableError(KnativeError, ConnectionError):
    """The API server did not answer; retrying later may help."""


class ResourceNotFoundError(KnativeError, KeyError):
    """The object (or its kind: Knative not installed) does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ResourceConflictError(KnativeError):
    """The object already exists, or changed under us."""


class ApiRequestError(KnativeError):
    """The API server refused the request; `status` is its HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        # Throttling, timeouts and server-side failures pass; refusals do not.
        return self.status in (408, 429) or self.status >= 500
