"""predictor: a :predict body parsed with its instances counted as it is parsed.

A body is at most TROUPE_MAX_EVENT_BYTES (Flask answers 413 before reading more). Within
that, it could still hold a third of a million tiny instances (`[[0],[0],...]`), each a
Python list once parsed, when at most `max_instances` are served: the limit must hold
while parsing, not after.

Every instance is a JSON array or object, so it opens with `[` or `{`. A body with no
more than max_instances + 2 of those bytes (the instances list and the outer object
besides) cannot hold more instances than allowed: it is parsed by json.loads, at C speed,
after one count of two bytes. Only a body with more (too many instances, nested values,
or brackets inside strings) takes the bounded parse: the standard library's own scanner
(`json.scanner.py_make_scanner`, the pure-Python twin of the C one) with array and object
hooks that count the containers below the top two levels, and stop at the first one past
the limit, without reading further.

A streaming parser (ijson) would count too, but it brings a C extension into every
function image (its pure-Python backend is many times slower than json) to stream bodies
that are already capped at 1 MiB, and every body would pay for it; here the usual body
stays on json.loads.

(Its name is unique across function folders, as tests import several functions in one
process.)
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from typing import Any

# The outer object and the instances list hold the instances; containers below them are
# instances, or values nested in one (refused later anyway).
_OUTER_LEVELS = 2


class TooManyInstancesError(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"more than {limit} instances in one request (counted while parsing); at most "
            f"{limit} are accepted, send several requests"
        )


class NotJSONError(ValueError):
    """The body is not JSON, or is nested deeper than the parser goes."""


def parse_predict_body(body: bytes, max_instances: int) -> Any:
    """The JSON value of `body`, refused with TooManyInstancesError as soon as it shows more
    than `max_instances` instances, or NotJSONError."""
    try:
        if body.count(b"[") + body.count(b"{") <= max_instances + _OUTER_LEVELS:
            return json.loads(body)
        return _CountingDecoder(max_instances).decode(body.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        if isinstance(error, TooManyInstancesError):
            raise
        raise NotJSONError(str(error) or type(error).__name__) from None


class _CountingDecoder(json.JSONDecoder):
    """json.JSONDecoder on the pure-Python scanner, counting containers as it meets them."""

    def __init__(self, max_instances: int) -> None:
        super().__init__()
        self._max_instances = max_instances
        self._inner = 0
        self._depth = 0
        self.parse_array = self._array
        self.parse_object = self._object
        # The C scanner calls no Python hooks for containers; its Python twin does. It,
        # JSONArray and JSONObject are CPython's json internals (unchanged since 2.7, and
        # not in typeshed); test_predictor's bounded-parse tests fail if they ever change.
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > _OUTER_LEVELS:
            self._inner += 1
            if self._inner > self._max_instances:
                raise TooManyInstancesError(self._max_instances)

    def _array(self, *args: Any) -> Any:
        self._enter()
        try:
            return json.decoder.JSONArray(*args)  # type: ignore[attr-defined]
        finally:
            self._depth -= 1

    def _object(self, *args: Any) -> Any:
        self._enter()
        try:
            return json.decoder.JSONObject(*args)  # type: ignore[attr-defined]
        finally:
            self._depth -= 1
