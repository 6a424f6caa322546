"""One root for everything the store can refuse or fail at.

Each subclass also derives from the builtin a caller would expect, so `except KeyError`
or `except ValueError` keeps working for code that does not know troupe.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of the errors raised by `troupe.store`."""


class StoreConfigError(StoreError, ValueError):
    """The store URL or its options cannot be used (unknown scheme, missing bucket...)."""


class OutsideStoreError(StoreError, ValueError):
    """A URI or key that lies outside the configured store (`..`, links leading out,
    another scheme, bucket or prefix)."""


class InvalidNameError(StoreError, ValueError):
    """A model name, version or dataset suffix that cannot be used as part of a key."""


class IntegrityError(StoreError, ValueError):
    """Stored bytes do not match their recorded sha256, or an artifact holds a type
    that is not trusted."""


class NotFoundError(StoreError, KeyError):
    """Nothing is stored under the key or URI."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


class ObjectTooLargeError(StoreError, ValueError):
    """An object is larger than the limit its reader set; no more than the limit was read."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(f"{url} is larger than {limit} bytes")
        self.url = url
        self.limit = limit


class ConflictError(StoreError):
    """An atomic update gave up after repeated concurrent-update conflicts; retry later."""
