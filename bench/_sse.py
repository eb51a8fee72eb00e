"""A lean SSE subscriber on a raw asyncio socket, for load clients that open
thousands: it times each event from its `ts` (taken at append) to its arrival."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Subscriber:
    connected_at: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    events: int = 0
    keepalives: int = 0


def _appended_at(data: bytes) -> float:
    stamp = json.loads(data)["ts"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def subscribe(
    host: str, port: int, path: str, into: Subscriber, ready: asyncio.Event
) -> None:
    """Reads the stream at `path` into `into` until the job completes or the server
    closes it; sets `ready` once the response has begun."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    into.connected_at = time.time()
    ready.set()
    buffer = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if frame.startswith(b": keepalive") or b"\n: keepalive" in frame:
                    into.keepalives += 1
                for line in frame.split(b"\n"):
                    if line.startswith(b"data: "):
                        appended = _appended_at(line[6:])
                        # Replayed events (appended before we connected) are not latency.
                        if appended >= into.connected_at:
                            into.latencies_ms.append((time.time() - appended) * 1000.0)
                        into.events += 1
                        if b'"type":"job-completed"' in line:
                            return
    finally:
        writer.close()
