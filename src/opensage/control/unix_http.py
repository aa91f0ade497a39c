"""A small HTTP/1.1 client over Unix sockets with keep-alive pools, for the model servers.

The router talks to every variant instance through this on the hot path of InvokeEndpoint, so it
is written for little per-request work: an `asyncio.Protocol` per connection (no stream layer),
one write of a prebuilt request, and httptools (the C parser uvicorn uses too) to read the answer,
whatever its framing (Content-Length, chunked, or read to close).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import cast

import httptools

_MAX_IDLE = 64


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Unreachable(Exception):
    """The request never reached a model server (refused, reset before any answer): safe to retry
    elsewhere."""


class ProtocolError(Exception):
    """The model server answered something that is not HTTP, or stopped mid-answer."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Reply] | None = None
        self.open = True
        self._started = False
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(ProtocolError(f"not an HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self._started and self._unframed():
            self.on_message_complete()  # a body that runs to the end of the connection
        elif self._started:
            self._finish(ProtocolError("the connection closed mid-answer"))
        else:
            self._finish(Unreachable("the model server closed the connection"))

    def _unframed(self) -> bool:
        return "content-length" not in self._headers and "chunked" not in self._headers.get(
            "transfer-encoding", ""
        )

    # httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._started = True
        self._headers, self._body = {}, []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self.open or not self.parser.should_keep_alive():
            self.open = False
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        reply = Reply(self.parser.get_status_code(), self._headers, body)
        self._started = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(reply)

    # use ----------------------------------------------------------------------------------

    def send(self, payload: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.waiter

    def _finish(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()


class UnixHttpPool:
    """Idle keep-alive connections per socket path; one event loop uses it."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Connection]] = {}

    async def request(
        self, socket: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> Reply:
        head = f"POST {path} HTTP/1.1\r\nHost: model\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
        payload = head.encode("latin-1") + b"\r\n" + body
        idle = self._idle.setdefault(socket, [])
        while idle:  # a pooled connection may have been closed by the server meanwhile
            connection = idle.pop()
            if not connection.open:
                continue
            try:
                return await self._exchange(socket, connection, payload)
            except Unreachable:
                continue
        loop = asyncio.get_running_loop()
        try:
            _transport, connection = await loop.create_unix_connection(_Connection, socket)
        except OSError as exc:
            raise Unreachable(str(exc)) from exc
        return await self._exchange(socket, connection, payload)

    async def _exchange(self, socket: str, connection: _Connection, payload: bytes) -> Reply:
        done = False
        try:
            reply = await connection.send(payload)
            done = True
        finally:
            if not done:  # failed or cancelled (timeout): this connection's state is unknown
                connection.close()
        if connection.open and len(self._idle.setdefault(socket, [])) < _MAX_IDLE:
            self._idle[socket].append(connection)
        else:
            connection.close()
        return reply

    def forget(self, socket: str) -> None:
        """Close the idle connections of an instance that is going away."""
        for connection in self._idle.pop(socket, []):
            connection.close()

    def keep_only(self, sockets: set[str]) -> None:
        """Close idle connections to instances no longer routed to."""
        for socket in [s for s in self._idle if s not in sockets]:
            self.forget(socket)

    def close(self) -> None:
        self.keep_only(set())
