"""HTTPS for the local API: TLS on the loopback port, relayed to waitress on a Unix socket.

waitress speaks plain HTTP only, and kubectl sends a kubeconfig's token only over TLS
(certificates.py). So the API's public port is this relay: it ends TLS and copies bytes
both ways to waitress, which listens on a Unix socket in a folder only the runtime's user
may enter, so nothing reaches the API but through TLS. Bytes are relayed as they come,
so a watch streams as it did; when either side closes, so does the other, so waitress
sees an abandoned watch go.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Final

from troupe.local.host.loop import LoopThread

_CHUNK: Final = 64 * 1024
_HANDSHAKE_TIMEOUT_S: Final = 10.0


class TlsFront:
    def __init__(self, port: int, backend: str, context: ssl.SSLContext) -> None:
        self._backend = backend
        self._context = context
        self._socket = socket.create_server(("127.0.0.1", port), backlog=128)
        self._relays: set[asyncio.Task[None]] = set()
        self._loop = LoopThread("api-tls").start()
        self._server = self._loop.run(self._listen())

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def close(self) -> None:
        if self._loop.running:
            with contextlib.suppress(Exception):
                self._loop.run(self._shutdown())
        self._loop.stop()
        self._socket.close()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, sock=self._socket, ssl=self._context,
                                          ssl_handshake_timeout=_HANDSHAKE_TIMEOUT_S)

    async def _shutdown(self) -> None:
        """Stop listening, end every relay and wait for them: none is left to be
        collected once the loop has closed."""
        self._server.close()
        relays = list(self._relays)
        for relay in relays:
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)

    async def _relay(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        try:
            backend_reader, backend_writer = await asyncio.open_unix_connection(self._backend)
        except OSError:
            client_writer.close()
            return
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        copies = [asyncio.ensure_future(_copy(client_reader, backend_writer)),
                  asyncio.ensure_future(_copy(backend_reader, client_writer))]
        try:
            await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for copy in copies:
                copy.cancel()
            await asyncio.gather(*copies, return_exceptions=True)
            client_writer.close()
            backend_writer.close()
            self._relays.discard(relay)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
