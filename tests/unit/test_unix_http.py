"""The router's HTTP client against a scripted Unix-socket server: framings, reuse, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from opensage.control.unix_http import ProtocolError, UnixHttpPool, Unreachable

Answer = Callable[[bytes], bytes]


class Scripted:
    """A Unix-socket server answering the n-th request of each connection with answers[n]
    (request bytes → response bytes), then closing it."""

    def __init__(self, path: Path, answers: list[Answer]) -> None:
        self.path, self.answers = path, answers
        self.handlers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_unix_server(self._handle, str(self.path))
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()
        await asyncio.gather(*self.handlers)
        await self.server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.append(task)
        for answer in self.answers:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            writer.write(answer(head + body))
            await writer.drain()
        writer.close()
        await writer.wait_closed()


def plain(body: bytes, extra: bytes = b"") -> Answer:
    return lambda _request: (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n%s\r\n%s"
        % (len(body), extra, body)
    )


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_content_length_chunked_and_keep_alive(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    chunked: Answer = lambda _r: (  # noqa: E731
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    echo: Answer = lambda r: plain(r.split(b"\r\n\r\n", 1)[1])(r)  # noqa: E731

    async def scenario() -> None:
        pool = UnixHttpPool()
        async with Scripted(sock, [plain(b"0.5"), chunked, echo]):
            first = await pool.request(str(sock), "/invocations", [("Accept", "text/csv")], b"1,2")
            assert (first.status, first.body) == (200, b"0.5")
            assert first.headers["content-type"] == "text/csv"
            second = await pool.request(str(sock), "/invocations", [], b"x")
            assert (second.status, second.body) == (201, b"abcde")
            third = await pool.request(str(sock), "/invocations", [], b"same connection")
            assert third.body == b"same connection"  # only the first connection has a 3rd answer
            pool.close()

    run(scenario())


def test_a_closed_idle_connection_is_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"

    async def scenario() -> None:
        pool = UnixHttpPool()
        async with Scripted(sock, [plain(b"one")]):
            assert (await pool.request(str(sock), "/invocations", [], b"")).body == b"one"
            # The server closed that connection: whether the pool notices before or after
            # writing, the request goes out on a new one.
            assert (await pool.request(str(sock), "/invocations", [], b"")).body == b"one"
            pool.close()

    run(scenario())


def test_read_to_close_body(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    unframed: Answer = lambda _r: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"  # noqa: E731

    async def scenario() -> None:
        async with Scripted(sock, [unframed]):
            reply = await UnixHttpPool().request(str(sock), "/invocations", [], b"")
            assert reply.body == b"all of it"

    run(scenario())


def test_failures(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    garbage: Answer = lambda _r: b"SSH-2.0-nope\r\n\r\n"  # noqa: E731
    cut: Answer = lambda _r: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"  # noqa: E731

    async def scenario() -> None:
        with pytest.raises(Unreachable):
            await UnixHttpPool().request(str(tmp_path / "missing.sock"), "/ping", [], b"")
        async with Scripted(sock, [garbage]):
            with pytest.raises(ProtocolError):
                await UnixHttpPool().request(str(sock), "/invocations", [], b"")
        async with Scripted(sock, [cut]):
            with pytest.raises(ProtocolError, match="mid-answer"):
                await UnixHttpPool().request(str(sock), "/invocations", [], b"")

    run(scenario())
