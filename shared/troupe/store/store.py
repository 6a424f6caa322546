"""The store: bytes and JSON under keys, content-addressed datasets, and model artifacts.

One `Store` serves both file:// and s3:// roots. Every key or URI is confined to the root
first (see `_location`), every write is atomic, and `update_json` is a compare-and-swap
that never loses a concurrent update.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._local import LocalBackend
from ._location import Location, Root
from .artifacts import dump_model, load_trusted_model
from .errors import (
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    ObjectTooLargeError,
    OutsideStoreError,
    StoreError,
)
from .registry import ModelRegistry, check_name
from .replies import ReplyCache

if TYPE_CHECKING:
    from troupe.function.settings import Settings

DEFAULT_URL: Final = "file://./.troupe/store"
_SUFFIX: Final = re.compile(r"^(\.[A-Za-z0-9]{1,16}){0,3}$")
_MISSING: Final[Any] = object()


@dataclass(frozen=True)
class ObjectRef:
    """A stored object: where it is, its sha256 (hex) and its size in bytes."""

    uri: str
    sha256: str
    size: int


class _Backend(Protocol):
    def read(self, path: str, limit: int | None = None) -> bytes: ...
    def exists(self, path: str) -> bool: ...
    def write(self, path: str, data: bytes) -> None: ...
    def create(self, path: str, data: bytes, *, durable: bool = True) -> bool: ...
    def update(self, path: str, change: Callable[[bytes | None], bytes]) -> bytes: ...
    def delete_if(self, path: str, condition: Callable[[bytes], bool]) -> bool: ...
    def list(self, folder: str) -> list[str]: ...


class Store:
    def __init__(self, url: str = DEFAULT_URL, storage_options: Mapping[str, Any] | None = None):
        self._root = Root.parse(url)
        self.url: str = self._root.url
        self._backend: _Backend
        if self._root.scheme == "file":
            self._backend = LocalBackend(self._root.base)
        else:
            from ._s3 import S3Backend

            self._backend = S3Backend(storage_options or {})
        self.registry = ModelRegistry(self)
        self.replies = ReplyCache(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store at `settings.store_url`; for s3:// the endpoint and region come from
        `s3_endpoint_url` and `s3_region`. Credentials come the usual AWS way
        (AWS_ACCESS_KEY_ID..., or the pod's role)."""
        url = settings.store_url or DEFAULT_URL
        return cls(url, s3_options(settings) if url.startswith("s3://") else None)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # keys and URIs

    def resolve(self, uri_or_key: str) -> str:
        """The absolute URL of `uri_or_key` inside the store; OutsideStoreError when it is
        outside (`..`, links leading out, another scheme, bucket or prefix)."""
        return self._root.confine(uri_or_key).url

    def key_of(self, uri_or_key: str) -> str:
        """The key, relative to the root, of a URI (or key) inside the store."""
        return self._root.confine(uri_or_key).key

    def _locate(self, uri_or_key: str) -> Location:
        location = self._root.confine(uri_or_key)
        if not location.key:
            raise NotFoundError(f"{uri_or_key!r} names the store's root, not an object in it")
        return location

    def _locate_for_writing(self, key: str) -> Location:
        location = self._root.confine(key)
        parts = location.key.split("/")
        if not location.key or any(part.startswith(".") for part in parts):
            # Lock and temporary files live under names starting with "."; replacing a
            # lock file would let two writers hold "the" lock at once.
            raise InvalidNameError(
                f"cannot write {key!r}: keys name an object and no part of them may start "
                "with '.' (those names are the store's own); use a key like 'results/a.json'"
            )
        return location

    # bytes

    def read_bytes(self, uri_or_key: str, *, max_bytes: int | None = None) -> bytes:
        """The object's bytes. With `max_bytes`, an object larger than that raises
        ObjectTooLargeError after reading no more than max_bytes + 1 of it."""
        location = self._locate(uri_or_key)
        data = self._backend.read(location.native, limit=max_bytes)
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLargeError(location.url, max_bytes)
        return data

    def read_verified(self, uri_or_key: str, sha256: str) -> bytes:
        """The bytes at `uri_or_key`, refused with IntegrityError unless their sha256 is
        `sha256`."""
        location = self._locate(uri_or_key)
        data = self._backend.read(location.native)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():
            raise IntegrityError(
                f"{location.url} has sha256 {actual} but {sha256} was recorded: it was changed "
                "after it was written; restore it or register a new version"
            )
        return data

    def write_bytes(self, key: str, data: bytes) -> str:
        location = self._locate_for_writing(key)
        self._backend.write(location.native, bytes(data))
        return location.url

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write `data` unless `key` exists (atomically); False if it existed."""
        location = self._locate_for_writing(key)
        return self._backend.create(location.native, bytes(data))

    def exists(self, uri_or_key: str) -> bool:
        location = self._root.confine(uri_or_key)
        return bool(location.key) and self._backend.exists(location.native)

    def list(self, prefix: str = "") -> list[str]:
        """Keys (relative to the root) of the objects under the folder `prefix`, sorted.
        Names starting with "." are the store's own (locks, temporary files) and left out."""
        folder = self._root.confine(prefix)
        keys = []
        for native in self._backend.list(folder.native):
            try:
                key = self._root.confine(self._uri_of(native)).key
            except OutsideStoreError:
                continue  # a link leading out: not the store's, and not readable through it
            if not any(part.startswith(".") for part in key.split("/")):
                keys.append(key)
        return sorted(keys)

    def _uri_of(self, native: str) -> str:
        return ("file://" if self._root.scheme == "file" else "s3://") + native

    # JSON

    def read_json(self, key: str, default: Any = _MISSING) -> Any:
        location = self._locate(key)
        try:
            data = self._backend.read(location.native)
        except NotFoundError:
            if default is _MISSING:
                raise
            return default
        return _decode(data, location.url)

    def write_json(self, key: str, value: Any) -> str:
        location = self._locate_for_writing(key)
        self._backend.write(location.native, _encode(value))
        return location.url

    def create_json(self, key: str, value: Any, *, durable: bool = True) -> bool:
        """Atomically store `value` at `key` unless something is there; False if it was.

        `durable=False` is for records whose loss in an operating-system crash costs a
        repeat, never a loss (a claim, a note that something was counted): file:// then
        skips the fsyncs, which cost milliseconds each; an S3 PUT is durable anyway."""
        location = self._locate_for_writing(key)
        return self._backend.create(location.native, _encode(value), durable=durable)

    def update_json(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        """Atomically replace the value at `key` with `change(current)`; `change` gets a copy
        of `default` when nothing is stored. Concurrent updates are serialised (file://) or
        compared-and-swapped and retried (s3://), so none is lost; `change` may therefore be
        called more than once and must not have side effects. Returns the new value."""
        location = self._locate_for_writing(key)
        result: list[Any] = []

        def change_bytes(current: bytes | None) -> bytes:
            value = copy.deepcopy(default) if current is None else _decode(current, location.url)
            new = change(value)
            result[:] = [new]
            return _encode(new)

        self._backend.update(location.native, change_bytes)
        return result[0]

    def delete_json_if(self, key: str, condition: Callable[[Any], bool]) -> bool:
        """Atomically delete the value at `key` if `condition(value)` holds; True if deleted.

        The check and the delete are one step against `update_json` and `create_json` (a
        lock on file://, If-Match on s3://), so a value changed meanwhile is never deleted
        on the strength of the old one. A value that is not JSON raises StoreError."""
        location = self._locate_for_writing(key)
        return self._backend.delete_if(
            location.native, lambda data: bool(condition(_decode(data, location.url)))
        )

    # datasets

    def put_dataset(self, data: bytes, *, suffix: str = ".csv") -> ObjectRef:
        """Store `data` under datasets/<sha256><suffix>; storing the same bytes again is a
        no-op that returns the same reference."""
        if not _SUFFIX.match(suffix):
            raise InvalidNameError(
                f"dataset suffix {suffix!r} is not a file extension like '.csv' or '.csv.gz'"
            )
        data = bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        location = self._locate_for_writing(f"datasets/{sha256}{suffix}")
        # Content addressed: whatever is already there holds these very bytes.
        self._backend.create(location.native, data)
        return ObjectRef(location.url, sha256, len(data))

    # models

    def save_model(
        self, model: Any, *, name: str, version: str, overwrite: bool = False
    ) -> ObjectRef:
        """Save `model` with skops at models/<name>/<version>.skops.

        A version's artifact is immutable: when one is already saved (a redelivered training
        event), it is kept and its reference returned, so it still matches the sha256 the
        registry recorded. `overwrite=True` replaces it."""
        check_name("model name", name)
        check_name("model version", version)
        data = dump_model(model)
        location = self._locate_for_writing(f"models/{name}/{version}.skops")
        if overwrite:
            self._backend.write(location.native, data)
        elif not self._backend.create(location.native, data):
            data = self._backend.read(location.native)
        return ObjectRef(location.url, hashlib.sha256(data).hexdigest(), len(data))

    def load_model(self, uri: str, sha256: str) -> Any:
        """The model at `uri`, after checking its sha256 (IntegrityError) and that every type
        in it is trusted (IntegrityError naming the type)."""
        data = self.read_verified(uri, sha256)
        return load_trusted_model(data, origin=self.resolve(uri))


def s3_options(settings: Settings) -> dict[str, Any]:
    """s3fs storage options from the settings (TROUPE_S3_ENDPOINT_URL, TROUPE_S3_REGION)."""
    endpoint, region = settings.s3_endpoint_url, settings.s3_region
    client: dict[str, Any] = {}
    if endpoint:
        client["endpoint_url"] = endpoint
    if region:
        client["region_name"] = region
    return {"client_kwargs": client} if client else {}


def _encode(value: Any) -> bytes:
    try:
        return json.dumps(value, sort_keys=True, indent=1, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise type(error)(f"the store keeps plain JSON values only: {error}") from error


def _decode(data: bytes, url: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:
        raise StoreError(
            f"{url} does not hold valid JSON ({error}); repair or delete it"
        ) from error
