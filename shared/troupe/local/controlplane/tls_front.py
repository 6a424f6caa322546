"""HTTPS for the local API: TLS on the loopback port, relayed to waitress on a Unix socket.

waitress speaks plain HTTP only, and kubectl sends a kubeconfig's token only over TLS
(certificates.py). So the API's public port is this relay: it ends TLS and copies bytes
both ways to waitress, which listens on a Unix socket in a folder only the runtime's user
may enter, so nothing reaches the API but through TLS. Bytes are relayed as they come,
so a watch streams as it did; when either side closes, so does the other, so waitress
sees an abandoned watch go.

Connections are counted when they are accepted, before the TLS handshake, and past the
cap the relay stops accepting until one goes, as waitress does: a flood waits in the
listen backlog instead of taking a file each (asyncio's own TLS server would count a
client only after its handshake, and accept whole batches first).
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
_ACCEPT_RETRY_S: Final = 0.1  # after EMFILE with no relay open whose end would free one


class TlsFront:
    def __init__(self, port: int, backend: str, context: ssl.SSLContext,
                 max_connections: int) -> None:
        self._backend = backend
        self._context = context
        self._max_connections = max_connections
        # As deep as waitress's own: a flood past the cap waits here, costing no file.
        self._socket = socket.create_server(("127.0.0.1", port), backlog=1024)
        self._socket.setblocking(False)
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

    async def _listen(self) -> asyncio.Task[None]:
        return asyncio.ensure_future(self._accept(asyncio.Semaphore(self._max_connections)))

    async def _accept(self, room: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await room.acquire()
            try:
                client, _ = await loop.sock_accept(self._socket)
            except OSError:
                # Out of files (EMFILE) despite the cap: what is open must close first,
                # so wait for any relay to end rather than spin on the failing accept.
                room.release()
                if self._relays:
                    await asyncio.wait(list(self._relays), return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(_ACCEPT_RETRY_S)
                continue
            relay = asyncio.ensure_future(self._handshake_then_relay(client))
            self._relays.add(relay)

            def ended(done: asyncio.Task[None]) -> None:
                self._relays.discard(done)
                room.release()
            relay.add_done_callback(ended)

    async def _handshake_then_relay(self, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_CHUNK)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, client, ssl=self._context,
                ssl_handshake_timeout=_HANDSHAKE_TIMEOUT_S)
        except OSError:  # a failed or timed-out handshake (SSLError, TimeoutError) too
            client.close()
            return
        await self._relay(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def _shutdown(self) -> None:
        """Stop accepting, end every relay and wait for them: none is left to be
        collected once the loop has closed."""
        self._server.cancel()
        await asyncio.gather(self._server, return_exceptions=True)
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


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
