"""One root for what can go wrong in the local runtime, as `troupe.events`, `troupe.store`
and `troupe.knative` each have one.

Every error of `troupe.local` derives from `LocalError`, so a caller (the CLI, a test)
can catch the runtime's own failures apart from bugs. Each also derives from the builtin
it is a kind of, as the CloudEvents SDK's errors do, so `except ValueError` still works.
"""

from __future__ import annotations


class LocalError(Exception):
    """Root of the errors raised by `troupe.local`."""


class InvalidFieldError(LocalError, ValueError):
    """A resource field holds something the runtime cannot run; `field` is its dotted path."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidResourceError(InvalidFieldError):
    """An invalid field of a resource that the message names (a Broker or Trigger in the
    data plane, which is handed resources, not API requests)."""

    def __init__(self, resource: str, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.args = (f"{resource}: {field}: {problem}",)
        self.resource = resource
