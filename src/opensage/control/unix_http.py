"""A small HTTP/1.1 client over Unix sockets with keep-alive pools, for the model servers.

The router talks to every variant instance through this on the hot path of InvokeEndpoint, so it
is written for little per-request work: one prebuilt header block, one write, the response read
by Content-Length (chunked and read-to-close are handled for containers that use them).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

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
    """The model server answered something that is not HTTP."""


class UnixHttpPool:
    """Idle keep-alive connections per socket path; one event loop uses it."""

    def __init__(self) -> None:
        self._idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def request(
        self, socket: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> Reply:
        head = f"POST {path} HTTP/1.1\r\nHost: model\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
        payload = head.encode("latin-1") + b"\r\n" + body
        idle = self._idle.setdefault(socket, [])
        while idle:  # a pooled connection may have been closed by the server meanwhile
            reader, writer = idle.pop()
            try:
                return await self._exchange(socket, reader, writer, payload)
            except Unreachable:
                continue
        try:
            reader, writer = await asyncio.open_unix_connection(socket)
        except OSError as exc:
            raise Unreachable(str(exc)) from exc
        return await self._exchange(socket, reader, writer, payload)

    async def _exchange(
        self,
        socket: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        payload: bytes,
    ) -> Reply:
        done = False
        try:
            try:
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise ProtocolError("the connection closed mid-answer") from exc
                raise Unreachable("the model server closed the connection") from exc
            except (ConnectionError, asyncio.LimitOverrunError) as exc:
                raise Unreachable(str(exc)) from exc
            status, headers = _parse_head(head)
            body, reusable = await _read_body(reader, headers)
            done = True
        finally:
            if not done:
                _close(writer)
        if reusable and len(self._idle.setdefault(socket, [])) < _MAX_IDLE:
            self._idle[socket].append((reader, writer))
        else:
            _close(writer)
        return Reply(status, headers, body)

    def forget(self, socket: str) -> None:
        """Close the idle connections of an instance that is going away."""
        for _reader, writer in self._idle.pop(socket, []):
            _close(writer)

    def keep_only(self, sockets: set[str]) -> None:
        """Close idle connections to instances no longer routed to."""
        for socket in [s for s in self._idle if s not in sockets]:
            self.forget(socket)

    def close(self) -> None:
        self.keep_only(set())


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers.setdefault("connection", "close")
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    keep = headers.get("connection", "").lower() != "close"
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await _read_chunked(reader), keep
        length = headers.get("content-length")
        if length is not None:
            return await reader.readexactly(int(length)), keep
        return await reader.read(), False
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
        raise ProtocolError(f"incomplete response body: {exc}") from exc


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
