"""The listening socket's options reach the connections asyncio accepts on it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from genwire.api.fastpath import listening_socket


async def _accepted_option(level: int, option: int) -> int:
    """Serves one connection on `listening_socket` and answers `option` as read on
    the server's side of it."""
    sock = listening_socket("127.0.0.1", 0, peer_timeout_s=7)
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("socket").getsockopt(level, option))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        value = await asyncio.wait_for(seen, 10)
        writer.close()
    return value


async def test_accepted_connections_send_without_nagle_delay() -> None:
    # A long-poll answer is written as head then body; with Nagle the body waits
    # for the client's delayed ACK.
    assert await _accepted_option(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")
async def test_accepted_connections_give_up_on_a_silent_peer() -> None:
    assert await _accepted_option(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 7000
