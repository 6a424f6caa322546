"""Reading one HTTP/1.1 response as its bytes arrive, with httptools (llhttp).

llhttp is the parser Node.js ships: it refuses what RFC 9112 says to refuse (a chunk size
like `1_0` or `-1`, a chunk without its closing CRLF, two Content-Length headers, an
unknown HTTP version), so a delivery never reads a body shorter or longer than the
subscriber sent. What is here is the delivery's side of it: interim answers are skipped,
a body longer than the cap fails the attempt, and a body that runs to the end of the
connection is complete when the connection ends.
"""

from __future__ import annotations

from typing import Final

import httptools

from troupe.local.errors import LocalError

# What a delivery reads of a response body by default: a reply event fits many times over.
DEFAULT_MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
# The status line and headers together.
MAX_HEAD_BYTES: Final = 64 * 1024


class BadResponseError(LocalError, ValueError):
    """The answer is not HTTP/1.x, or more than the delivery accepts."""


class ResponseReader:
    """One response, from its bytes as they arrive.

        reader = ResponseReader(max_body_bytes)
        done = reader.feed(data)  # on each read; True once complete
        done = reader.end()       # on EOF: True if the body ran to the end
    """

    def __init__(self, max_body_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, *,
                 head_only: bool = False) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._max_body_bytes = max_body_bytes
        self._head_only = head_only  # the answer to a HEAD: no body, whatever it says
        self._head_bytes = 0  # bytes fed before the head was complete
        self._header_bytes = 0
        self._chunks: list[bytes] = []
        self._body_bytes = 0
        self._headers_done = False
        self._complete = False
        self._delimited = False  # a length or chunks: the body does not run to EOF
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.reusable = False  # the connection can carry another request afterwards
        self.started = False  # any byte of the answer arrived

    def feed(self, data: bytes) -> bool:
        """Take the next bytes; True once the response is complete. Raises BadResponseError."""
        self.started = True
        if not self._headers_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise BadResponseError("the subscriber switched protocols") from None
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, BadResponseError):
                raise cause from None
            raise BadResponseError(f"not an HTTP/1.x response: {error}") from None
        except httptools.HttpParserError as error:
            raise BadResponseError(f"not an HTTP/1.x response: {error}") from None
        if not self._headers_done and self._head_bytes > MAX_HEAD_BYTES:
            raise BadResponseError(f"the response head exceeds {MAX_HEAD_BYTES} bytes")
        if self._complete:
            self.body = b"".join(self._chunks)
        return self._complete

    def end(self) -> bool:
        """The peer closed its side: True if that completed the response."""
        if self._complete:
            return True
        if self._headers_done and not self._delimited:
            self.body, self.reusable, self._complete = b"".join(self._chunks), False, True
            return True
        return False

    # httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEAD_BYTES:
            raise BadResponseError(f"the response headers exceed {MAX_HEAD_BYTES} bytes")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer: the final one follows on the same parser
            self.headers = {}
            return
        self.status = status
        self._headers_done = True
        self.reusable = self._parser.should_keep_alive()
        self._delimited = "content-length" in self.headers or \
            "chunked" in self.headers.get("transfer-encoding", "").lower() or \
            status in (204, 304)
        if self._head_only:
            self._complete = True

    def on_body(self, body: bytes) -> None:
        if self._head_only:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body_bytes:
            raise BadResponseError(f"the response body exceeds {self._max_body_bytes} bytes")
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._headers_done:  # not the end of an interim answer
            self._complete = True
