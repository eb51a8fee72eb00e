"""Subscribers that never read, beside a job at a high event rate (SPEC §4.6 item 6):
past a bounded buffer each is dropped, its memory comes back, and the one reader
that keeps up still gets every event.

Bug (issue 17): with uvloop, every batch written to a stalled stream's transport
became a write request of its own (~700 bytes) holding the shared chunk, while the
1 MiB cap counted only the chunk's bytes, and only after the write; the kernel took
~2.7 MB per stalled connection before that, and every batch still cost the fan-out
a write per stalled stream. 1 000 non-readers of a job at ~1 000 events/s took a
server from 105 MB to 2.4 GB, it kept 2.2 GB after they were dropped (glibc kept
the freed requests), and the job slowed from 1 023 to 314 events/s.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import pytest

from genwire.api.fastpath.streams import HARD_LIMIT
from tests.conftest import ThreadedServer
from tests.waiting import eventually
from tests.wire import (
    SMALL_BUFFER,
    TERMINAL_TYPES,
    Event,
    LiveServer,
    RawStream,
    all_events,
    cancel,
    client_of,
    create_job,
    direct_sinks,
    feed_of,
    idle_running_job,
    job_scope,
    job_snapshot,
    request_bytes,
    stalled_subscriber,
    wait_for,
)

NON_READERS = 50
#: Events a stalled reader lets pass before it reads again: ~250 KB, past every
#: buffer on the way, short of the bound and of what the feed keeps.
LAG = 1000
#: ~250-byte events, one a millisecond: each batch a single event, as in the audit.
STEPS = 6000
STEP_MS = 1.0
#: What the process may grow by besides the streams' buffers: the honest reader's
#: events in this process, the store's caches, the allocator's rounding.
SLACK = 40 * 1024 * 1024
RSS_SAMPLE_S = 0.02


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """The highest RSS of this process (server thread included) while inside."""
    peak = [rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(RSS_SAMPLE_S):
            peak[0] = max(peak[0], rss_bytes())

    sampler = threading.Thread(target=sample, name="rss-sampler")
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def drained_until_cut(sock: socket.socket) -> bytes:
    """Everything the server sent before it let go: read to EOF or a reset. A server
    that still holds the connection leaves `recv` waiting, and its time-out fails."""
    sock.settimeout(10)
    received = bytearray()
    try:
        while piece := sock.recv(65536):
            received += piece
    except ConnectionResetError:
        pass
    return bytes(received)


@pytest.mark.skipif(sys.platform != "linux", reason="reads the process's RSS in /proc")
async def test_non_readers_are_dropped_at_their_bound_and_give_their_memory_back(
    live_server: LiveServer,
) -> None:
    # Send and peer time-outs longer than the test: only the byte bound drops them.
    server: ThreadedServer = live_server(
        workers=1, stream_send_timeout_s=300.0, peer_timeout_s=300.0
    )
    async with asyncio.timeout(60), client_of(server) as client:
        gate, _ = await idle_running_job(client)  # holds the one worker slot
        job_id = await create_job(client, "demo.synthetic", steps=STEPS, step_ms=STEP_MS)
        path = f"/api/jobs/{job_id}/events"
        honest = await RawStream.open(server.url, path)
        # Only connections accepted from now on get a small kernel send buffer, so
        # that what the non-readers leave unread piles up in the server process.
        server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        non_readers = [stalled_subscriber(server, path) for _ in range(NON_READERS)]
        try:
            await eventually(
                lambda: direct_sinks(server) == NON_READERS + 1, "every stream caught up"
            )
            before = rss_bytes()
            with peak_rss() as peak:
                await cancel(client, gate)
                received = await honest.read_events()
                await wait_for(client, job_id, lambda job: job["status"] == "succeeded")
                await eventually(lambda: direct_sinks(server) == 0, "every stream let go")
            assert peak[0] - before <= NON_READERS * HARD_LIMIT + SLACK, (
                f"grew {(peak[0] - before) / 2**20:.0f} MiB for {NON_READERS} streams "
                f"of at most {HARD_LIMIT / 2**20:.0f} MiB unsent each"
            )
            cut_short = await asyncio.gather(
                *(asyncio.to_thread(drained_until_cut, sock) for sock in non_readers)
            )
            settled = await eventually(
                rss_bytes,
                f"the dropped streams' memory to come back (from {before / 2**20:.0f} MiB)",
                until=lambda rss: rss - before <= SLACK,
            )
        finally:
            await honest.close()
            for sock in non_readers:
                sock.close()
        full = await all_events(client, job_id)

    assert settled - before <= SLACK
    assert received == full, "the reader that keeps up got every event, in order"
    assert_in_order(received)
    assert full[-1].type == "job-completed"
    for prefix in cut_short:
        assert b"event: job-completed" not in prefix, "a non-reader was served to the end"


async def test_a_reader_that_fell_behind_catches_up_without_loss_and_ends_cleanly(
    live_server: LiveServer,
) -> None:
    """A stream whose client stalls leaves its feed's fan-out; once the client reads
    again, it is sent what it missed from the feed's memory, and then the rest."""
    server: ThreadedServer = live_server(
        workers=1, stream_send_timeout_s=300.0, peer_timeout_s=300.0
    )
    async with asyncio.timeout(60), client_of(server) as client:
        gate, _ = await idle_running_job(client)
        job_id = await create_job(client, "demo.synthetic", steps=3 * LAG, step_ms=STEP_MS)
        path = f"/api/jobs/{job_id}/events"
        server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        stream = await small_window_stream(server, path)
        try:
            await eventually(lambda: direct_sinks(server) == 1, "the stream caught up")
            feed = feed_of(server, job_scope(job_id))
            assert feed is not None
            await cancel(client, gate)
            await eventually(lambda: len(feed.behind) == 1, "the stalled reader fell behind")
            fell_behind_at = int((await job_snapshot(client, job_id))["last_event_id"])
            await wait_for(
                client, job_id, lambda job: int(job["last_event_id"]) >= fell_behind_at + LAG
            )
            received = await stream.read_events()  # to the end of the body: no cut
        finally:
            await stream.close()
        full = await all_events(client, job_id)

    assert received == full, "every event, in order, once"
    assert full[-1].type == "job-completed"


async def small_window_stream(server: ThreadedServer, path: str) -> RawStream:
    """A stream whose client has a small receive buffer, read only when asked."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, server.sock.getsockname())
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(request_bytes(server.url, path))
    return await RawStream.start(reader, writer)


def assert_in_order(events: list[Event]) -> None:
    assert all(int(a.id) < int(b.id) for a, b in pairwise(events))
    assert sum(event.type in TERMINAL_TYPES for event in events) == 1
