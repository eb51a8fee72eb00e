"""The listening socket of `genwire serve`."""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int, peer_timeout_s: float) -> socket.socket:
    """A bound TCP socket whose connections the kernel drops once data sent on them
    has gone unacknowledged for `peer_timeout_s`.

    A stream whose client stops reading is dropped by the app after its send
    time-out, but closing a socket with unsent data waits for the data to drain —
    which a client that never reads never lets happen. TCP_USER_TIMEOUT (Linux;
    inherited by accepted sockets) makes the kernel give up on such a peer.

    The protocol is named: asyncio sets TCP_NODELAY only on sockets whose `proto` is
    IPPROTO_TCP, and without it an answer written in two parts (head, then body)
    waits out the client's delayed ACK, ~40 ms per long-poll.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(peer_timeout_s * 1000))
    sock.bind((host, port))
    return sock
