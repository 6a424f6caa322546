"""One root for what can go wrong in the local data plane."""

from __future__ import annotations


class DataPlaneError(Exception):
    """Root of the errors raised by `troupe.local.eventing.broker`."""


class InvalidResourceError(DataPlaneError, ValueError):
    """A Broker or Trigger the data plane cannot run; the message names the field."""

    def __init__(self, resource: str, field: str, problem: str) -> None:
        super().__init__(f"{resource}: {field}: {problem}")
        self.resource = resource
        self.field = field
        self.problem = problem


class UnknownBrokerError(DataPlaneError, KeyError):
    """No Broker of that namespace and name is loaded."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class RejectedEventError(DataPlaneError, ValueError):
    """The ingress refused an event; `status` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PublishFailedError(DataPlaneError):
    """Kafka did not acknowledge the write, so the event is not stored."""
