"""What can go wrong in the local data plane, under the runtime's one error root."""

from __future__ import annotations

from troupe.local.errors import InvalidResourceError, LocalError

__all__ = ["DataPlaneError", "InvalidResourceError", "ParkingFailedError", "PublishFailedError",
           "RejectedEventError", "UnknownBrokerError"]


class DataPlaneError(LocalError):
    """Root of the errors raised by `troupe.local.eventing.broker` (a Broker or Trigger it
    cannot run raises the runtime's InvalidResourceError)."""


class UnknownBrokerError(DataPlaneError, KeyError):
    """No Broker of that namespace and name is loaded."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class RejectedEventError(DataPlaneError, ValueError):
    """The ingress refused an event; `status_code` is the HTTP status it answers with."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class ParkingFailedError(DataPlaneError):
    """An event whose dead-letter sink failed could not be parked either: it stays
    uncommitted, and is delivered again later."""


class PublishFailedError(DataPlaneError):
    status_code = 503  # with Retry-After: the event was not stored, so send it again

    """Kafka did not acknowledge the write, so the event is not stored."""
