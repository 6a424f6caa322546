"""Where the store lives, and the confinement of every URI and key to it.

Every path the store touches goes through `Root.confine`, so a dataset URI that arrives in
an event cannot make a function read or write outside the store: not with `..`, not
through a symbolic link that leads out, not with another scheme, bucket or prefix.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Final, Literal

from .errors import OutsideStoreError, StoreConfigError

_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_WHAT_TO_DO: Final = (
    "use a key relative to the store (like 'datasets/<sha256>.csv') or a URI under {root}, "
    "or set TROUPE_STORE_URL to the store that holds it"
)


@dataclass(frozen=True)
class Location:
    """One place inside the store: its URL, its key relative to the root, and the path the
    file system backend uses (an absolute path for file://, `bucket/key` for s3://)."""

    url: str
    key: str
    native: str


@dataclass(frozen=True)
class Root:
    scheme: Literal["file", "s3"]
    # file://: the absolute path as configured, and the same with links resolved.
    # s3://: the bucket, and the prefix inside it (no leading or trailing slash).
    base: str
    real: str
    bucket: str = ""

    @property
    def url(self) -> str:
        if self.scheme == "file":
            return "file://" + self.base
        return f"s3://{self.bucket}/{self.base}" if self.base else f"s3://{self.bucket}"

    @classmethod
    def parse(cls, url: str) -> Root:
        """The root of the store at `url`: file:// (relative paths are resolved against the
        current directory now), a plain path, or s3://bucket/prefix."""
        if not isinstance(url, str) or not url.strip():
            raise StoreConfigError(
                f"store URL {url!r} is empty: set TROUPE_STORE_URL to file://<dir> or "
                "s3://<bucket>/<prefix>"
            )
        scheme = _scheme_of(url)
        if scheme is None or scheme == "file":
            path = _file_path(url) if scheme else url
            base = os.path.normpath(os.path.abspath(path))
            return cls("file", base, os.path.realpath(base))
        if scheme == "s3":
            bucket, _, prefix = url[len("s3://") :].partition("/")
            prefix = posixpath.normpath("/" + prefix).strip("/") if prefix else ""
            if not bucket or not url.startswith("s3://"):
                raise StoreConfigError(
                    f"store URL {url!r} names no bucket: write it as s3://<bucket>/<prefix>"
                )
            return cls("s3", prefix, prefix, bucket)
        raise StoreConfigError(
            f"store URL {url!r} uses the scheme {scheme!r}: troupe stores live on file:// "
            "or s3://; set TROUPE_STORE_URL to one of those"
        )

    def confine(self, uri_or_key: str) -> Location:
        """The location of `uri_or_key` inside this root; OutsideStoreError otherwise."""
        if not isinstance(uri_or_key, str):
            raise TypeError(f"a store key or URI is a str, not {type(uri_or_key).__name__}")
        if "\x00" in uri_or_key:
            raise self._outside(uri_or_key, "it contains a NUL character")
        scheme = _scheme_of(uri_or_key)
        if scheme is not None and scheme != self.scheme:
            raise self._outside(uri_or_key, f"it uses the scheme {scheme!r}")
        if self.scheme == "file":
            return self._confine_file(uri_or_key, scheme is not None)
        return self._confine_s3(uri_or_key, scheme is not None)

    def _confine_file(self, uri_or_key: str, is_uri: bool) -> Location:
        path = _file_path(uri_or_key) if is_uri else uri_or_key
        if not os.path.isabs(path):
            # Relative keys live under the root; relative file:// URIs under the current
            # directory, as the root itself does.
            path = os.path.abspath(path) if is_uri else os.path.join(self.base, path)
        path = os.path.normpath(path)
        # The root may be reached through a link (a configured path that is itself a
        # symlink): an absolute path spelled through the resolved root is inside too.
        for top in (self.base, self.real):
            if _is_under(path, top, os.sep):
                key = os.path.relpath(path, top)
                break
        else:
            raise self._outside(uri_or_key, "it is not under the store's directory")
        key = "" if key == "." else key
        native = os.path.join(self.base, key) if key else self.base
        # Links are followed as the operating system would; the result must stay inside.
        if not _is_under(os.path.realpath(native), self.real, os.sep):
            raise self._outside(uri_or_key, "a symbolic link on its path leads out of the store")
        return Location("file://" + native, key.replace(os.sep, "/"), native)

    def _confine_s3(self, uri_or_key: str, is_uri: bool) -> Location:
        if is_uri:
            bucket, _, path = uri_or_key[len("s3://") :].partition("/")
            if uri_or_key[: len("s3://")].lower() != "s3://" or bucket != self.bucket:
                raise self._outside(uri_or_key, f"it is not in the bucket {self.bucket!r}")
            full = _normalise_s3(path)
            if full is None or not (self.base == "" or _is_under(full, self.base, "/")):
                raise self._outside(uri_or_key, "it is not under the store's prefix")
            key = full[len(self.base) :].lstrip("/") if self.base else full
        else:
            if uri_or_key.startswith("/"):
                raise self._outside(uri_or_key, "absolute paths have no place in an s3:// store")
            normalised = _normalise_s3(uri_or_key)
            if normalised is None:
                raise self._outside(uri_or_key, "'..' leads out of the store")
            key = normalised
        full = posixpath.join(self.base, key) if key else self.base
        native = f"{self.bucket}/{full}" if full else self.bucket
        return Location(f"s3://{native}", key, native)

    def _outside(self, uri_or_key: str, reason: str) -> OutsideStoreError:
        return OutsideStoreError(
            f"{uri_or_key!r} is outside the store {self.url}: {reason}; "
            + _WHAT_TO_DO.format(root=self.url)
        )


def _scheme_of(text: str) -> str | None:
    # One letter before a colon is a Windows drive, not a scheme; anything longer is one,
    # so "http:x" or "file:/etc" never pass as a relative key.
    match = _SCHEME.match(text)
    if match is None or len(match.group(1)) < 2:
        return None
    return match.group(1).lower()


def _file_path(url: str) -> str:
    rest = url[len("file:") :]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
    return rest


def _is_under(path: str, top: str, sep: str) -> bool:
    return path == top or path.startswith(top.rstrip(sep) + sep)


def _normalise_s3(path: str) -> str | None:
    """`path` with `.` and `..` resolved; None when `..` climbs above its start."""
    if path in ("", "/"):
        return ""
    normalised = posixpath.normpath(path.lstrip("/"))
    if normalised == ".." or normalised.startswith("../"):
        return None
    return "" if normalised == "." else normalised
