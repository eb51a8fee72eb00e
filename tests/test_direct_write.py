"""`HeldConnection.write`: a held connection's bytes go straight to its socket while
its transport holds none, and to the transport otherwise, in order, on both event
loops uvicorn runs on; never for TLS; it says what the transport then holds, and a
client that is gone, or a transport that is closing, is reported (-1), not raised."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import uvloop

from genwire.api.fastpath import HeldConnection

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run_on(loop_name: str, test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(test())
    finally:
        loop.close()


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """A server-side transport and the plain client socket at its other end."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.Transport] = loop.create_future()
    lost: asyncio.Future[None] = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports are not subclasses of asyncio's: no isinstance here.
            accepted.set_result(cast(asyncio.Transport, transport))

        def connection_lost(self, exc: Exception | None) -> None:
            lost.set_result(None)

    server = await loop.create_server(Accept, "127.0.0.1", 0)
    client = socket.create_connection(server.sockets[0].getsockname())
    try:
        async with asyncio.timeout(10):
            transport = await accepted
        yield transport, client
        transport.abort()
        async with asyncio.timeout(10):
            await lost  # the loop has closed the transport's socket
    finally:
        client.close()
        server.close()
        await server.wait_closed()


def reset(client: socket.socket) -> None:
    """Close with a reset (RST), as a client that vanished does."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


@contextmanager
def counting_socket_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """What each of `HeldConnection.write`'s own socket writes sent (-1: it raised)."""
    sizes: list[int] = []
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        sizes.append(-1)
        sizes[-1] = sent = real_write(fd, data)
        return sent

    monkeypatch.setattr(os, "write", write)  # what `genwire.api.fastpath` calls
    yield sizes


def read_exactly(client: socket.socket, size: int) -> bytes:
    received = bytearray()
    client.settimeout(10)
    while len(received) < size:
        piece = client.recv(size - len(received))
        assert piece, "the connection ended early"
        received += piece
    return bytes(received)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_bytes_go_to_the_socket_itself_while_the_transport_holds_none(
    loop_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def test() -> None:
        with counting_socket_writes(monkeypatch) as direct_sizes:
            async with connected() as (transport, client):
                connection = HeldConnection(None, None, transport)
                assert connection.fd == transport.get_extra_info("socket").fileno()
                assert connection.write(b"data: one\n\n") == 0  # nothing left queued
                assert connection.write(b"data: two\n\n") == 0
                assert transport.get_write_buffer_size() == 0
                assert read_exactly(client, 22) == b"data: one\n\ndata: two\n\n"
        assert direct_sizes == [11, 11]

    run_on(loop_name, test)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_what_the_socket_does_not_take_follows_through_the_transport_in_order(
    loop_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def test() -> None:
        with counting_socket_writes(monkeypatch) as direct_sizes:
            async with connected() as (transport, client):
                connection = HeldConnection(None, None, transport)
                pieces = [bytes([65 + n % 26]) * 50_000 for n in range(200)]  # 10 MB
                queued_at = None
                for number, piece in enumerate(pieces):
                    queued = connection.write(piece)
                    assert queued == transport.get_write_buffer_size()
                    if queued_at is None and queued:
                        queued_at = number
                # The client never read: the socket filled, and the rest queued.
                assert queued_at is not None
                assert transport.get_write_buffer_size() > 0
                writes_when_full = len(direct_sizes)
                received = await asyncio.to_thread(read_exactly, client, sum(map(len, pieces)))
                assert received == b"".join(pieces)
        # Once the transport held bytes, later writes went behind them, not around.
        assert writes_when_full == queued_at + 1
        assert direct_sizes[-1] < len(pieces[queued_at])

    run_on(loop_name, test)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_that_reset_its_connection_is_reported_gone(loop_name: str) -> None:
    async def test() -> None:
        async with connected() as (transport, client):
            connection = HeldConnection(None, None, transport)
            # The loop does not run in between, so the transport has not heard of the
            # reset: only the socket write can tell.
            reset(client)
            assert not transport.is_closing()
            assert connection.write(b"data: lost\n\n") == -1

    run_on(loop_name, test)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*request, "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_tls_connection_is_written_through_its_transport(
    loop_name: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS transport's socket carries ciphertext: plaintext must never reach it."""

    async def test() -> None:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(*certificate)
        client_tls = ssl.create_default_context()
        client_tls.check_hostname = False
        client_tls.verify_mode = ssl.CERT_NONE
        accepted: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.set_result(cast(asyncio.Transport, transport))

        server = await asyncio.get_running_loop().create_server(
            Accept, "127.0.0.1", 0, ssl=server_tls
        )
        host, port = server.sockets[0].getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port, ssl=client_tls)
        try:
            async with asyncio.timeout(10):
                transport = await accepted
                connection = HeldConnection(None, None, transport)
                assert transport.get_extra_info("socket") is not None  # it has one...
                assert connection.fd == -1  # ...and it is not written to
                with counting_socket_writes(monkeypatch) as direct_sizes:
                    connection.write(b"data: secret\n\n")
                assert direct_sizes == []
                assert await reader.readexactly(14) == b"data: secret\n\n"
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            server.close()
            await server.wait_closed()

    run_on(loop_name, test)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_closing_transport_is_reported_gone_and_not_written(
    loop_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def test() -> None:
        async with connected() as (transport, _client):
            connection = HeldConnection(None, None, transport)
            transport.close()
            with counting_socket_writes(monkeypatch) as direct_sizes:
                assert connection.write(b"data: late\n\n") == -1
            assert direct_sizes == []

    run_on(loop_name, test)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_finishing_for_a_client_that_reset_aborts_without_raising(loop_name: str) -> None:
    async def test() -> None:
        async with connected() as (transport, client):
            connection = HeldConnection(None, None, transport)
            reset(client)
            connection.finish()  # its last chunk cannot be written: the connection ends
            assert transport.is_closing()

    run_on(loop_name, test)
