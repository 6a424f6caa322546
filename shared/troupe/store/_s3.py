"""The s3:// backend on s3fs, with S3 conditional writes for atomic updates.

A PUT replaces an object atomically. Create-if-absent is a PUT with `If-None-Match: *`;
read-modify-write reads the object with its ETag and writes back with `If-Match: <etag>`,
so a write based on a stale read fails (412) and is retried on fresh data: compare-and-swap,
without a lock that a crashed writer could leave behind.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import fsspec.asyn

from .errors import ConflictError, NotFoundError, StoreConfigError, StoreError

# Another writer won the race: read again and retry.
_CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Backend:
    def __init__(self, storage_options: Mapping[str, Any], max_attempts: int = 200) -> None:
        try:
            import s3fs  # optional dependency: only s3:// stores need it
        except ImportError:
            raise StoreConfigError(
                "an s3:// store needs s3fs: install troupe with the 's3' extra"
            ) from None
        self._options = dict(storage_options)
        # Listings must be fresh: another process may have written since the last look.
        self._options.setdefault("use_listings_cache", False)
        self._filesystem_class = s3fs.S3FileSystem
        self._fs: Any = None
        self._pid = -1
        self.max_attempts = max_attempts

    @property
    def fs(self) -> Any:
        # s3fs runs its requests on an event loop thread that a forked child does not
        # inherit (gunicorn forks workers after the app is built): make a new one there.
        if self._fs is None or self._pid != os.getpid():
            self._fs = self._filesystem_class(**self._options)
            self._pid = os.getpid()
        return self._fs

    def read(self, path: str, limit: int | None = None) -> bytes:
        """The object's bytes; with `limit`, no more than limit + 1 of them, so that a
        caller can tell an object over its limit without holding all of it."""
        found = self._get(path, limit)
        if found is None:
            raise NotFoundError(f"nothing is stored at s3://{path}")
        return found[0]

    def exists(self, path: str) -> bool:
        bucket, key = _split(path)
        try:
            self._call("head_object", Bucket=bucket, Key=key)
        except _S3Failure as failure:
            if failure.code in _MISSING_CODES:
                return False
            raise failure.as_store_error(f"s3://{path}") from None
        return True

    def write(self, path: str, data: bytes) -> None:
        bucket, key = _split(path)
        try:
            self._call("put_object", Bucket=bucket, Key=key, Body=data)
        except _S3Failure as failure:
            raise failure.as_store_error(f"s3://{path}") from None

    def create(self, path: str, data: bytes, *, durable: bool = True) -> bool:
        # A PUT that S3 acknowledged is durable, whatever `durable` asks for.
        bucket, key = _split(path)
        for _ in range(self.max_attempts):
            try:
                self._call("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except _S3Failure as failure:
                if failure.code in ("PreconditionFailed", "412"):
                    return False
                if failure.code not in _CONFLICT_CODES:
                    raise failure.as_store_error(f"s3://{path}") from None
            _back_off()
        raise ConflictError(f"creating s3://{path} kept conflicting with other writers")

    def update(self, path: str, change: Callable[[bytes | None], bytes]) -> bytes:
        bucket, key = _split(path)
        for attempt in range(self.max_attempts):
            found = self._get(path)
            new = change(found[0] if found else None)
            condition = {"IfMatch": found[1]} if found else {"IfNoneMatch": "*"}
            try:
                self._call("put_object", Bucket=bucket, Key=key, Body=new, **condition)
                return new
            except _S3Failure as failure:
                # Missing: deleted since the read, which is a lost race like any other.
                if failure.code not in _CONFLICT_CODES | _MISSING_CODES:
                    raise failure.as_store_error(f"s3://{path}") from None
            _back_off(attempt)
        raise ConflictError(
            f"updating s3://{path} lost the race to other writers {self.max_attempts} times; "
            "retry later"
        )

    def delete_if(self, path: str, condition: Callable[[bytes], bool]) -> bool:
        """Delete the object if `condition(its bytes)` holds; True if it was deleted.

        The delete is conditional on the ETag that was read (`If-Match`), so an object
        replaced since the check is kept: compare-and-delete, as `update` compares and swaps.
        S3 and moto honour If-Match on DeleteObject; a server that ignored it would turn
        this into a plain delete after the check."""
        bucket, key = _split(path)
        found = self._get(path)
        if found is None or not condition(found[0]):
            return False
        try:
            self._call("delete_object", Bucket=bucket, Key=key, IfMatch=found[1])
        except _S3Failure as failure:
            if failure.code in _CONFLICT_CODES | _MISSING_CODES:
                return False  # changed or deleted since the read: not ours to delete
            raise failure.as_store_error(f"s3://{path}") from None
        return True

    def list(self, folder: str) -> list[str]:
        if "/" in folder and self.exists(folder):
            return [folder]
        try:
            found: list[str] = self.fs.find(folder)
        except FileNotFoundError:
            return []
        return found

    def _get(self, path: str, limit: int | None = None) -> tuple[bytes, str] | None:
        """The object's bytes (at most limit + 1 of them) and ETag, read in one request so
        they belong together."""
        bucket, key = _split(path)
        try:
            result: tuple[bytes, str] | None = fsspec.asyn.sync(
                self.fs.loop, self._get_async, bucket, key, limit
            )
        except _S3Failure as failure:
            raise failure.as_store_error(f"s3://{path}") from None
        return result

    async def _get_async(
        self, bucket: str, key: str, limit: int | None = None
    ) -> tuple[bytes, str] | None:
        client = await self.fs.set_session()
        try:
            response = await client.get_object(Bucket=bucket, Key=key)
        except Exception as error:
            failure = _S3Failure.from_error(error)
            if failure.code in _MISSING_CODES:
                return None
            raise failure from error
        async with response["Body"] as body:
            if limit is None:
                data: bytes = await body.read()
            else:
                data = await _read_at_most(body, limit + 1)
        return data, str(response["ETag"])

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = fsspec.asyn.sync(self.fs.loop, self._call_async, operation, params)
        return result

    async def _call_async(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        # The client is called directly, not through s3fs's wrappers, because those map
        # every S3 error to an OSError and the conflict codes would be lost.
        client = await self.fs.set_session()
        try:
            result: dict[str, Any] = await getattr(client, operation)(**params)
        except Exception as error:
            raise _S3Failure.from_error(error) from error
        return result


async def _read_at_most(body: Any, size: int) -> bytes:
    """Up to `size` bytes of a streaming body; leaving the rest unread ends the download
    when the body is closed."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk: bytes = await body.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _S3Failure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def from_error(cls, error: Exception) -> _S3Failure:
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            details = response.get("Error", {})
            code = str(details.get("Code", ""))
            status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            return cls(code or status, str(details.get("Message", error)))
        return cls("", f"{type(error).__name__}: {error}")

    def as_store_error(self, url: str) -> StoreError:
        code = f" ({self.code})" if self.code else ""
        return StoreError(
            f"S3 refused or failed a request for {url}{code}: {self.message}; check the bucket, "
            "the credentials and TROUPE_S3_ENDPOINT_URL"
        )


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


def _back_off(attempt: int = 0) -> None:
    # Jitter keeps writers that collided from colliding again in lockstep.
    time.sleep(random.uniform(0, min(0.002 * 2 ** min(attempt, 6), 0.1)))
